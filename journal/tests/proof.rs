//! What a clean chain proves: the unsigned tail after the last checkpoint (records and the time they span,
//! from the records' own times) and what `HEAD` says (ok, missing, behind within the unsigned tail, behind a
//! checkpoint, beyond the end).
#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

use std::path::{Path, PathBuf};
use std::time::Duration;

use auditloop_journal::files::{self, Head, hex_hash};
use auditloop_journal::reader::Reader;
use auditloop_journal::{
    Damage, FsyncPolicy, HeadState, Journal, JournalOptions, Payload, Report, Unproven,
    VerifyOptions, verify,
};
use auditloop_model::{Event, EventBody, Loss, LossStage, Process, WallTime};

const T0: u64 = 1_700_000_000_000_000_000;
const SEC: u64 = 1_000_000_000;

fn opts(dir: &Path) -> JournalOptions {
    JournalOptions {
        dir: dir.join("journal"),
        key_path: dir.join("keys/journal.key"),
        segment_bytes: 1 << 20,
        fsync: FsyncPolicy::Interval(Duration::from_millis(100)),
        max_bytes: None,
        max_age: None,
        host: "proof-host".into(),
        boot_id: "boot".into(),
        lock_wait: Duration::from_millis(200),
    }
}

fn event_at(time: u64) -> Event {
    Event {
        seq: 0,
        time: WallTime(time),
        mono_ns: 1,
        process: Process {
            pid: 1,
            comm: "t".into(),
            ..Process::default()
        },
        event: EventBody::Loss(Loss {
            stage: LossStage::Decode,
            record: "r".into(),
            count: 0,
            total: 0,
        }),
    }
}

fn jdir(dir: &Path) -> PathBuf {
    dir.join("journal")
}

fn check(dir: &Path) -> Report {
    verify(&jdir(dir), &VerifyOptions::default(), &mut |_, _| {}).unwrap()
}

/// A journal: events at T0 and T0+1 s, a checkpoint, then events at `tail` (synced, not signed), as an
/// agent killed before its next checkpoint leaves it.
fn with_tail(dir: &Path, tail: &[u64]) -> u64 {
    let mut j = Journal::open(opts(dir)).unwrap();
    j.append_event(&mut event_at(T0)).unwrap();
    j.append_event(&mut event_at(T0 + SEC)).unwrap();
    let cp = j.checkpoint().unwrap();
    for &t in tail {
        j.append_event(&mut event_at(t)).unwrap();
    }
    j.sync().unwrap();
    drop(j);
    cp
}

fn write_head(dir: &Path, seq: u64, hash: &str) {
    let head = Head {
        seq,
        hash: hash.to_owned(),
    };
    files::write_json(&files::head_path(&jdir(dir)), &head, true).unwrap();
}

/// Hash (hex) of record `seq`.
fn hash_of(dir: &Path, seq: u64) -> String {
    let rec = Reader::open(&jdir(dir))
        .unwrap()
        .map(Result::unwrap)
        .find(|r| r.seq == seq)
        .unwrap();
    hex_hash(&rec.hash)
}

#[test]
fn the_unsigned_tail_spans_from_its_first_record_to_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let cp = with_tail(
        dir.path(),
        &[T0 + 2 * SEC, T0 + 3 * SEC, T0 + 9 * SEC + SEC / 2],
    );
    let report = check(dir.path());
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.last_checkpoint_seq, cp);
    assert_eq!(report.unsigned_tail, 3);
    assert_eq!(report.unsigned_tail_secs, 7.5, "9.5 s - 2 s: {report:?}");
    assert_eq!(report.head, Some(HeadState::Ok));
    assert_eq!(
        report.unproven(5.0),
        vec![Unproven::UnsignedTail {
            records: 3,
            secs: 7.5,
            limit_secs: 5.0
        }]
    );
    assert_eq!(
        report.unproven(7.5),
        vec![],
        "a span equal to the limit is allowed"
    );
}

#[test]
fn a_sealed_or_single_record_tail_spans_nothing() {
    let dir = tempfile::tempdir().unwrap();
    with_tail(dir.path(), &[T0 + 4 * SEC]);
    let one = check(dir.path());
    assert_eq!((one.unsigned_tail, one.unsigned_tail_secs), (1, 0.0));
    // A clock that went backwards gives no negative span.
    let back = tempfile::tempdir().unwrap();
    with_tail(back.path(), &[T0 + 4 * SEC, T0 + 2 * SEC]);
    let report = check(back.path());
    assert_eq!((report.unsigned_tail, report.unsigned_tail_secs), (2, 0.0));
    // A clean close seals everything.
    let sealed = tempfile::tempdir().unwrap();
    let mut j = Journal::open(opts(sealed.path())).unwrap();
    j.append_event(&mut event_at(T0)).unwrap();
    j.append_event(&mut event_at(T0 + 60 * SEC)).unwrap();
    j.close().unwrap();
    let report = check(sealed.path());
    assert_eq!((report.unsigned_tail, report.unsigned_tail_secs), (0, 0.0));
    assert_eq!(report.unproven(0.0), vec![]);
}

#[test]
fn a_tail_that_starts_with_a_segment_start_is_timed_from_its_creation() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(opts(dir.path())).unwrap();
    j.append_event(&mut event_at(T0)).unwrap();
    j.close().unwrap();
    // The next run: its segment start (created now) and an event 30 s later, never signed.
    let mut j = Journal::open(opts(dir.path())).unwrap();
    let now = WallTime::now().0;
    j.append_event(&mut event_at(now + 30 * SEC)).unwrap();
    j.sync().unwrap();
    drop(j);
    let created = Reader::open(&jdir(dir.path()))
        .unwrap()
        .filter_map(|r| match r.unwrap().payload {
            Payload::SegmentStart(s) => Some(s.created_ns),
            _ => None,
        })
        .last()
        .unwrap();
    let report = check(dir.path());
    assert_eq!(report.unsigned_tail, 2, "{report:?}");
    let want = (now + 30 * SEC - created) as f64 / 1e9;
    assert!(
        (report.unsigned_tail_secs - want).abs() < 1e-6,
        "{} vs {want}",
        report.unsigned_tail_secs
    );
}

#[test]
fn head_states() {
    let dir = tempfile::tempdir().unwrap();
    let cp = with_tail(dir.path(), &[T0 + 2 * SEC, T0 + 3 * SEC]);
    let last = cp + 2;
    let ok = check(dir.path());
    assert_eq!((ok.head, ok.head_seq), (Some(HeadState::Ok), Some(last)));

    // Behind, within the unsigned tail: consistent (records after HEAD were not synced yet).
    write_head(dir.path(), cp + 1, &hash_of(dir.path(), cp + 1));
    let behind = check(dir.path());
    assert!(behind.is_clean(), "{behind:?}");
    assert_eq!(
        (behind.head, behind.head_seq),
        (Some(HeadState::Behind), Some(cp + 1))
    );
    assert_eq!(behind.unproven(60.0), vec![]);
    // At the checkpoint itself: still consistent.
    write_head(dir.path(), cp, &hash_of(dir.path(), cp));
    assert_eq!(check(dir.path()).unproven(60.0), vec![]);

    // Behind the last checkpoint: a checkpoint HEAD never followed.
    write_head(dir.path(), cp - 1, &hash_of(dir.path(), cp - 1));
    let before = check(dir.path());
    assert!(before.is_clean(), "{before:?}");
    assert_eq!(before.head, Some(HeadState::Behind));
    assert_eq!(
        before.unproven(60.0),
        vec![Unproven::HeadBehindCheckpoint {
            head_seq: cp - 1,
            checkpoint_seq: cp
        }]
    );

    // Beyond the end: durable records are missing.
    write_head(dir.path(), last + 3, &hash_of(dir.path(), last));
    let beyond = check(dir.path());
    assert_eq!(beyond.head, Some(HeadState::Beyond));
    assert_eq!(
        beyond.problem.map(|p| p.damage),
        Some(Damage::Truncated),
        "beyond is damage"
    );

    // Another record at HEAD's seq.
    write_head(dir.path(), cp + 1, &hash_of(dir.path(), cp + 2));
    let other = check(dir.path());
    assert_eq!(other.problem.map(|p| p.damage), Some(Damage::HeadMismatch));

    // Missing, and unreadable.
    let head = files::head_path(&jdir(dir.path()));
    std::fs::write(&head, "not json").unwrap();
    let garbled = check(dir.path());
    assert_eq!(garbled.head, Some(HeadState::Missing));
    std::fs::remove_file(&head).unwrap();
    let missing = check(dir.path());
    assert!(missing.is_clean(), "{missing:?}");
    assert_eq!(
        (missing.head, missing.head_seq),
        (Some(HeadState::Missing), None)
    );
    assert_eq!(missing.unproven(60.0), vec![Unproven::HeadMissing]);
}
