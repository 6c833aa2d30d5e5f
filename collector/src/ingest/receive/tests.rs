//! Receiving batches into a real (SQLite) store: what survives reopening, the compare-and-set that backs
//! up the per-host locks, refusals that leave the host as it was, and the bound on the lock map.

use std::sync::Arc;

use auditloop_protocol::api::{AlertKind, HostStatus};

use super::{Ingest, IngestError, Sender, receive};
use crate::alerts::Offender;
use crate::ingest::state::HostState;
use crate::ingest::verify::check;
use crate::store::{AlertQuery, Enrollment, SqliteStore, Store, StoreError};
use crate::testutil::{TestJournal, batch_of, tampered};

const H: Sender<'static> = Sender {
    host: "h",
    peer: "192.0.2.1:1",
};

fn enroll(store: &dyn Store, host: &str, j: &mut TestJournal) {
    store
        .enroll(&Enrollment {
            host,
            genesis_key: j.genesis_key(),
            token_digest: [host.len() as u8; 32],
            replace: false,
            now_ns: 1,
        })
        .unwrap();
}

fn alerts(store: &dyn Store) -> Vec<crate::store::StoredAlert> {
    store
        .alerts(&AlertQuery {
            limit: 100,
            ..AlertQuery::default()
        })
        .unwrap()
}

#[test]
fn state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let mut j = TestJournal::new("h");
    j.execs(5);
    {
        let store = SqliteStore::open(&path).unwrap();
        enroll(&store, "h", &mut j);
        let receipt = receive(&store, &H, &j.batch(1, 6), 1).unwrap();
        assert_eq!(receipt.next_seq, 7);
        assert_eq!((receipt.verified_through, receipt.pending), (0, 6));
    }
    let store = SqliteStore::open(&path).unwrap();
    let state = HostState::from_record(&store.host_record("h").unwrap().unwrap());
    assert_eq!(state.next_seq(), 7);
    assert_eq!(store.stored_hashes("h", 2, 3).unwrap().len(), 2);
    j.execs(2);
    let cp = j.checkpoint();
    let receipt = receive(&store, &H, &j.batch(4, cp), 2).unwrap();
    assert_eq!((receipt.stored, receipt.duplicates), (3, 3));
    assert_eq!((receipt.verified_through, receipt.pending), (cp, 0));
    assert_eq!(store.host("h").unwrap().unwrap().records, cp);
}

#[test]
fn the_stored_record_is_the_verified_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
    let mut j = TestJournal::new("h");
    enroll(&store, "h", &mut j);
    j.execs(3);
    j.checkpoint();
    j.stop_and_restart();
    j.execs(1);
    let batch = j.batch(1, j.last_seq());
    let verified = check(&HostState::enrolled(j.genesis_key()), &batch, |_| None).unwrap();
    receive(&store, &H, &batch, 1).unwrap();
    let stored = HostState::from_record(&store.host_record("h").unwrap().unwrap());
    assert_eq!(stored, verified.state);
    assert!(stored.chain.as_ref().unwrap().last_checkpoint_seq > 0);
}

#[test]
fn a_stale_state_cannot_be_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
    let mut j = TestJournal::new("h");
    enroll(&store, "h", &mut j);
    j.execs(5);
    let first = j.batch(1, 3);
    let fresh = check(&HostState::enrolled(j.genesis_key()), &first, |_| None).unwrap();
    let commit = |expected| fresh.commit("h", expected, 1);
    store.commit(&commit(1)).unwrap();
    assert!(matches!(
        store.commit(&commit(1)),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.commit(&commit(2)),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.host("h").unwrap().unwrap().records, 3);
}

#[test]
fn a_host_that_is_not_enrolled_is_never_created() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
    let mut j = TestJournal::new("h");
    j.execs(2);
    let err = receive(&store, &H, &j.batch(1, 3), 1).unwrap_err();
    assert!(
        matches!(err, IngestError::NotEnrolled(ref h) if h == "h"),
        "{err:?}"
    );
    assert_eq!(store.host("h").unwrap(), None);
    assert!(alerts(&store).is_empty());
}

#[test]
fn a_refused_batch_changes_nothing_of_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
    let mut j = TestJournal::new("h");
    enroll(&store, "h", &mut j);
    j.execs(4);
    j.checkpoint();
    receive(&store, &H, &j.batch(1, 6), 100).unwrap();
    let before = store.host("h").unwrap().unwrap();
    j.execs(3);
    let mut frames = j.frames();
    frames[7] = tampered(&frames[7]);
    for now in [200, 300] {
        let err = receive(&store, &H, &batch_of(&frames, 7, 9), now).unwrap_err();
        assert!(matches!(err, IngestError::Rejected(_)), "{err:?}");
    }
    assert_eq!(store.host("h").unwrap().unwrap(), before);
    assert_eq!(before.status, HostStatus::Verified);
    let raised = alerts(&store);
    assert_eq!(raised.len(), 1);
    assert_eq!((raised[0].kind, raised[0].count), (AlertKind::Forgery, 2));
    assert_eq!(raised[0].detail["token"], "h");
    assert_eq!(raised[0].detail["peer"], "192.0.2.1:1");
    // The real next batch is stored as if nothing happened.
    receive(&store, &H, &j.batch(7, 9), 400).unwrap();
    assert_eq!(store.host("h").unwrap().unwrap().records, 9);
}

#[test]
fn foreign_tokens_raise_forgery_only_for_enrolled_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("c.db")).unwrap());
    let mut j = TestJournal::new("victim");
    enroll(store.as_ref(), "victim", &mut j);
    let ingest = Ingest::new(store.clone());
    let offender = Offender {
        token: "enrollment",
        role: "enrollment",
        peer: "203.0.113.5:999",
    };
    assert!(ingest.refuse_foreign("victim", &offender).unwrap());
    assert!(ingest.refuse_foreign("victim", &offender).unwrap());
    assert!(!ingest.refuse_foreign("nobody", &offender).unwrap());
    let raised = alerts(store.as_ref());
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(
        (raised[0].host.as_str(), raised[0].kind, raised[0].count),
        ("victim", AlertKind::Forgery, 2)
    );
    assert_eq!(raised[0].detail["refused"], "foreign_token");
    assert_eq!(raised[0].detail["role"], "enrollment");
    assert_eq!(raised[0].detail["peer"], "203.0.113.5:999");
    let host = store.host("victim").unwrap().unwrap();
    assert_eq!((host.status, host.last_seen_ns), (HostStatus::Enrolled, 0));
}

#[test]
fn the_lock_map_holds_only_hosts_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("c.db")).unwrap());
    let ingest = Ingest::new(store.clone());
    let mut j = TestJournal::new("h");
    j.execs(1);
    let body = j.batch(1, 2).encode_binary(1).unwrap();
    for i in 0..500 {
        let host = format!("h{i}");
        let sender = Sender {
            host: &host,
            peer: "192.0.2.1:1",
        };
        let err = ingest
            .receive_body(
                &sender,
                auditloop_protocol::batch::CONTENT_TYPE_BINARY,
                &body,
            )
            .unwrap_err();
        assert!(matches!(err, IngestError::NotEnrolled(_)), "{err:?}");
    }
    assert!(
        ingest.locks().is_empty(),
        "{} entries",
        ingest.locks().len()
    );
}

#[test]
fn an_ack_never_names_a_seq_past_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
    let mut j = TestJournal::new("h");
    enroll(&store, "h", &mut j);
    j.execs(9);
    receive(&store, &H, &j.batch(1, 10), 1).unwrap();
    let replay = receive(&store, &H, &j.batch(2, 4), 2).unwrap();
    assert_eq!(
        (replay.stored, replay.duplicates, replay.next_seq),
        (0, 3, 5)
    );
    assert_eq!(store.host_record("h").unwrap().unwrap().next_seq, 11);
}
