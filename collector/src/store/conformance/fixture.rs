//! Test data for the conformance cases, made of the store's own types: records with chosen kinds and
//! columns, hashes that differ by host and sequence number, host records and enrollments.

use auditloop_journal::record::Hash;
use auditloop_model::EventKind;
use auditloop_protocol::api::{AlertKind, HostStatus};
use serde_json::json;

use crate::alerts::NewAlert;
use crate::store::backend::Store;
use crate::store::commit::{Commit, NewCheckpoint, NewRecord, RecordKind, SearchColumns};
use crate::store::error::StoreError;
use crate::store::host::{Enrollment, HostRecord, StoredHost};
use crate::store::query::{AlertQuery, EventQuery, StoredAlert, StoredRecord};

/// A generous page: more than any case stores.
pub(crate) const ALL: u32 = 10_000;

/// The key every host of the cases is enrolled with.
pub(crate) const KEY: [u8; 32] = [1; 32];

/// The token digest of `host` in the cases.
pub(crate) fn token_of(host: &str) -> [u8; 32] {
    let mut digest = hash_of(host, 0);
    digest[31] = 0x7e;
    digest
}

/// Enrolls `host` with [`KEY`] and [`token_of`] at `now_ns`.
pub(crate) fn enroll(store: &dyn Store, host: &str, now_ns: u64) -> Result<(), StoreError> {
    store.enroll(&Enrollment {
        host,
        genesis_key: KEY,
        token_digest: token_of(host),
        replace: false,
        now_ns,
    })
}

/// A record to commit, owning its payload.
#[derive(Clone, Debug)]
pub(crate) struct Rec {
    pub(crate) seq: u64,
    pub(crate) hash: Hash,
    pub(crate) kind: RecordKind,
    pub(crate) columns: SearchColumns,
    pub(crate) payload: Vec<u8>,
}

impl Rec {
    /// An event of `kind` at `seq` of `host`, with no searchable columns but its time.
    pub(crate) fn event(host: &str, seq: u64, kind: EventKind) -> Rec {
        Rec {
            seq,
            hash: hash_of(host, seq),
            kind: RecordKind::Event(kind),
            columns: SearchColumns {
                time_ns: Some(1_000 + seq),
                ..SearchColumns::default()
            },
            payload: format!("{host} {seq} {}", kind.as_str()).into_bytes(),
        }
    }

    /// An `exec` event.
    pub(crate) fn exec(host: &str, seq: u64) -> Rec {
        Rec::event(host, seq, EventKind::Exec)
    }

    /// A segment start.
    pub(crate) fn segment_start(host: &str, seq: u64) -> Rec {
        Rec {
            kind: RecordKind::SegmentStart,
            ..Rec::exec(host, seq)
        }
    }

    /// A checkpoint (no searchable columns).
    pub(crate) fn checkpoint(host: &str, seq: u64) -> Rec {
        Rec {
            kind: RecordKind::Checkpoint,
            columns: SearchColumns::default(),
            ..Rec::exec(host, seq)
        }
    }

    /// The same record with another payload.
    pub(crate) fn with_payload(self, payload: &[u8]) -> Rec {
        Rec {
            payload: payload.to_vec(),
            ..self
        }
    }

    /// The same record with `columns`.
    pub(crate) fn with(self, columns: SearchColumns) -> Rec {
        Rec { columns, ..self }
    }

    /// The record as the store takes it.
    pub(crate) fn new_record(&self) -> NewRecord<'_> {
        NewRecord {
            seq: self.seq,
            hash: self.hash,
            kind: self.kind,
            columns: self.columns.clone(),
            payload: &self.payload,
        }
    }
}

/// Execs of `host` numbered `seqs`.
pub(crate) fn execs(host: &str, seqs: std::ops::RangeInclusive<u64>) -> Vec<Rec> {
    seqs.map(|seq| Rec::exec(host, seq)).collect()
}

/// The hash of record `seq` of `host` (different for every host and sequence number).
pub(crate) fn hash_of(host: &str, seq: u64) -> Hash {
    let mut hash = [0u8; 32];
    hash[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in host.bytes().take(24).enumerate() {
        hash[8 + i] = b;
    }
    hash[31] = 0xa5;
    hash
}

/// The record of a host enrolled with [`KEY`] whose chain runs from `first_seq` to just before
/// `next_seq`, every record verified (covered by a checkpoint).
pub(crate) fn host_record(host: &str, first_seq: u64, next_seq: u64) -> HostRecord {
    HostRecord {
        next_seq,
        last_hash: hash_of(host, next_seq.saturating_sub(1)),
        epoch: 0,
        epoch_key: Some([1; 32]),
        genesis_key: (first_seq == 1).then_some([1; 32]),
        next_segment: Some(1),
        segment_generation: 1,
        last_checkpoint_seq: next_seq.saturating_sub(1),
        first_seq,
        anchor_key: (first_seq != 1).then_some([2; 32]),
        generation: Some(1),
        clean_stop: false,
        spool_overflowing: false,
        enrolled_key: Some(KEY),
        tofu: false,
        at_checkpoint: None,
    }
}

/// An alert of `kind` about `seq`, whose detail names `tag`.
pub(crate) fn alert(kind: AlertKind, seq: Option<u64>, tag: &str) -> NewAlert {
    NewAlert {
        kind,
        seq,
        detail: json!({ "tag": tag, "nested": { "n": 1 } }),
    }
}

/// A batch to commit for one host.
#[derive(Clone, Debug)]
pub(crate) struct Batch<'a> {
    pub(crate) host: &'a str,
    pub(crate) expected_next_seq: Option<u64>,
    pub(crate) host_record: HostRecord,
    pub(crate) status: HostStatus,
    pub(crate) records: Vec<Rec>,
    pub(crate) duplicates: u64,
    pub(crate) replace_from: Option<u64>,
    pub(crate) checkpoints: Vec<NewCheckpoint>,
    pub(crate) alerts: Vec<NewAlert>,
    pub(crate) now_ns: u64,
}

impl<'a> Batch<'a> {
    /// `records` of `host` (in order) for a host whose first stored record is `first_seq`, verified
    /// against `expected_next_seq` (`None`: a host to enroll first, whose next seq is then 1), stored at
    /// `now_ns`.
    pub(crate) fn new(
        host: &'a str,
        first_seq: u64,
        expected_next_seq: Option<u64>,
        records: Vec<Rec>,
        now_ns: u64,
    ) -> Batch<'a> {
        let next = records
            .last()
            .map_or(expected_next_seq.unwrap_or(first_seq), |r| r.seq + 1);
        Batch {
            host,
            expected_next_seq,
            host_record: host_record(host, first_seq, next),
            status: HostStatus::Verified,
            records,
            duplicates: 0,
            replace_from: None,
            checkpoints: Vec::new(),
            alerts: Vec::new(),
            now_ns,
        }
    }

    /// Commits the batch (enrolling the host first when `expected_next_seq` is `None` and it is not
    /// stored).
    pub(crate) fn commit(&self, store: &dyn Store) -> Result<(), StoreError> {
        let expected_next_seq = match self.expected_next_seq {
            Some(expected) => expected,
            None => {
                match enroll(store, self.host, self.now_ns) {
                    Ok(()) | Err(StoreError::HostExists(_)) => {}
                    Err(e) => return Err(e),
                }
                1
            }
        };
        let records: Vec<NewRecord<'_>> = self.records.iter().map(Rec::new_record).collect();
        store.commit(&Commit {
            host: self.host,
            expected_next_seq,
            host_record: self.host_record,
            status: self.status,
            records: &records,
            duplicates: self.duplicates,
            replace_from: self.replace_from,
            checkpoints: &self.checkpoints,
            alerts: &self.alerts,
            now_ns: self.now_ns,
        })
    }
}

/// Enrolls a new `host` and stores `records` at `now_ns`, as one batch from its first record's seq.
pub(crate) fn start(
    store: &dyn Store,
    host: &str,
    records: Vec<Rec>,
    now_ns: u64,
) -> Result<(), StoreError> {
    let first = records.first().map_or(1, |r| r.seq);
    Batch::new(host, first, None, records, now_ns).commit(store)
}

/// Stores `records` of a known `host` at `now_ns`, continuing at the first record's seq.
pub(crate) fn extend(
    store: &dyn Store,
    host: &str,
    records: Vec<Rec>,
    now_ns: u64,
) -> Result<(), StoreError> {
    let expected = records.first().map_or(1, |r| r.seq);
    let first = store.host_record(host)?.map_or(1, |r| r.first_seq);
    Batch::new(host, first, Some(expected), records, now_ns).commit(store)
}

/// Records matching `query` (with a page longer than anything stored unless `query` sets one).
pub(crate) fn find(store: &dyn Store, query: EventQuery) -> Result<Vec<StoredRecord>, StoreError> {
    let limit = if query.limit == 0 { ALL } else { query.limit };
    store.records(&EventQuery { limit, ..query })
}

/// `(host, seq)` of the records matching `query`, in the order returned.
pub(crate) fn found(
    store: &dyn Store,
    query: EventQuery,
) -> Result<Vec<(String, u64)>, StoreError> {
    Ok(find(store, query)?
        .into_iter()
        .map(|r| (r.host, r.seq))
        .collect())
}

/// Sequence numbers of the records matching `query`, in the order returned.
pub(crate) fn seqs(store: &dyn Store, query: EventQuery) -> Result<Vec<u64>, StoreError> {
    Ok(find(store, query)?.into_iter().map(|r| r.seq).collect())
}

/// `(host, seq)` pairs for `host` and `seqs`.
pub(crate) fn at(host: &str, seqs: impl IntoIterator<Item = u64>) -> Vec<(String, u64)> {
    seqs.into_iter().map(|s| (host.to_owned(), s)).collect()
}

/// Every stored alert, oldest first.
pub(crate) fn all_alerts(store: &dyn Store) -> Result<Vec<StoredAlert>, StoreError> {
    store.alerts(&AlertQuery {
        limit: ALL,
        ..AlertQuery::default()
    })
}

/// The stored host `host`, which must exist.
pub(crate) fn stored_host(store: &dyn Store, host: &str) -> Result<StoredHost, StoreError> {
    let found = store.host(host)?;
    assert!(found.is_some(), "host {host} is not stored");
    found.ok_or_else(|| StoreError::Corrupt(format!("host {host} is not stored")))
}
