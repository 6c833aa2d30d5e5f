//! Where verified records, checkpoints, host states and alerts are kept.
//!
//! [`Store`] is the collector's only view of its database, so backends can be swapped ([`SqliteStore`] is
//! the default; a PostgreSQL backend can implement the same trait). Every method blocks: call it from
//! `tokio::task::spawn_blocking`. A store never judges records: it keeps what [`crate::ingest::check`]
//! verified, one batch per transaction, all or nothing.

mod sqlite;

pub use sqlite::SqliteStore;

use auditloop_journal::record::Hash;
use auditloop_model::WallTime;
use serde::{Deserialize, Serialize};

use crate::alerts::{AlertKind, NewAlert};
use crate::ingest::{HostState, Verified};

/// A host's chain status, as shown by `GET /v1/hosts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    /// Every stored record verified, from the host's genesis record.
    Verified,
    /// Every stored record verified from an anchor trusted on first use (the host's earliest records were
    /// gone before it first shipped).
    AnchoredTofu,
    /// The last batch refused replayed records that differ from stored ones.
    Forked,
    /// The last batch refused failed verification.
    Tampered,
}

impl HostStatus {
    /// The status name.
    pub fn as_str(self) -> &'static str {
        match self {
            HostStatus::Verified => "verified",
            HostStatus::AnchoredTofu => "anchored_tofu",
            HostStatus::Forked => "forked",
            HostStatus::Tampered => "tampered",
        }
    }

    /// The status of a name.
    pub fn parse(name: &str) -> Option<HostStatus> {
        [
            HostStatus::Verified,
            HostStatus::AnchoredTofu,
            HostStatus::Forked,
            HostStatus::Tampered,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    /// The status after a stored batch.
    pub fn of(state: &HostState) -> HostStatus {
        if state.anchor_key.is_some() {
            HostStatus::AnchoredTofu
        } else {
            HostStatus::Verified
        }
    }
}

/// Records that may wait for a store's search index before a stored batch starts indexing them (see
/// [`Store::index_pending`]); the rest is indexed every [`INDEX_INTERVAL`].
pub const INDEX_LAG_ROWS: u64 = 32_768;

/// How often the collector indexes records that batches left waiting.
pub const INDEX_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// A verified batch to store for `host`, in one transaction.
#[derive(Clone, Copy, Debug)]
pub struct Commit<'a> {
    /// The host.
    pub host: &'a str,
    /// The host's next sequence number the batch was verified against (`None` for a host never stored); the
    /// commit fails with [`StoreError::Conflict`] when the stored state has moved on since.
    pub expected_next_seq: Option<u64>,
    /// What to store.
    pub verified: &'a Verified<'a>,
    /// Current time (ns since the Unix epoch).
    pub now_ns: u64,
}

/// A refused batch: the alerts it raised and the host's new status.
#[derive(Clone, Copy, Debug)]
pub struct Rejection<'a> {
    /// The host.
    pub host: &'a str,
    /// The host's new status, if the refusal changes it.
    pub status: Option<HostStatus>,
    /// Alerts to store.
    pub alerts: &'a [NewAlert],
    /// Current time (ns since the Unix epoch).
    pub now_ns: u64,
}

/// One host, as listed by `GET /v1/hosts`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostSummary {
    /// Host name.
    pub host: String,
    /// Chain status.
    pub status: HostStatus,
    /// First stored sequence number.
    pub first_seq: u64,
    /// Last stored sequence number.
    pub last_seq: u64,
    /// Sequence number the next batch must continue from.
    pub next_seq: u64,
    /// Hash (hex) of the last stored record, which the host's journal `HEAD` names too once it is shipped
    /// (`null` before the first batch).
    pub last_hash: Option<String>,
    /// Records stored (events, segment starts, checkpoints): `last_seq - first_seq + 1`.
    pub records: u64,
    /// Event records stored.
    pub events: u64,
    /// Replayed records received and not stored again.
    pub duplicates: u64,
    /// Batches stored.
    pub batches: u64,
    /// Last contact (a stored or refused batch), ns since the Unix epoch.
    pub last_seen_ns: u64,
    /// The same, RFC 3339.
    pub last_seen: String,
    /// Sequence number of the last verified checkpoint (`null` before the first).
    pub last_checkpoint_seq: Option<u64>,
    /// When it was stored (ns since the Unix epoch).
    pub last_checkpoint_ns: Option<u64>,
    /// Key epoch the next checkpoint must name.
    pub epoch: u64,
    /// The host's genesis public key (hex), once its first segment start is stored.
    pub genesis_key: Option<String>,
    /// The anchor public key trusted on first use (hex), for hosts first seen after their genesis.
    pub anchor_key: Option<String>,
    /// Generation (agent start counter) of the last segment start.
    pub generation: Option<u64>,
    /// Whether a silence alert is open for the host.
    pub silent: bool,
}

/// The stored counters and times of a host (what is not in its [`HostState`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostCounters {
    /// Chain status.
    pub status: Option<HostStatus>,
    /// Records stored.
    pub records: u64,
    /// Events stored.
    pub events: u64,
    /// Duplicates received.
    pub duplicates: u64,
    /// Batches stored.
    pub batches: u64,
    /// Last contact.
    pub last_seen_ns: u64,
    /// Time the last checkpoint was stored.
    pub last_checkpoint_ns: Option<u64>,
    /// Open silence alert.
    pub silent: bool,
}

impl HostSummary {
    /// Builds the summary of `host` from its state and counters.
    pub fn new(host: String, state: &HostState, counters: HostCounters) -> HostSummary {
        let chain = state.chain.as_ref();
        let next_seq = state.next_seq();
        HostSummary {
            host,
            status: counters.status.unwrap_or_else(|| HostStatus::of(state)),
            first_seq: state.first_seq,
            last_seq: next_seq.saturating_sub(1),
            next_seq,
            last_hash: chain.map(|c| hex::encode(c.last_hash)),
            records: counters.records,
            events: counters.events,
            duplicates: counters.duplicates,
            batches: counters.batches,
            last_seen_ns: counters.last_seen_ns,
            last_seen: WallTime(counters.last_seen_ns).to_string(),
            last_checkpoint_seq: chain.map(|c| c.last_checkpoint_seq).filter(|s| *s != 0),
            last_checkpoint_ns: counters.last_checkpoint_ns,
            epoch: chain.map_or(0, |c| c.epoch),
            genesis_key: chain.and_then(|c| c.genesis).map(hex::encode),
            anchor_key: state.anchor_key.map(hex::encode),
            generation: state.generation,
            silent: counters.silent,
        }
    }
}

/// Filters of `GET /v1/events`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only this host.
    pub host: Option<String>,
    /// Only this kind; without it, segment starts and checkpoints are left out.
    pub kind: Option<String>,
    /// Event time at or after (ns since the Unix epoch).
    pub since_ns: Option<u64>,
    /// Event time before (ns since the Unix epoch).
    pub until_ns: Option<u64>,
    /// Only this process id.
    pub pid: Option<u32>,
    /// Only this path.
    pub path: Option<PathFilter>,
    /// Only records whose summary contains this text.
    pub text: Option<String>,
    /// Records after this cursor (a record id from a previous page).
    pub after: Option<i64>,
    /// At most this many records.
    pub limit: u32,
}

/// A path filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathFilter {
    /// Exactly this path.
    Exact(String),
    /// Paths starting with this prefix.
    Prefix(String),
}

/// A stored record, as `GET /v1/events` reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// Record id (ingest order; the paging cursor).
    pub id: i64,
    /// Host.
    pub host: String,
    /// Sequence number.
    pub seq: u64,
    /// When it was stored (ns since the Unix epoch).
    pub stored_ns: u64,
    /// Kind.
    pub kind: String,
    /// The payload bytes, as hashed.
    pub payload: Vec<u8>,
}

/// Filters of `GET /v1/alerts`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertQuery {
    /// Only this host.
    pub host: Option<String>,
    /// Only this kind.
    pub kind: Option<AlertKind>,
    /// Raised at or after (ns since the Unix epoch).
    pub since_ns: Option<u64>,
    /// Alerts after this id.
    pub after: Option<i64>,
    /// At most this many alerts.
    pub limit: u32,
}

/// A stored alert.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredAlert {
    /// Alert id (the paging cursor).
    pub id: i64,
    /// Host.
    pub host: String,
    /// Kind.
    pub kind: AlertKind,
    /// When it was raised (ns since the Unix epoch).
    pub time_ns: u64,
    /// The same, RFC 3339.
    pub time: String,
    /// The sequence number concerned, if any.
    pub seq: Option<u64>,
    /// Details.
    pub detail: serde_json::Value,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Database(String),
    /// The host's stored state changed while the batch was being verified.
    #[error("host {0}: stored state changed concurrently")]
    Conflict(String),
    /// Stored data does not read back.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

/// A collector database.
pub trait Store: Send + Sync {
    /// The stored state of `host`; `None` for a host never stored.
    fn host_state(&self, host: &str) -> Result<Option<HostState>, StoreError>;

    /// Hashes of the stored records of `host` with sequence numbers in `from..=to`.
    fn stored_hashes(&self, host: &str, from: u64, to: u64)
    -> Result<Vec<(u64, Hash)>, StoreError>;

    /// Stores a verified batch, its checkpoints and alerts, and the host's new state, in one transaction;
    /// marks the host seen and closes its silence alert.
    fn commit(&self, commit: &Commit<'_>) -> Result<(), StoreError>;

    /// Brings search structures that are written behind the records (such as the SQLite store's path and
    /// pid index) up to date, when at least `min_rows` records wait for them; returns how many records were
    /// indexed. Queries are complete either way; this only keeps them fast. Stores that index on insert do
    /// nothing.
    fn index_pending(&self, min_rows: u64) -> Result<u64, StoreError> {
        let _ = min_rows;
        Ok(0)
    }

    /// Stores the alerts of a refused batch; for a stored host also its new status and last contact.
    fn reject(&self, rejection: &Rejection<'_>) -> Result<(), StoreError>;

    /// Opens a silence alert for `host` when it has none and was last seen before `seen_before_ns`;
    /// returns whether it did.
    fn raise_silence(
        &self,
        host: &str,
        seen_before_ns: u64,
        alert: &NewAlert,
        now_ns: u64,
    ) -> Result<bool, StoreError>;

    /// Every stored host, by name.
    fn hosts(&self) -> Result<Vec<HostSummary>, StoreError>;

    /// One stored host.
    fn host(&self, host: &str) -> Result<Option<HostSummary>, StoreError>;

    /// Records matching `query`, in ingest order, at most `query.limit`.
    fn records(&self, query: &EventQuery) -> Result<Vec<StoredRecord>, StoreError>;

    /// Alerts matching `query`, oldest first, at most `query.limit`.
    fn alerts(&self, query: &AlertQuery) -> Result<Vec<StoredAlert>, StoreError>;
}
