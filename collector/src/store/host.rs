//! What the store keeps about each host: where its chain stands ([`HostRecord`]) and its counters
//! ([`StoredHost`]).

use auditloop_journal::record::Hash;
use auditloop_protocol::api::HostStatus;

/// Where a host's chain stands after its last stored record: everything needed to verify its next batch.
///
/// These are plain values, each kept as a column of its own; the store does not interpret them beyond
/// comparing `next_seq` when a batch is committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostRecord {
    /// Sequence number the next stored record must have.
    pub next_seq: u64,
    /// Hash of the last stored record (the next record's `prev_hash`).
    pub last_hash: Hash,
    /// Key epoch the next checkpoint must name.
    pub epoch: u64,
    /// Public key of that epoch (`None` until the genesis segment start is stored).
    pub epoch_key: Option<[u8; 32]>,
    /// The host's genesis public key, once its first segment start is stored.
    pub genesis_key: Option<[u8; 32]>,
    /// Index the next segment start must carry (`None` until one is stored).
    pub next_segment: Option<u64>,
    /// Generation the chain verifier recorded from the last segment start (0 before one).
    pub segment_generation: u64,
    /// Sequence number of the last verified checkpoint (0 = none yet).
    pub last_checkpoint_seq: u64,
    /// Sequence number of the first stored record.
    pub first_seq: u64,
    /// The public key of a batch anchor trusted on first use, when the host's first stored batch did not
    /// start at seq 1.
    pub anchor_key: Option<[u8; 32]>,
    /// Generation (agent start counter) of the last segment start seen.
    pub generation: Option<u64>,
    /// Whether the current generation logged `agent_stop`.
    pub clean_stop: bool,
    /// Whether the last event is a `spool_overflow` loss.
    pub spool_overflowing: bool,
}

/// One stored host: its record, status and counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredHost {
    /// Host name.
    pub name: String,
    /// Chain status, as set by the last commit or rejection.
    pub status: HostStatus,
    /// Where its chain stands.
    pub record: HostRecord,
    /// Records stored (events, segment starts, checkpoints).
    pub records: u64,
    /// Event records stored.
    pub events: u64,
    /// Replayed records received and not stored again.
    pub duplicates: u64,
    /// Batches stored.
    pub batches: u64,
    /// Last contact (a stored or refused batch), ns since the Unix epoch.
    pub last_seen_ns: u64,
    /// When the last checkpoint was stored (ns since the Unix epoch), if one was.
    pub last_checkpoint_ns: Option<u64>,
    /// Whether a silence alert is open.
    pub silent: bool,
}
