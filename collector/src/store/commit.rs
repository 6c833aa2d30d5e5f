//! What a write to the store carries: a verified batch ([`Commit`]) or a refused one ([`Rejection`]).
//!
//! Inputs borrow from the caller for the duration of one call (a record's payload borrows the batch it
//! came in); a backend copies what it keeps.

use auditloop_journal::record::Hash;
use auditloop_model::EventKind;
use auditloop_protocol::api::HostStatus;

use crate::alerts::NewAlert;
use crate::store::fleet::Finding;
use crate::store::host::HostRecord;
use crate::store::lineage::LineageKey;

/// What a stored record is: a segment start, a checkpoint or an event of some kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// A journal segment start.
    SegmentStart,
    /// A signed checkpoint.
    Checkpoint,
    /// An event.
    Event(EventKind),
}

impl RecordKind {
    /// The kind's name, as stored and queried (`segment_start`, `checkpoint`, or the event kind's name).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::SegmentStart => "segment_start",
            RecordKind::Checkpoint => "checkpoint",
            RecordKind::Event(kind) => kind.as_str(),
        }
    }

    /// Whether the record is an event.
    pub fn is_event(self) -> bool {
        match self {
            RecordKind::Event(_) => true,
            RecordKind::SegmentStart | RecordKind::Checkpoint => false,
        }
    }
}

/// The searchable columns of a record: what queries filter on without decoding payloads. They are only an
/// index; the payload stays the record of truth.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchColumns {
    /// Event wall-clock time (ns since the Unix epoch); the creation time of a segment start.
    pub time_ns: Option<u64>,
    /// Process id of the event.
    pub pid: Option<u32>,
    /// The file the event is about.
    pub path: Option<String>,
    /// Text searched by free-text queries.
    pub summary: Option<String>,
    /// Audit login uid of the event's process.
    pub loginuid: Option<u32>,
    /// A network event's local address, normalized
    /// ([`normalize_address`](crate::store::normalize_address)); `None` when unknown.
    pub local_address: Option<String>,
    /// A network event's local port; `None` when unknown (0).
    pub local_port: Option<u16>,
    /// A network event's remote address, normalized; `None` when unknown.
    pub remote_address: Option<String>,
    /// A network event's remote port; `None` when unknown (0).
    pub remote_port: Option<u16>,
    /// What the record tells the lineage walk about a process, if anything.
    pub lineage: Option<LineageKey>,
    /// What an `alert` or `action` event tells the fleet-alert list.
    pub finding: Option<Finding>,
}

/// A verified record to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRecord<'p> {
    /// Sequence number.
    pub seq: u64,
    /// Record hash.
    pub hash: Hash,
    /// Kind.
    pub kind: RecordKind,
    /// Searchable columns.
    pub columns: SearchColumns,
    /// The payload bytes exactly as hashed.
    pub payload: &'p [u8],
}

/// A verified checkpoint to store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewCheckpoint {
    /// Sequence number of the checkpoint record.
    pub seq: u64,
    /// Key epoch that signed it.
    pub epoch: u64,
    /// Sequence number of the record it signs.
    pub head_seq: u64,
}

/// A verified batch of an enrolled `host`, stored in one transaction: all of it or, on any error, none of
/// it.
#[derive(Clone, Copy, Debug)]
pub struct Commit<'a> {
    /// The host.
    pub host: &'a str,
    /// The host's next sequence number the batch was verified against. The commit fails with
    /// [`StoreError::Conflict`](crate::store::StoreError::Conflict) unless the stored record still has
    /// exactly this `next_seq` and the enrolled key of `host_record` (the host was not re-enrolled
    /// meanwhile); a host that is not stored is a conflict too.
    pub expected_next_seq: u64,
    /// The host's record after the batch (its enrolled key unchanged).
    pub host_record: HostRecord,
    /// The host's status after the batch.
    pub status: HostStatus,
    /// New records, in sequence order (no sequence number may be stored already).
    pub records: &'a [NewRecord<'a>],
    /// Replayed records of the batch that were already stored.
    pub duplicates: u64,
    /// Pending records to drop first: the host's stored records from this sequence number on (none of
    /// them covered by a verified checkpoint) are deleted with their checkpoints, and the counters lose
    /// them, before `records` (which replace them) are stored.
    pub replace_from: Option<u64>,
    /// New checkpoints. When there is one, the host was seen (`now_ns`) and its silence alert closes; a
    /// commit without a new checkpoint (a replay, or only pending records) leaves both as they were.
    pub checkpoints: &'a [NewCheckpoint],
    /// Alerts the batch raises.
    pub alerts: &'a [NewAlert],
    /// Current time (ns since the Unix epoch): when the records are stored.
    pub now_ns: u64,
}

impl Commit<'_> {
    /// Whether the commit changes what live feeds show: it raises alerts, or carries rule alerts, actions
    /// or hold reports.
    pub fn notifies(&self) -> bool {
        !self.alerts.is_empty()
            || self.records.iter().any(|r| match r.columns.finding {
                Some(Finding::Alert { .. } | Finding::Action { .. } | Finding::Hold(_)) => true,
                Some(Finding::RulesLoaded(_)) | None => false,
            })
    }
}

/// A refused batch of `host`: only the alerts it raised. A refusal never changes the host's record,
/// status, counters, last contact or silence.
#[derive(Clone, Copy, Debug)]
pub struct Rejection<'a> {
    /// The host.
    pub host: &'a str,
    /// Alerts to store.
    pub alerts: &'a [NewAlert],
    /// Current time (ns since the Unix epoch).
    pub now_ns: u64,
}
