//! Receiving batches into a real (SQLite) store: what survives reopening, and the compare-and-set that
//! backs up the per-host locks.

use super::receive;
use crate::ingest::state::HostState;
use crate::ingest::verify::check;
use crate::store::{SqliteStore, Store, StoreError};
use crate::testutil::TestJournal;

#[test]
fn state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let mut j = TestJournal::new("h");
    j.execs(5);
    {
        let store = SqliteStore::open(&path).unwrap();
        let receipt = receive(&store, "h", &j.batch(1, 6), 1).unwrap();
        assert_eq!(receipt.next_seq, 7);
    }
    let store = SqliteStore::open(&path).unwrap();
    let state = HostState::from_record(&store.host_record("h").unwrap().unwrap());
    assert_eq!(state.next_seq(), 7);
    assert_eq!(store.stored_hashes("h", 2, 3).unwrap().len(), 2);
    j.execs(2);
    let receipt = receive(&store, "h", &j.batch(4, 8), 2).unwrap();
    assert_eq!((receipt.stored, receipt.duplicates), (2, 3));
    assert_eq!(store.host("h").unwrap().unwrap().records, 8);
}

#[test]
fn the_stored_record_is_the_verified_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
    let mut j = TestJournal::new("h");
    j.execs(3);
    j.checkpoint();
    j.stop_and_restart();
    j.execs(1);
    let batch = j.batch(1, j.last_seq());
    let verified = check(&HostState::default(), &batch, |_| None).unwrap();
    receive(&store, "h", &batch, 1).unwrap();
    let stored = HostState::from_record(&store.host_record("h").unwrap().unwrap());
    assert_eq!(stored, verified.state);
    assert!(stored.chain.as_ref().unwrap().last_checkpoint_seq > 0);
}

#[test]
fn a_stale_state_cannot_be_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
    let mut j = TestJournal::new("h");
    j.execs(5);
    let first = j.batch(1, 3);
    let fresh = check(&Default::default(), &first, |_| None).unwrap();
    let commit = |expected| fresh.commit("h", expected, 1);
    store.commit(&commit(None)).unwrap();
    assert!(matches!(
        store.commit(&commit(None)),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.commit(&commit(Some(1))),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.host("h").unwrap().unwrap().records, 3);
}
