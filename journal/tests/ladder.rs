//! The key ladder through the writer: a link for every checkpoint, kept through retention and restarts, so
//! `verify --pubkey` and `read_ladder` trace the retained start's key to the genesis key; a wrong key, a
//! damaged or missing ladder is reported, never passed as trusted.
#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

use std::path::{Path, PathBuf};
use std::time::Duration;

use auditloop_journal::files::{self, Anchor, read_ladder};
use auditloop_journal::keys::{EpochKey, parse_public_key};
use auditloop_journal::ladder::SKIP;
use auditloop_journal::ladder_file::{self, HEADER_LEN, LINK_LEN};
use auditloop_journal::{
    Damage, FsyncPolicy, Journal, JournalError, JournalOptions, Report, RetentionFloor, Trust,
    VerifyOptions, verify,
};
use auditloop_model::{Event, EventBody, Loss, LossStage, Process, WallTime};

/// A memory-backed temporary directory when available: these journals sign thousands of checkpoints.
fn temp() -> tempfile::TempDir {
    if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

fn opts(dir: &Path) -> JournalOptions {
    JournalOptions {
        dir: dir.join("journal"),
        key_path: dir.join("keys/journal.key"),
        segment_bytes: 4096,
        fsync: FsyncPolicy::Never,
        max_bytes: Some(16 * 1024),
        max_age: None,
        host: "ladder-host".into(),
        boot_id: "boot".into(),
        lock_wait: Duration::from_millis(200),
    }
}

fn event(n: u64) -> Event {
    Event {
        seq: 0,
        time: WallTime(1_700_000_000_000_000_000 + n),
        mono_ns: n,
        process: Process {
            pid: 1,
            comm: "t".into(),
            ..Process::default()
        },
        event: EventBody::Loss(Loss {
            stage: LossStage::Decode,
            record: format!("r{n}"),
            count: n,
            total: n,
        }),
    }
}

/// Appends `checkpoints` events, each followed by a checkpoint, with retention free to delete anything.
fn write(dir: &Path, checkpoints: u64) -> [u8; 32] {
    let mut j = Journal::open(opts(dir)).unwrap();
    j.set_retention_floor(RetentionFloor::without_shipper());
    for n in 0..checkpoints {
        j.append_event(&mut event(n)).unwrap();
        j.checkpoint().unwrap();
    }
    let genesis = j.genesis_public_key();
    j.close().unwrap();
    genesis
}

fn jdir(dir: &Path) -> PathBuf {
    dir.join("journal")
}

fn check(dir: &Path, trusted: Option<[u8; 32]>) -> Report {
    let opts = VerifyOptions {
        trusted_public_key: trusted,
        deep: false,
    };
    verify(&jdir(dir), &opts, &mut |_, _| {}).unwrap()
}

fn anchor(dir: &Path) -> Anchor {
    files::read_json(&files::anchor_path(&jdir(dir)))
        .unwrap()
        .unwrap()
}

#[test]
fn the_ladder_survives_retention_and_restarts_and_traces_the_anchor_to_genesis() {
    let tmp = temp();
    let dir = tmp.path();
    let genesis = write(dir, SKIP + 300);
    // Restarts in between: the ladder continues across them.
    write(dir, 30);
    write(dir, SKIP - 200);
    let a = anchor(dir);
    assert!(a.seq > 1, "retention moved ANCHOR: {a:?}");
    assert!(a.epoch > SKIP + 100, "ANCHOR is past a skip point: {a:?}");

    let report = check(dir, Some(genesis));
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.trust, Some(Trust::TrustedKey), "{report:?}");
    assert_eq!(report.genesis_public_key, hex::encode(genesis));
    let expected_links = a.epoch / SKIP + a.epoch % SKIP;
    assert_eq!(report.ladder_links, expected_links, "{report:?}");
    assert_eq!(report.trust_note, None);
    let own = check(dir, None);
    assert_eq!(
        (own.problem.clone(), own.trust),
        (None, Some(Trust::OwnGenesis)),
        "{own:?}"
    );

    // What the shipper hands the collector: the path from genesis to ANCHOR's key, and nothing more.
    let ladder = read_ladder(&jdir(dir)).unwrap();
    assert_eq!(ladder.links.len() as u64, expected_links);
    let anchor_key = parse_public_key(&a.public_key).unwrap();
    assert_eq!(ladder.check(&genesis, a.epoch, &anchor_key), Ok(()));
    let other = EpochKey::generate().unwrap().public();
    assert!(ladder.check(&other, a.epoch, &anchor_key).is_err());

    // Compaction kept the file small: skip links and the steps since the last skip point.
    let len = std::fs::metadata(ladder_file::ladder_path(&jdir(dir)))
        .unwrap()
        .len();
    let max_links = 3 + 2 * SKIP;
    assert!(
        len <= (HEADER_LEN as u64) + max_links * LINK_LEN as u64,
        "{len} bytes"
    );
}

#[test]
fn another_hosts_key_fails_after_retention_and_is_named() {
    let tmp = temp();
    let dir = tmp.path();
    write(dir, 200);
    assert!(anchor(dir).seq > 1);
    let other = EpochKey::generate().unwrap().public();
    let report = check(dir, Some(other));
    let problem = report.problem.expect("another key must not verify");
    assert_eq!(problem.damage, Damage::UntrustedKey, "{problem:?}");
    assert_eq!(problem.segment, "LADDER");
    assert_eq!(problem.seq, anchor(dir).seq);
    assert!(
        problem.detail.contains("not from the trusted key"),
        "{problem:?}"
    );
}

#[test]
fn without_a_ladder_trust_is_untraced_and_a_trusted_key_is_refused() {
    let tmp = temp();
    let dir = tmp.path();
    let genesis = write(dir, 200);
    std::fs::remove_file(ladder_file::ladder_path(&jdir(dir))).unwrap();
    let plain = check(dir, None);
    assert!(plain.is_clean(), "integrity still verifies: {plain:?}");
    assert_eq!(plain.trust, Some(Trust::Untraced));
    assert!(
        plain
            .trust_note
            .as_deref()
            .unwrap()
            .contains("no key ladder"),
        "{plain:?}"
    );
    assert_eq!(plain.genesis_public_key, "");
    let trusted = check(dir, Some(genesis));
    let problem = trusted.problem.expect("a trusted key it cannot check");
    assert_eq!(problem.damage, Damage::UntracedKey, "{problem:?}");
    assert_eq!(trusted.trust, Some(Trust::Untraced));
    assert!(matches!(
        read_ladder(&jdir(dir)),
        Err(JournalError::Untraceable { .. })
    ));

    // The next start begins a ladder at its epoch: still untraced, never claimed.
    write(dir, 5);
    let again = check(dir, Some(genesis));
    assert_eq!(
        again.problem.map(|p| p.damage),
        Some(Damage::UntracedKey),
        "{:?}",
        again.trust_note
    );
    assert!(matches!(
        read_ladder(&jdir(dir)),
        Err(JournalError::Untraceable { why, .. }) if why.contains("starts at epoch")
    ));
}

#[test]
fn a_damaged_ladder_is_reported_by_verify_and_read_ladder() {
    let tmp = temp();
    let dir = tmp.path();
    let genesis = write(dir, 100);
    let path = ladder_file::ladder_path(&jdir(dir));
    let good = std::fs::read(&path).unwrap();
    // A flipped byte in a link record: its check fails.
    let mut bytes = good.clone();
    bytes[HEADER_LEN + 3 * LINK_LEN + 40] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    for trusted in [None, Some(genesis)] {
        let problem = check(dir, trusted).problem.expect("damage is reported");
        assert_eq!(problem.damage, Damage::BadLadder, "{problem:?}");
        assert!(problem.detail.contains("check"), "{problem:?}");
    }
    assert!(matches!(
        read_ladder(&jdir(dir)),
        Err(JournalError::Damaged { .. })
    ));

    // A well-formed record with a forged key (re-checked as an attacker would): the signatures do not chain.
    // The first record is the step link 0→1; its public key starts 16 bytes in.
    let mut forged = good.clone();
    let at = HEADER_LEN;
    forged[at + 16] ^= 0x01;
    let body: Vec<u8> = forged[at..at + 112].to_vec();
    let check_bytes = ladder_check(&body);
    forged[at + 112..at + 120].copy_from_slice(&check_bytes);
    std::fs::write(&path, &forged).unwrap();
    let problem = check(dir, Some(genesis)).problem.expect("a forged link");
    assert!(
        matches!(problem.damage, Damage::UntrustedKey | Damage::BadLadder),
        "{problem:?}"
    );
    assert!(matches!(
        read_ladder(&jdir(dir)),
        Err(JournalError::Damaged { .. })
    ));

    // Even while segment 0 is still retained, a ladder that disagrees with the checkpoints is damage.
    let young = temp();
    let mut o = opts(young.path());
    o.max_bytes = None;
    let mut j = Journal::open(o).unwrap();
    for n in 0..5 {
        j.append_event(&mut event(n)).unwrap();
        j.checkpoint().unwrap();
    }
    j.close().unwrap();
    assert!(check(young.path(), None).is_clean());
    let young_ladder = ladder_file::ladder_path(&jdir(young.path()));
    let mut bytes = std::fs::read(&young_ladder).unwrap();
    bytes.truncate(bytes.len() - LINK_LEN);
    std::fs::write(&young_ladder, &bytes).unwrap();
    let problem = check(young.path(), None).problem.expect("a missing link");
    assert_eq!(problem.damage, Damage::BadLadder, "{problem:?}");
}

/// The check of a ladder record body (the same function the file uses, recomputed by an attacker).
fn ladder_check(body: &[u8]) -> [u8; 8] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"auditloop/journal/ladder-record/v1");
    h.update(body);
    let digest = h.finalize();
    digest[..8].try_into().unwrap()
}

#[test]
fn the_writer_sets_a_damaged_ladder_aside_and_says_so() {
    let tmp = temp();
    let dir = tmp.path();
    write(dir, 10);
    let path = ladder_file::ladder_path(&jdir(dir));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] = b'Z';
    std::fs::write(&path, &bytes).unwrap();
    let j = Journal::open(opts(dir)).unwrap();
    let reset = j.ladder_reset().cloned().expect("reported");
    assert!(reset.reason.contains("key ladder"), "{reset:?}");
    assert_eq!(std::fs::read(&reset.segment).unwrap(), bytes, "kept aside");
    drop(j);
    let report = check(dir, None);
    assert!(
        report
            .trust_note
            .as_deref()
            .is_some_and(|n| n.contains("starts at epoch")),
        "{report:?}"
    );
}

#[test]
fn a_young_journal_needs_no_ladder_links_and_says_so_without_one() {
    let tmp = temp();
    let dir = tmp.path();
    let mut o = opts(dir);
    o.max_bytes = None;
    let mut j = Journal::open(o).unwrap();
    let genesis = j.genesis_public_key();
    j.append_event(&mut event(0)).unwrap();
    j.close().unwrap();
    assert!(read_ladder(&jdir(dir)).unwrap().links.is_empty());
    let report = check(dir, Some(genesis));
    assert_eq!(
        (report.trust, report.ladder_links, report.problem.clone()),
        (Some(Trust::TrustedKey), 0, None)
    );
    std::fs::remove_file(ladder_file::ladder_path(&jdir(dir))).unwrap();
    let report = check(dir, Some(genesis));
    assert!(report.is_clean(), "{report:?}");
    assert!(
        report.trust_note.unwrap().contains("no key ladder"),
        "a journal without a ladder is told it will not be traceable"
    );
}
