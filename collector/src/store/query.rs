//! What the store answers: filters over stored records and alerts, and the rows they return.

use auditloop_protocol::api::AlertKind;

/// Filters over stored records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only this host.
    pub host: Option<String>,
    /// Only records of this kind (a [`RecordKind`](crate::store::RecordKind) name); without it, events
    /// only (segment starts and checkpoints are left out).
    pub kind: Option<String>,
    /// Event time at or after (ns since the Unix epoch).
    pub since_ns: Option<u64>,
    /// Event time before (ns since the Unix epoch).
    pub until_ns: Option<u64>,
    /// Only this process id.
    pub pid: Option<u32>,
    /// Only this path.
    pub path: Option<PathFilter>,
    /// Only records whose summary contains this text (case-sensitive).
    pub text: Option<String>,
    /// Only events of processes with this audit login uid.
    pub loginuid: Option<u32>,
    /// Only network events whose local address is this one (normalized, as
    /// [`normalize_address`](crate::store::normalize_address) makes it).
    pub local_address: Option<String>,
    /// Only network events whose local port is this one.
    pub local_port: Option<u16>,
    /// Only network events whose remote address is this one (normalized).
    pub remote_address: Option<String>,
    /// Only network events whose remote port is this one.
    pub remote_port: Option<u16>,
    /// Records after this cursor (a record id from a previous page; the record may have been deleted
    /// since).
    pub after: Option<i64>,
    /// Whether pending records (not yet covered by a verified checkpoint) are included; without it, only
    /// verified ones.
    pub pending: bool,
    /// At most this many records.
    pub limit: u32,
}

/// A path filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathFilter {
    /// Exactly this path.
    Exact(String),
    /// Paths starting with this prefix (an empty prefix: any path).
    Prefix(String),
}

/// A stored record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// Record id: increases in ingest order and is never given to another record, even once this one is
    /// deleted (a replaced pending record); the paging cursor.
    pub id: i64,
    /// Host.
    pub host: String,
    /// Sequence number.
    pub seq: u64,
    /// When it was stored (ns since the Unix epoch).
    pub stored_ns: u64,
    /// Whether a verified checkpoint covers it (its seq is at most its host's `last_checkpoint_seq`).
    pub verified: bool,
    /// For a verified record, when the first stored checkpoint at or after it was stored, if one is.
    pub verified_ns: Option<u64>,
    /// Kind name.
    pub kind: String,
    /// The payload bytes, as hashed.
    pub payload: Vec<u8>,
}

/// Filters over stored alerts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertQuery {
    /// Only this host.
    pub host: Option<String>,
    /// Only this kind.
    pub kind: Option<AlertKind>,
    /// Last raised at or after (ns since the Unix epoch).
    pub since_ns: Option<u64>,
    /// Alerts after this id.
    pub after: Option<i64>,
    /// At most this many alerts.
    pub limit: u32,
}

/// A stored alert: one per host and kind, however often it was raised.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredAlert {
    /// Alert id: increases as alerts are raised (a repeat gives the alert a new, higher id); the paging
    /// cursor.
    pub id: i64,
    /// Host.
    pub host: String,
    /// Kind.
    pub kind: AlertKind,
    /// When it was first raised (ns since the Unix epoch).
    pub time_ns: u64,
    /// How many times it was raised.
    pub count: u64,
    /// When it was last raised (ns since the Unix epoch).
    pub last_time_ns: u64,
    /// The sequence number concerned the last time, if any.
    pub seq: Option<u64>,
    /// Details of the last time (a JSON object).
    pub detail: serde_json::Value,
}
