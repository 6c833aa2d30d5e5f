//! Conformance cases for writing batches: what a commit stores, that it stores all or nothing, the
//! compare-and-set on the host's next sequence number, and the hashes read back for replay checks.

use auditloop_journal::record::Hash;
use auditloop_model::EventKind;
use auditloop_protocol::api::{AlertKind, HostStatus};

use crate::store::backend::Store;
use crate::store::commit::SearchColumns;
use crate::store::commit::{NewCheckpoint, RecordKind};
use crate::store::conformance::fixture::{
    ALL, Batch, KEY, Rec, alert, all_alerts, execs, extend, find, hash_of, start, stored_host,
};
use crate::store::error::StoreError;
use crate::store::host::{CheckpointPoint, HostRecord, StoredHost};
use crate::store::query::{EventQuery, PathFilter, StoredAlert, StoredRecord};

/// Largest sequence number a store must keep (2^63 - 1).
const MAX_SEQ: u64 = i64::MAX as u64;

/// Everything stored about one host, to compare before and after a refused write.
#[derive(Debug, PartialEq)]
struct Snapshot {
    record: Option<HostRecord>,
    host: Option<StoredHost>,
    hashes: Vec<(u64, Hash)>,
    events: Vec<StoredRecord>,
    alerts: Vec<StoredAlert>,
}

fn snapshot(store: &dyn Store, host: &str) -> Result<Snapshot, StoreError> {
    Ok(Snapshot {
        record: store.host_record(host)?,
        host: store.host(host)?,
        hashes: store.stored_hashes(host, 0, MAX_SEQ)?,
        events: find(
            store,
            EventQuery {
                host: Some(host.to_owned()),
                pending: true,
                ..EventQuery::default()
            },
        )?,
        alerts: all_alerts(store)?,
    })
}

/// A commit stores its records (every kind, payloads as given), checkpoints, alerts, the host's record,
/// status and counters.
pub fn a_commit_stores_records_and_the_host_record(store: &dyn Store) -> Result<(), StoreError> {
    assert_eq!(store.host_record("a")?, None);
    assert_eq!(store.host("a")?, None);
    let mut batch = Batch::new(
        "a",
        1,
        None,
        vec![
            Rec::segment_start("a", 1),
            Rec::exec("a", 2),
            Rec::event("a", 3, EventKind::File),
            Rec::exec("a", 4),
            Rec::checkpoint("a", 5),
        ],
        1_000,
    );
    batch.duplicates = 2;
    batch.checkpoints = vec![NewCheckpoint {
        seq: 5,
        epoch: 0,
        head_seq: 4,
    }];
    batch.alerts = vec![alert(AlertKind::UnexpectedRestart, Some(1), "restart")];
    batch.commit(store)?;

    assert_eq!(store.host_record("a")?, Some(batch.host_record));
    let host = stored_host(store, "a")?;
    assert_eq!(host.name, "a");
    assert_eq!(host.status, HostStatus::Verified);
    assert_eq!(host.record, batch.host_record);
    assert_eq!(
        (host.records, host.events, host.duplicates, host.batches),
        (5, 3, 2, 1)
    );
    assert_eq!(host.last_seen_ns, 1_000, "a checkpoint was stored");
    assert_eq!(host.last_checkpoint_ns, Some(1_000));
    assert!(!host.silent);

    let events = find(store, EventQuery::default())?;
    let expected: Vec<_> = batch.records[1..4]
        .iter()
        .map(|r| (r.seq, r.kind.as_str().to_owned(), r.payload.clone()))
        .collect();
    let got: Vec<_> = events
        .iter()
        .map(|r| (r.seq, r.kind.clone(), r.payload.clone()))
        .collect();
    assert_eq!(got, expected, "events only, in order, payloads as given");
    assert!(events.iter().all(|r| r.host == "a" && r.stored_ns == 1_000));
    for (kind, seq) in [(RecordKind::SegmentStart, 1), (RecordKind::Checkpoint, 5)] {
        let only = find(
            store,
            EventQuery {
                kind: Some(kind.as_str().to_owned()),
                ..EventQuery::default()
            },
        )?;
        assert_eq!(only.len(), 1, "{kind:?}");
        assert_eq!((only[0].seq, only[0].kind.as_str()), (seq, kind.as_str()));
        assert_eq!(only[0].payload, batch.records[seq as usize - 1].payload);
    }
    let alerts = all_alerts(store)?;
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        (alerts[0].host.as_str(), alerts[0].kind, alerts[0].seq),
        ("a", AlertKind::UnexpectedRestart, Some(1))
    );
    assert_eq!(alerts[0].time_ns, 1_000);
    assert_eq!(alerts[0].detail, batch.alerts[0].detail);
    Ok(())
}

/// Every field of a host record reads back as committed, set and unset, up to the largest sequence
/// number; a later commit replaces every field.
pub fn the_host_record_round_trips_every_field(store: &dyn Store) -> Result<(), StoreError> {
    let full = HostRecord {
        next_seq: MAX_SEQ,
        last_hash: [0xfe; 32],
        epoch: 7,
        epoch_key: Some([3; 32]),
        genesis_key: Some([4; 32]),
        next_segment: Some(12),
        segment_generation: 1 << 40,
        last_checkpoint_seq: MAX_SEQ - 1,
        first_seq: 9,
        anchor_key: Some([5; 32]),
        generation: Some(MAX_SEQ),
        clean_stop: true,
        spool_overflowing: true,
        enrolled_key: Some(KEY),
        tofu: true,
        at_checkpoint: Some(CheckpointPoint {
            last_hash: [0xcd; 32],
            epoch: 6,
            epoch_key: Some([8; 32]),
            next_segment: Some(11),
            segment_generation: 1 << 41,
            generation: Some(MAX_SEQ - 2),
            clean_stop: false,
            spool_overflowing: true,
        }),
    };
    let mut batch = Batch::new("h", 9, None, Vec::new(), 5);
    batch.host_record = full;
    batch.status = HostStatus::AnchoredTofu;
    batch.duplicates = 3;
    batch.commit(store)?;
    assert_eq!(store.host_record("h")?, Some(full));
    let host = stored_host(store, "h")?;
    assert_eq!((host.record, host.status), (full, HostStatus::AnchoredTofu));
    assert_eq!((host.records, host.events, host.duplicates), (0, 0, 3));
    assert_eq!(host.last_checkpoint_ns, None);

    let bare = HostRecord {
        next_seq: 10,
        last_hash: [0; 32],
        epoch: 0,
        epoch_key: None,
        genesis_key: None,
        next_segment: None,
        segment_generation: 0,
        last_checkpoint_seq: 0,
        first_seq: 10,
        anchor_key: None,
        generation: None,
        clean_stop: false,
        spool_overflowing: false,
        enrolled_key: Some(KEY),
        tofu: false,
        at_checkpoint: None,
    };
    let mut batch = Batch::new("h", 10, Some(MAX_SEQ), Vec::new(), 6);
    batch.host_record = bare;
    batch.commit(store)?;
    assert_eq!(store.host_record("h")?, Some(bare));
    let host = stored_host(store, "h")?;
    assert_eq!((host.record, host.status), (bare, HostStatus::Verified));
    assert_eq!(host.batches, 2);
    Ok(())
}

/// A commit whose expected next sequence number is not the stored one fails with
/// [`StoreError::Conflict`] and stores nothing: a second first batch, a stale one, one for a host never
/// enrolled (a commit never creates a host), one verified against another enrolled key.
pub fn a_conflicting_commit_stores_nothing(store: &dyn Store) -> Result<(), StoreError> {
    start(store, "a", execs("a", 1..=3), 10)?;
    let before = snapshot(store, "a")?;
    let attempts = [
        (None, 4..=5),
        (Some(2), 4..=5),
        (Some(5), 5..=6),
        (Some(3), 3..=4),
    ];
    for (expected, seqs) in attempts {
        let mut batch = Batch::new("a", 1, expected, execs("a", seqs), 20);
        batch.checkpoints = vec![NewCheckpoint {
            seq: 5,
            epoch: 0,
            head_seq: 4,
        }];
        batch.alerts = vec![alert(AlertKind::SpoolOverflow, Some(4), "lost")];
        let result = batch.commit(store);
        assert!(
            matches!(result, Err(StoreError::Conflict(ref host)) if host == "a"),
            "expected {expected:?}: {result:?}"
        );
        assert_eq!(snapshot(store, "a")?, before, "expected {expected:?}");
    }
    let unknown = Batch::new("b", 1, Some(1), execs("b", 1..=2), 20).commit(store);
    assert!(
        matches!(unknown, Err(StoreError::Conflict(_))),
        "{unknown:?}"
    );
    assert_eq!(store.host("b")?, None);
    assert_eq!(store.stored_hashes("b", 0, MAX_SEQ)?, Vec::new());
    let mut other_key = Batch::new("a", 1, Some(4), execs("a", 4..=5), 20);
    other_key.host_record.enrolled_key = Some([6; 32]);
    let result = other_key.commit(store);
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    assert_eq!(snapshot(store, "a")?, before);
    // The right expectation still succeeds.
    extend(store, "a", execs("a", 4..=5), 30)?;
    assert_eq!(stored_host(store, "a")?.records, 5);
    Ok(())
}

/// A commit that fails part-way (here: a record whose sequence number is stored already) stores none of
/// its records, checkpoints or alerts and leaves the host's record, status, counters and last contact as
/// they were.
pub fn a_failed_commit_stores_nothing(store: &dyn Store) -> Result<(), StoreError> {
    start(store, "a", execs("a", 1..=3), 10)?;
    let before = snapshot(store, "a")?;
    let mut records = execs("a", 4..=5);
    records.push(Rec::exec("a", 2));
    let mut batch = Batch::new("a", 1, Some(4), records, 20);
    batch.host_record.next_seq = 6;
    batch.status = HostStatus::Tampered;
    batch.checkpoints = vec![NewCheckpoint {
        seq: 5,
        epoch: 0,
        head_seq: 4,
    }];
    batch.alerts = vec![alert(AlertKind::SpoolOverflow, Some(4), "lost")];
    let result = batch.commit(store);
    assert!(result.is_err(), "a record stored twice: {result:?}");
    assert_eq!(snapshot(store, "a")?, before);

    let mut twice = execs("b", 1..=2);
    twice.push(Rec::exec("b", 2));
    let mut batch = Batch::new("b", 1, None, twice, 20);
    batch.alerts = vec![alert(AlertKind::Gap, Some(1), "b")];
    assert!(batch.commit(store).is_err());
    assert_eq!(
        store.host_record("b")?,
        Some(HostRecord::enrolled(KEY)),
        "only enrolled"
    );
    assert_eq!(stored_host(store, "b")?.status, HostStatus::Enrolled);
    assert_eq!(store.stored_hashes("b", 0, MAX_SEQ)?, Vec::new());
    assert_eq!(all_alerts(store)?, before.alerts);
    // The host is still writable at the position it had.
    extend(store, "a", execs("a", 4..=5), 30)?;
    assert_eq!(store.host_record("a")?.map(|r| r.next_seq), Some(6));
    Ok(())
}

/// Stored hashes read back by host and sequence range, in order, leaving out what is not stored.
pub fn stored_hashes_read_back_for_replays(store: &dyn Store) -> Result<(), StoreError> {
    start(store, "a", execs("a", 1..=4), 1)?;
    extend(store, "a", execs("a", 5..=6), 2)?;
    start(store, "b", execs("b", 10..=12), 3)?;
    let hashes = |host: &str, seqs: std::ops::RangeInclusive<u64>| -> Vec<(u64, Hash)> {
        seqs.map(|s| (s, hash_of(host, s))).collect()
    };
    assert_eq!(store.stored_hashes("a", 2, 4)?, hashes("a", 2..=4));
    assert_eq!(
        store.stored_hashes("a", 3, 6)?,
        hashes("a", 3..=6),
        "across batches"
    );
    assert_eq!(store.stored_hashes("a", 5, 10)?, hashes("a", 5..=6));
    assert_eq!(store.stored_hashes("a", 7, 9)?, Vec::new());
    assert_eq!(store.stored_hashes("a", 4, 4)?, hashes("a", 4..=4));
    assert_eq!(
        store.stored_hashes("b", 1, 11)?,
        hashes("b", 10..=11),
        "nothing before the first stored record"
    );
    assert_eq!(store.stored_hashes("c", 1, 3)?, Vec::new());
    assert_eq!(store.stored_hashes("a", 0, MAX_SEQ)?.len(), 6);
    assert_eq!(
        find(store, EventQuery::default())?.len(),
        9,
        "limit {ALL} holds every record"
    );
    Ok(())
}

/// A commit with `replace_from` first deletes the host's stored records from that seq on (with their
/// checkpoints, taken off the counters), then stores its records in their place; everything before stays.
pub fn a_commit_can_replace_pending_records(store: &dyn Store) -> Result<(), StoreError> {
    let mut first = Batch::new(
        "a",
        1,
        None,
        vec![
            Rec::exec("a", 1),
            Rec::exec("a", 2),
            Rec::checkpoint("a", 3),
            Rec::exec("a", 4).with(path_column("/old")),
            Rec::segment_start("a", 5),
        ],
        10,
    );
    first.host_record.last_checkpoint_seq = 3;
    first.commit(store)?;
    start(store, "b", execs("b", 1..=5), 10)?;
    let other = store.stored_hashes("b", 0, MAX_SEQ)?;
    let mut replacing = Batch::new(
        "a",
        1,
        Some(6),
        vec![
            Rec::exec("a", 4)
                .with_payload(b"replaced 4")
                .with(path_column("/new")),
            Rec::checkpoint("a", 5).with_payload(b"replaced 5"),
        ],
        20,
    );
    replacing.replace_from = Some(4);
    replacing.checkpoints = vec![NewCheckpoint {
        seq: 5,
        epoch: 1,
        head_seq: 4,
    }];
    replacing.host_record.next_seq = 6;
    replacing.host_record.last_checkpoint_seq = 5;
    replacing.commit(store)?;
    let host = stored_host(store, "a")?;
    assert_eq!(
        (host.records, host.events, host.batches),
        (5, 3, 2),
        "1, 2, 3 kept; 4 and 5 replaced"
    );
    assert_eq!(host.record.next_seq, 6);
    let payloads: Vec<_> = find(
        store,
        EventQuery {
            host: Some("a".into()),
            kind: Some("checkpoint".into()),
            ..EventQuery::default()
        },
    )?
    .into_iter()
    .map(|r| (r.seq, r.payload))
    .collect();
    assert_eq!(
        payloads,
        [
            (3, Rec::checkpoint("a", 3).payload),
            (5, b"replaced 5".to_vec())
        ]
    );
    assert_eq!(
        store.stored_hashes("a", 4, 5)?,
        [(4, hash_of("a", 4)), (5, hash_of("a", 5))]
    );
    assert_eq!(
        store.stored_hashes("b", 0, MAX_SEQ)?,
        other,
        "other hosts untouched"
    );
    let by_path = |path: &str| {
        find(
            store,
            EventQuery {
                path: Some(PathFilter::Exact(path.into())),
                ..EventQuery::default()
            },
        )
        .map(|rows| {
            rows.into_iter()
                .map(|r| (r.seq, r.payload))
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(
        by_path("/old")?,
        [],
        "a replaced record is gone from every query"
    );
    assert_eq!(by_path("/new")?, [(4, b"replaced 4".to_vec())]);
    Ok(())
}

/// Searchable columns with only a path (and a time).
fn path_column(path: &str) -> SearchColumns {
    SearchColumns {
        time_ns: Some(1),
        path: Some(path.to_owned()),
        ..SearchColumns::default()
    }
}
