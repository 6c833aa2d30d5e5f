//! Tests of batch verification, without a database.

use std::collections::HashMap;

use auditloop_journal::Damage;
use auditloop_journal::record::Hash;
use auditloop_model::LossStage;
use auditloop_protocol::api::AlertKind;
use auditloop_protocol::batch::Batch;

use super::{Verified, check};
use crate::alerts::Offender;
use crate::ingest::reject::Reject;
use crate::ingest::state::HostState;
use crate::testutil::{TestJournal, batch_of, tampered, with_bad_signature};

/// A host as a store would keep it: its state and stored hashes.
struct Host {
    state: HostState,
    hashes: HashMap<u64, Hash>,
}

/// Who sends the refused batches of these tests.
const OFFENDER: Offender<'static> = Offender {
    token: "h",
    role: "host",
    peer: "192.0.2.1:1",
};

impl Host {
    /// A host enrolled with `journal`'s genesis key that stored nothing yet.
    fn of(journal: &mut TestJournal) -> Host {
        Host::enrolled(journal.genesis_key())
    }

    /// A host enrolled with `key` that stored nothing yet.
    fn enrolled(key: [u8; 32]) -> Host {
        Host {
            state: HostState::enrolled(key),
            hashes: HashMap::new(),
        }
    }

    fn check<'b>(&self, batch: &'b Batch) -> Result<Verified<'b>, Reject> {
        check(&self.state, batch, |seq| self.hashes.get(&seq).copied())
    }

    fn store(&mut self, batch: &Batch) -> (u64, u64) {
        let v = self.check(batch).unwrap();
        for r in &v.records {
            assert!(
                self.hashes.insert(r.seq, r.hash).is_none(),
                "seq {} twice",
                r.seq
            );
        }
        self.state = v.state.clone();
        (v.records.len() as u64, v.duplicates)
    }
}

#[test]
fn a_genesis_batch_verifies_and_replays_are_duplicates() {
    let mut j = TestJournal::new("h");
    j.execs(5);
    j.checkpoint();
    let last = j.last_seq();
    let batch = j.batch(1, last);
    let mut host = Host::of(&mut j);
    let v = host.check(&batch).unwrap();
    assert_eq!(v.records.len() as u64, last);
    assert_eq!(v.events, 5);
    assert_eq!(v.checkpoints.len(), 1);
    assert_eq!(v.next_seq(), last + 1);
    assert_eq!(v.records[0].kind.as_str(), "segment_start");
    assert_eq!(v.records[1].kind.as_str(), "exec");
    assert_eq!(v.records[1].columns.path.as_deref(), Some("/bin/true"));
    let chain = v.state.chain.as_ref().unwrap();
    assert_eq!(chain.genesis, Some(j.journal().genesis_public_key()));
    assert_eq!(v.state.generation, Some(1));
    assert!(v.alerts.is_empty());
    assert_eq!(host.store(&batch), (last, 0));
    assert_eq!(host.store(&batch), (0, last));
}

#[test]
fn overlapping_batches_store_only_the_new_records() {
    let mut j = TestJournal::new("h");
    j.execs(10);
    let mut host = Host::of(&mut j);
    host.store(&j.batch(1, 6));
    assert_eq!(host.store(&j.batch(4, 11)), (5, 3));
    assert_eq!(host.state.next_seq(), 12);
}

#[test]
fn gaps_and_unknown_hosts_name_the_expected_seq() {
    let mut j = TestJournal::new("h");
    j.execs(10);
    let mut host = Host::of(&mut j);
    let err = host.check(&j.batch(3, 5)).unwrap_err();
    assert!(
        matches!(
            err,
            Reject::Gap {
                expected_seq: 1,
                ..
            }
        ),
        "{err:?}"
    );
    host.store(&j.batch(1, 4));
    let err = host.check(&j.batch(7, 9)).unwrap_err();
    assert!(
        matches!(
            err,
            Reject::Gap {
                expected_seq: 5,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.alert(&OFFENDER).unwrap().kind, AlertKind::Gap);
}

#[test]
fn an_anchor_is_verified_along_its_ladder_from_the_enrolled_key() {
    let mut j = TestJournal::new("h");
    j.execs(3);
    j.checkpoint();
    j.stop_and_restart();
    j.execs(3);
    j.checkpoint();
    let last = j.last_seq();
    let frames = j.frames();
    // Start at the second segment's start (what retention leaves).
    let from = frames
        .iter()
        .filter(|f| f.seq > 1)
        .find(|f| f.bytes[44] == 0)
        .unwrap()
        .seq;
    let batch = j.anchored_batch(from, last);
    assert!(
        batch
            .anchor
            .as_ref()
            .is_some_and(|a| a.epoch > 0 && !a.ladder.links.is_empty())
    );
    let mut host = Host::of(&mut j);
    let v = host.check(&batch).unwrap();
    assert_eq!(
        v.state.anchor_key,
        batch.anchor.as_ref().map(|a| a.public_key)
    );
    assert_eq!(v.state.first_seq, from);
    assert_eq!(
        v.state.status(),
        auditloop_protocol::api::HostStatus::Verified
    );
    assert_eq!(v.verified_through(), last);
    assert_eq!(
        v.checkpoints.len(),
        1,
        "the checkpoint verified under the anchor key"
    );
    host.store(&batch);
    // Later batches carrying the anchor again are checked against the stored chain, not the anchor.
    j.execs(2);
    let next = j.anchored_batch(last + 1, j.last_seq());
    assert_eq!(host.store(&next), (2, 0));
    // A wrong anchor key, an anchor of another host's ladder, a ladder cut short: refused before any
    // record is looked at.
    let mut bad = j.anchored_batch(from, last);
    bad.anchor.as_mut().unwrap().public_key[0] ^= 1;
    let err = Host::of(&mut j).check(&bad).unwrap_err();
    assert!(matches!(err, Reject::Untrusted { .. }), "{err:?}");
    assert_eq!(err.alert(&OFFENDER).unwrap().detail["refused"], "wrong_key");
    let batch = j.anchored_batch(from, last);
    let err = Host::enrolled([4; 32]).check(&batch).unwrap_err();
    assert!(matches!(err, Reject::Untrusted { .. }), "{err:?}");
    let mut cut = j.anchored_batch(from, last);
    cut.anchor.as_mut().unwrap().ladder.links.clear();
    assert!(matches!(
        Host::of(&mut j).check(&cut),
        Err(Reject::Untrusted { .. })
    ));
}

#[test]
fn a_genesis_batch_of_another_key_is_refused() {
    let mut j = TestJournal::new("h");
    j.execs(3);
    j.checkpoint();
    let batch = j.batch(1, j.last_seq());
    let err = Host::enrolled([4; 32]).check(&batch).unwrap_err();
    assert!(matches!(err, Reject::Untrusted { .. }), "{err:?}");
    let alert = err.alert(&OFFENDER).unwrap();
    assert_eq!(alert.kind, AlertKind::Forgery);
    assert_eq!(alert.detail["peer"], "192.0.2.1:1");
    // A host with no enrolled key at all cannot start a chain.
    let nothing = Host {
        state: HostState::default(),
        hashes: HashMap::new(),
    };
    assert!(matches!(
        nothing.check(&batch),
        Err(Reject::Untrusted { .. })
    ));
    assert!(Host::of(&mut j).check(&batch).is_ok());
}

#[test]
fn records_after_the_last_checkpoint_are_pending() {
    let mut j = TestJournal::new("h");
    j.execs(3);
    let cp = j.checkpoint();
    j.execs(2);
    let mut host = Host::of(&mut j);
    let first = j.batch(1, cp + 2);
    let v = host.check(&first).unwrap();
    assert_eq!((v.verified_through(), v.pending()), (cp, 2));
    host.store(&first);
    let cp2 = j.checkpoint();
    let next = j.batch(cp + 1, cp2);
    let v = host.check(&next).unwrap();
    assert_eq!((v.verified_through(), v.pending()), (cp2, 0));
    assert_eq!((v.records.len(), v.duplicates), (1, 2));
}

#[test]
fn a_changed_byte_is_damage_and_nothing_is_returned() {
    let mut j = TestJournal::new("h");
    j.execs(6);
    let mut frames = j.frames();
    frames[3] = tampered(&frames[3]);
    let batch = batch_of(&frames, 1, 7);
    let err = Host::of(&mut j).check(&batch).unwrap_err();
    assert_eq!(
        err,
        Reject::Damaged {
            seq: 4,
            damage: Damage::HashMismatch,
            detail: "record claims seq 4".into()
        }
    );
    let alert = err.alert(&OFFENDER).unwrap();
    assert_eq!(alert.kind, AlertKind::Forgery);
    assert_eq!(alert.detail["refused"], "hash_mismatch");
    // A tampered replayed record is damage too.
    let mut host = Host::of(&mut j);
    host.store(&j.batch(1, 7));
    let err = host.check(&batch).unwrap_err();
    assert!(
        matches!(
            err,
            Reject::Damaged {
                seq: 4,
                damage: Damage::HashMismatch,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_different_history_is_a_fork() {
    let mut a = TestJournal::new("h");
    a.execs(4);
    let mut b = TestJournal::new("h");
    b.execs(6);
    let mut host = Host::of(&mut a);
    host.store(&a.batch(1, 5));
    let err = host.check(&b.batch(1, 7)).unwrap_err();
    assert!(matches!(err, Reject::Fork { seq: 1, .. }), "{err:?}");
    let alert = err.alert(&OFFENDER).unwrap();
    assert_eq!(alert.kind, AlertKind::Forgery);
    assert_eq!(alert.detail["refused"], "chain_fork");
    // Nothing of the stored chain is quoted.
    let stored = hex::encode(host.hashes[&1]);
    assert!(!err.to_string().contains(&stored), "{err}");
    assert!(!alert.detail.to_string().contains(&stored));
}

#[test]
fn a_bad_checkpoint_signature_is_refused() {
    let mut j = TestJournal::new("h");
    j.execs(3);
    let cp = j.checkpoint();
    let mut frames = j.frames();
    let i = frames.iter().position(|f| f.seq == cp).unwrap();
    frames[i] = with_bad_signature(&frames[i]);
    let err = Host::of(&mut j)
        .check(&batch_of(&frames, 1, cp))
        .unwrap_err();
    assert!(
        matches!(err, Reject::Damaged { seq, damage: Damage::BadSignature, .. } if seq == cp),
        "{err:?}"
    );
}

#[test]
fn headers_must_describe_the_frames() {
    let mut j = TestJournal::new("h");
    j.execs(4);
    let mut batch = j.batch(1, 5);
    batch.last_seq = 6;
    assert!(matches!(
        Host::of(&mut j).check(&batch),
        Err(Reject::Malformed(_))
    ));
    let mut batch = j.batch(2, 5);
    batch.first_seq = 1;
    batch.last_seq = 4;
    assert!(matches!(
        Host::of(&mut j).check(&batch),
        Err(Reject::Malformed(_))
    ));
    let mut batch = j.batch(1, 5);
    batch.frames.truncate(batch.frames.len() - 3);
    let err = Host::of(&mut j).check(&batch).unwrap_err();
    assert!(
        matches!(
            err,
            Reject::Damaged {
                seq: 5,
                damage: Damage::Torn,
                ..
            }
        ),
        "{err:?}"
    );
    let mut batch = j.batch(1, 5);
    batch.last_seq = u64::MAX;
    assert!(matches!(
        Host::of(&mut j).check(&batch),
        Err(Reject::Malformed(_))
    ));
}

#[test]
fn restarts_without_agent_stop_raise_an_alert() {
    let mut j = TestJournal::new("h");
    j.execs(2);
    j.stop_and_restart();
    j.execs(2);
    let mut host = Host::of(&mut j);
    let batch = j.batch(1, j.last_seq());
    let v = host.check(&batch).unwrap();
    assert!(v.alerts.is_empty(), "{:?}", v.alerts);
    host.store(&batch);
    let from = j.last_seq() + 1;
    j.crash_and_restart();
    j.execs(1);
    let batch = j.batch(from, j.last_seq());
    let v = host.check(&batch).unwrap();
    assert_eq!(v.alerts.len(), 1, "{:?}", v.alerts);
    assert_eq!(v.alerts[0].kind, AlertKind::UnexpectedRestart);
    assert_eq!(v.alerts[0].detail["previous_generation"], 2);
    assert_eq!(v.state.generation, Some(3));
}

#[test]
fn a_generation_jump_is_an_unexpected_restart() {
    let mut j = TestJournal::new("h");
    j.execs(1);
    let mut host = Host::of(&mut j);
    host.store(&j.batch(1, j.last_seq()));
    let from = j.last_seq() + 1;
    j.stop_and_restart();
    // The new generation's segment is created with its first record.
    j.execs(1);
    let batch = j.batch(from, j.last_seq());
    assert!(host.check(&batch).unwrap().alerts.is_empty());
    // As if the collector had last seen generation 5: generation 2 cannot follow it.
    host.state.generation = Some(5);
    host.state.clean_stop = true;
    let v = host.check(&batch).unwrap();
    assert_eq!(v.alerts.len(), 1);
    assert_eq!(v.alerts[0].kind, AlertKind::UnexpectedRestart);
    assert_eq!(v.alerts[0].detail["generation"], 2);
}

#[test]
fn spool_overflow_losses_raise_an_alert() {
    let mut j = TestJournal::new("h");
    j.loss(LossStage::KernelRingBuffer);
    let seq = j.loss(LossStage::SpoolOverflow);
    j.checkpoint();
    j.loss(LossStage::SpoolOverflow);
    let batch = j.batch(1, j.last_seq());
    let mut host = Host::of(&mut j);
    let v = host.check(&batch).unwrap();
    assert_eq!(
        v.alerts.len(),
        1,
        "one alert per run of overflow events: {:?}",
        v.alerts
    );
    assert_eq!(v.alerts[0].kind, AlertKind::SpoolOverflow);
    assert_eq!(v.alerts[0].seq, Some(seq));
    host.store(&batch);
    // Still overflowing in the next batch: no new alert; after other events, a new overflow alerts again.
    let from = j.last_seq() + 1;
    j.loss(LossStage::SpoolOverflow);
    j.execs(1);
    let again = j.loss(LossStage::SpoolOverflow);
    let batch = j.batch(from, again);
    let v = host.check(&batch).unwrap();
    assert_eq!(v.alerts.len(), 1, "{:?}", v.alerts);
    assert_eq!(v.alerts[0].seq, Some(again));
}

/// Writes seed inputs for the `batch_ingest` fuzz target (real batches, both encodings, and raw frames)
/// into the directory named by `AUDITLOOP_FUZZ_SEEDS`.
#[test]
#[ignore = "writes fuzz seeds"]
fn write_fuzz_seeds() {
    let Some(dir) = std::env::var_os("AUDITLOOP_FUZZ_SEEDS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut j = TestJournal::new("h");
    j.execs(3);
    j.file(7, "/etc/passwd");
    j.checkpoint();
    j.stop_and_restart();
    j.loss(LossStage::SpoolOverflow);
    j.crash_and_restart();
    j.execs(2);
    j.checkpoint();
    let last = j.last_seq();
    let start = j
        .frames()
        .iter()
        .filter(|f| f.bytes[44] == 0)
        .nth(1)
        .unwrap()
        .seq;
    let batches = [
        j.batch(1, last),
        j.batch(1, 4),
        j.anchored_batch(start, last),
    ];
    for (i, batch) in batches.iter().enumerate() {
        std::fs::write(
            dir.join(format!("seed-{i}.zst")),
            batch.encode_binary(1).unwrap(),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("seed-{i}.json")),
            batch.encode_json().unwrap(),
        )
        .unwrap();
        std::fs::write(dir.join(format!("seed-{i}.frames")), &batch.frames).unwrap();
    }
}

#[test]
fn events_after_agent_stop_keep_the_stop_clean() {
    let mut j = TestJournal::new("h");
    j.execs(1);
    j.event(1, auditloop_model::EventBody::AgentStop(Default::default()));
    j.loss(LossStage::SpoolOverflow);
    j.journal().checkpoint().unwrap();
    let last = j.last_seq();
    let mut host = Host::of(&mut j);
    host.store(&j.batch(1, last));
    assert!(host.state.clean_stop);
    j.crash_and_restart();
    j.execs(1);
    let batch = j.batch(last + 1, j.last_seq());
    let v = host.check(&batch).unwrap();
    assert!(v.alerts.is_empty(), "{:?}", v.alerts);
    assert!(!v.state.clean_stop, "a new generation starts unstopped");
}
