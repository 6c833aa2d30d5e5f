//! The join: the connect on the dialling host that an arrival's connection came from ([`Joined`]).
//!
//! An accept on host B whose remote end is A:p and local end B:q joins a connect, on any host (B itself
//! too), whose local end is A:p and remote end B:q, at most the window away in time (addresses
//! normalized: an IPv4-mapped IPv6 address equals its IPv4 address). An SSH client end known without its
//! accept joins a connect from that end to any server end, from the SSH lookback before the session's
//! process started until the window after. Exactly one connect matches, or several (all listed, up to the
//! candidate limit, none chosen), or none (with the reason); only verified records take part unless
//! pending ones are asked for.
//!
//! A loopback connection never leaves its kernel: its connect is looked for on the accepting host first,
//! and on the other hosts only when that host recorded none (several agents sharing one kernel), so the
//! same loopback ports used on other hosts at the same time do not make it ambiguous.

use auditloop_protocol::api::lineage::Unmatched;

use crate::lineage::read::{Ctx, Found};
use crate::store::{Endpoint, StoreError};

/// What a join found.
#[derive(Clone, Debug)]
pub(super) enum Joined {
    /// One connect.
    Matched(Box<Found>),
    /// Several: the first ones, oldest first, and whether more matched.
    Ambiguous(Vec<Found>, bool),
    /// None, and why.
    Unmatched(Unmatched, String),
}

/// The connect of the connection `host` accepted at `at_ns` from `client` on `server`.
pub(super) fn accepted(
    ctx: Ctx<'_>,
    host: &str,
    client: &Endpoint,
    server: &Endpoint,
    at_ns: u64,
) -> Result<Joined, StoreError> {
    let window = ctx.options.window_ns;
    let range = (at_ns.saturating_sub(window), at_ns.saturating_add(window));
    connects(ctx, host, client, Some(server), range, || {
        format!(
            "no connect from {} to {} within {} ms of the accept",
            show(client),
            show(server),
            window / 1_000_000
        )
    })
}

/// The connect of the SSH session on `host` whose process started at `session_ns`, known only by its
/// `client` end.
pub(super) fn ssh(
    ctx: Ctx<'_>,
    host: &str,
    client: &Endpoint,
    session_ns: u64,
) -> Result<Joined, StoreError> {
    let window = ctx.options.window_ns;
    let lookback = ctx.options.ssh_lookback_ns;
    let since = session_ns.saturating_sub(lookback).saturating_sub(window);
    let range = (since, session_ns.saturating_add(window));
    connects(ctx, host, client, None, range, || {
        format!(
            "no connect from {} within {} s before the SSH session started",
            show(client),
            lookback.saturating_add(window) / 1_000_000_000
        )
    })
}

/// The connects from `client` (to `server`) within `range` that an accept on `host` joins: for a loopback
/// client end, `host`'s own when it has any.
fn connects(
    ctx: Ctx<'_>,
    host: &str,
    client: &Endpoint,
    server: Option<&Endpoint>,
    range: (u64, u64),
    none: impl FnOnce() -> String,
) -> Result<Joined, StoreError> {
    let max = ctx.options.max_candidates;
    let mut found = Vec::new();
    if client.is_loopback() {
        found = ctx.connects(
            Some(host),
            client,
            server,
            range,
            ctx.pending,
            max.saturating_add(1),
        )?;
    }
    if found.is_empty() {
        found = ctx.connects(
            None,
            client,
            server,
            range,
            ctx.pending,
            max.saturating_add(1),
        )?;
    }
    if found.len() > 1 {
        let truncated = found.len() > max as usize;
        found.truncate(max as usize);
        return Ok(Joined::Ambiguous(found, truncated));
    }
    if let Some(one) = found.pop() {
        return Ok(Joined::Matched(Box::new(one)));
    }
    if !ctx.pending
        && !ctx
            .connects(None, client, server, range, true, 1)?
            .is_empty()
    {
        return Ok(Joined::Unmatched(
            Unmatched::Pending,
            format!("{}; a pending one matches", none()),
        ));
    }
    Ok(Joined::Unmatched(Unmatched::NoConnect, none()))
}

/// `address:port` (`[address]:port` for IPv6).
pub(super) fn show(end: &Endpoint) -> String {
    if end.address.contains(':') {
        format!("[{}]:{}", end.address, end.port)
    } else {
        format!("{}:{}", end.address, end.port)
    }
}
