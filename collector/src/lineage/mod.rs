//! Cross-host lineage: where a stored event's process came from, across enrolled hosts
//! ([`lineage`], answering `auditloop_protocol::api::lineage::LineageAnswer`).
//!
//! Layered between the HTTP API and the store: it reads only through the [`Store`] trait's indexed
//! lookups (`read.rs`) and decodes the stored payloads itself; it knows nothing of HTTP or of the database.
//!
//! - `chain.rs`: the ancestry walk on one host (exec events' compact chains, followed through the
//!   ancestors' own exec and fork events, matched by pid and start time).
//! - `arrivals.rs`: the connections the chain's processes accepted (and the SSH client end they carry).
//! - `join.rs`: the connect on the dialling host each arrival joins: one, several (ambiguous, none chosen)
//!   or none (with the reason).
//! - `walk.rs`: following matched connects hop by hop, bounded, with cycle detection.
//!
//! Only verified records take part unless the caller asks for pending ones too. The rules, and what NAT,
//! proxies, clock skew and a lying host do to them, are in `docs/collector.md`, "Lineage".

mod arrivals;
mod chain;
mod join;
mod read;
mod walk;

#[cfg(test)]
mod tests;

use auditloop_protocol::api::lineage::LineageAnswer;

use crate::lineage::read::{Ctx, Found};
use crate::lineage::walk::Walk;
use crate::store::{Store, StoreError};

/// Default `--lineage-window-ms`: how far apart a connect and its accept may be, clock skew between the
/// hosts included.
pub const DEFAULT_WINDOW_MS: u64 = 5_000;

/// The bounds of a lineage walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineageOptions {
    /// How far apart in time (ns) a connect and its accept may be.
    pub window_ns: u64,
    /// For an SSH client end known without its accept: how long before the session's process started the
    /// connect may be (ns; sshd's default `LoginGraceTime`, 120 s), besides the window.
    pub ssh_lookback_ns: u64,
    /// Connections followed at most from the event asked about.
    pub max_hops: u32,
    /// Lineages in one answer at most (an event's, and those of the connects it led to).
    pub max_lineages: usize,
    /// Candidates a join lists at most; also the most earlier accepts counted.
    pub max_candidates: u32,
    /// Ancestors of one process at most.
    pub max_ancestors: usize,
}

impl Default for LineageOptions {
    fn default() -> LineageOptions {
        LineageOptions {
            window_ns: DEFAULT_WINDOW_MS * 1_000_000,
            ssh_lookback_ns: 120 * 1_000_000_000,
            max_hops: 8,
            max_lineages: 32,
            max_candidates: 16,
            max_ancestors: 64,
        }
    }
}

impl LineageOptions {
    /// The default bounds with a window of `window_ms` milliseconds.
    pub fn with_window_ms(window_ms: u64) -> LineageOptions {
        LineageOptions {
            window_ns: window_ms.saturating_mul(1_000_000),
            ..LineageOptions::default()
        }
    }
}

/// Why a lineage could not be answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LineageError {
    /// No such record is stored (or it is pending, and pending records were not asked for).
    #[error("no {} record {seq} of host {host}", if *.pending { "stored" } else { "verified" })]
    NotFound {
        /// The host asked for.
        host: String,
        /// The sequence number asked for.
        seq: u64,
        /// Whether pending records were asked for.
        pending: bool,
    },
    /// The record is a segment start or a checkpoint, not an event.
    #[error("record {seq} of host {host} is not an event")]
    NotAnEvent {
        /// The host.
        host: String,
        /// The sequence number.
        seq: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The lineage of record `seq` of `host`: verified records only, unless `pending`.
pub fn lineage(
    store: &dyn Store,
    host: &str,
    seq: u64,
    pending: bool,
    options: &LineageOptions,
) -> Result<LineageAnswer, LineageError> {
    let not_found = || LineageError::NotFound {
        host: host.to_owned(),
        seq,
        pending,
    };
    let record = store
        .record(host, seq)?
        .filter(|r| pending || r.verified)
        .ok_or_else(not_found)?;
    let found = Found::decode(record).ok_or_else(|| LineageError::NotAnEvent {
        host: host.to_owned(),
        seq,
    })?;
    let ctx = Ctx {
        store,
        options,
        pending,
    };
    let lineage = Walk::new(ctx).lineage(&found, 0)?;
    Ok(LineageAnswer {
        window_ns: options.window_ns,
        max_hops: options.max_hops,
        max_candidates: options.max_candidates,
        lineage,
    })
}
