//! Arrivals: the connections a chain's processes came in over ([`FoundArrival`]), each joined to the
//! connect that dialled it.
//!
//! For each process of the chain whose start time is known: its accepts (TCP, same pid and start) from its
//! start until it was looked at (the event, or the start of the process below it), the latest of them. A
//! process carrying an SSH client end (`process.ssh_client_address`, the connection of its sshd ancestor)
//! that no accept found in the chain explains arrived over that SSH connection: it is joined by the client
//! end alone, at the nearest sshd of the chain.

use auditloop_model::EventBody;
use auditloop_protocol::api::lineage::{Unmatched, Via};

use crate::lineage::chain::{Chain, Link};
use crate::lineage::join::{self, Joined};
use crate::lineage::read::{Ctx, Found, OfProcess};
use crate::store::columns::ends;
use crate::store::{Endpoint, FlowSide, LineageRole, StoreError};

/// An arrival found, with its join.
#[derive(Clone, Debug)]
pub(super) struct FoundArrival {
    /// The accepting process's place in the chain (0: the event's process).
    pub(super) depth: usize,
    /// Its pid.
    pub(super) pid: u32,
    /// SSH or TCP.
    pub(super) via: Via,
    /// The accept event, if one was found.
    pub(super) accept: Option<Found>,
    /// This host's end.
    pub(super) local: Option<Endpoint>,
    /// The client end.
    pub(super) remote: Option<Endpoint>,
    /// Other accepts of the same process before it, up to the candidate limit.
    pub(super) earlier_accepts: u32,
    /// The connect it joined.
    pub(super) join: Joined,
}

/// The arrivals of `chain` (walked from `found`), nearest process first.
pub(super) fn find(
    ctx: Ctx<'_>,
    found: &Found,
    chain: &Chain,
) -> Result<Vec<FoundArrival>, StoreError> {
    let mut out = Vec::new();
    for (depth, link) in chain.links.iter().enumerate() {
        if let Some(arrival) = accepted(ctx, &found.host, depth, link)? {
            out.push(arrival);
        }
    }
    let carried = chain.links.iter().find_map(|l| l.ssh_client.clone());
    if let Some(client) = carried
        && !out.iter().any(|a| a.remote.as_ref() == Some(&client))
    {
        out.push(over_ssh(ctx, found, chain, client)?);
        out.sort_by_key(|a| a.depth);
    }
    Ok(out)
}

/// The latest accept of `link`'s process before it was looked at, joined.
fn accepted(
    ctx: Ctx<'_>,
    host: &str,
    depth: usize,
    link: &Link,
) -> Result<Option<FoundArrival>, StoreError> {
    let (false, Some(start), Some(until)) = (link.view.unknown, link.view.start_ns, link.until_ns)
    else {
        return Ok(None);
    };
    let max = ctx.options.max_candidates;
    let accepts = ctx.process(&OfProcess {
        host,
        pid: link.view.pid,
        role: LineageRole::Flow(FlowSide::Accept),
        start_ns: (start, start),
        time_ns: (Some(start), Some(until)),
        limit: max.saturating_add(1),
    })?;
    let Some(latest) = accepts.first() else {
        return Ok(None);
    };
    let (local, remote) = if let EventBody::Net(n) = &latest.event.event {
        ends(n)
    } else {
        (None, None)
    };
    let join = match (&remote, &local) {
        (Some(client), Some(server)) => {
            join::accepted(ctx, host, client, server, latest.time_ns())?
        }
        _ => Joined::Unmatched(
            Unmatched::UnknownEnds,
            "the accept does not name both ends of the connection".into(),
        ),
    };
    Ok(Some(FoundArrival {
        depth,
        pid: link.view.pid,
        via: via(link),
        accept: Some(latest.clone()),
        local,
        remote,
        earlier_accepts: u32::try_from(accepts.len() - 1)
            .unwrap_or(u32::MAX)
            .min(max),
        join,
    }))
}

/// The arrival over the SSH connection whose `client` end the chain carries, at its nearest sshd (or, when
/// the chain reaches none, its last process).
fn over_ssh(
    ctx: Ctx<'_>,
    found: &Found,
    chain: &Chain,
    client: Endpoint,
) -> Result<FoundArrival, StoreError> {
    let depth = chain
        .links
        .iter()
        .position(|l| matches!(via(l), Via::Ssh))
        .unwrap_or(chain.links.len().saturating_sub(1));
    let link = chain.links.get(depth);
    let session_ns = link
        .and_then(|l| l.view.start_ns)
        .unwrap_or_else(|| found.time_ns());
    Ok(FoundArrival {
        depth,
        pid: link.map_or(found.event.process.pid, |l| l.view.pid),
        via: Via::Ssh,
        accept: None,
        local: None,
        join: join::ssh(ctx, &found.host, &client, session_ns)?,
        remote: Some(client),
        earlier_accepts: 0,
    })
}

/// SSH when the process is an sshd: its executable's name (else its task name) is `sshd`, `sshd-…` (as
/// `sshd-session`) or `dropbear`.
fn via(link: &Link) -> Via {
    let base = link.view.exe.rsplit('/').next().unwrap_or_default();
    let name = if base.is_empty() {
        link.view.comm.as_str()
    } else {
        base
    };
    if name == "sshd" || name.starts_with("sshd-") || name == "dropbear" {
        Via::Ssh
    } else {
        Via::Tcp
    }
}
