//! Journal behaviour: clean journals verify, reopen continues the chain, torn tails are cut and reported,
//! keys evolve, the trusted key is enforced, retention respects the floor.
#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

use std::path::Path;
use std::time::Duration;

use auditloop_journal::reader::Reader;
use auditloop_journal::{
    Damage, FsyncPolicy, Journal, JournalOptions, Payload, RetentionFloor, VerifyOptions, verify,
};
use auditloop_model::{Event, EventBody, Loss, LossStage, Process, WallTime};

fn opts(dir: &Path) -> JournalOptions {
    JournalOptions {
        dir: dir.join("journal"),
        key_path: dir.join("keys/journal.key"),
        segment_bytes: 4096,
        fsync: FsyncPolicy::Interval(Duration::from_millis(100)),
        max_bytes: None,
        max_age: None,
        host: "test-host".into(),
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

fn check(dir: &Path) -> auditloop_journal::Report {
    verify(
        &dir.join("journal"),
        &VerifyOptions::default(),
        &mut |_, _| {},
    )
    .unwrap()
}

#[test]
fn clean_journal_verifies_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(opts(dir.path())).unwrap();
    let genesis = j.genesis_public_key();
    for n in 0..200 {
        let mut ev = event(n);
        let seq = j.append_event(&mut ev).unwrap();
        assert_eq!(ev.seq, seq);
        if n % 50 == 49 {
            j.checkpoint().unwrap();
        }
    }
    j.close().unwrap();
    let report = check(dir.path());
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.events, 200);
    assert!(report.segments > 3, "rotation by size: {report:?}");
    assert_eq!(report.unsigned_tail, 0, "close seals with a checkpoint");
    let trusted = VerifyOptions {
        trusted_public_key: Some(genesis),
        deep: true,
    };
    assert!(
        verify(&dir.path().join("journal"), &trusted, &mut |_, _| {})
            .unwrap()
            .is_clean()
    );
    let events: Vec<Event> = Reader::open(&dir.path().join("journal"))
        .unwrap()
        .filter_map(|r| match r.unwrap().payload {
            Payload::Event(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(events.len(), 200);
    assert_eq!(events[7].event, event(7).event);
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
}

#[test]
fn reopen_continues_the_chain_and_the_key_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let mut last = 0;
    for run in 0..3 {
        let mut j = Journal::open(opts(dir.path())).unwrap();
        assert_eq!(j.generation(), run + 1);
        assert!(j.next_seq() > last);
        for n in 0..10 {
            last = j.append_event(&mut event(n)).unwrap();
        }
        j.close().unwrap();
    }
    assert!(check(dir.path()).is_clean());
}

#[test]
fn torn_tail_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(opts(dir.path())).unwrap();
    for n in 0..5 {
        j.append_event(&mut event(n)).unwrap();
    }
    j.sync().unwrap();
    let next = j.next_seq();
    drop(j); // crash: no close
    let seg = std::fs::read_dir(dir.path().join("journal"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "alj"))
        .max()
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let len = bytes.len();
    bytes.extend_from_slice(&[0x41, 0x00, 0x00]); // half a frame, as a crash mid-write leaves
    std::fs::write(&seg, &bytes).unwrap();
    // Before the writer cuts it, `verify` reports the torn tail beyond HEAD as a crash, not as damage.
    let report = check(dir.path());
    assert!(report.is_clean(), "{report:?}");
    assert!(report.torn_tail.is_some(), "{report:?}");
    let j = Journal::open(opts(dir.path())).unwrap();
    let rec = j.recovered().cloned().unwrap();
    assert_eq!(
        (rec.offset, rec.bytes_cut, rec.last_seq),
        (len as u64, 3, next - 1)
    );
    assert_eq!(
        j.next_seq(),
        next + 1,
        "the new segment start takes the next number"
    );
    j.close().unwrap();
    assert!(check(dir.path()).is_clean());
}

#[test]
fn a_record_cut_short_below_head_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(opts(dir.path())).unwrap();
    for n in 0..5 {
        j.append_event(&mut event(n)).unwrap();
    }
    j.sync().unwrap();
    drop(j);
    let seg = std::fs::read_dir(dir.path().join("journal"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "alj"))
        .max()
        .unwrap();
    // Cutting into the last durable record: HEAD says it was written, so this is not a crash tail.
    let bytes = std::fs::read(&seg).unwrap();
    std::fs::write(&seg, &bytes[..bytes.len() - 10]).unwrap();
    let report = check(dir.path());
    assert!(report.torn_tail.is_none(), "{report:?}");
    assert!(!report.is_clean(), "{report:?}");
}

#[test]
fn crash_between_checkpoint_and_key_store_is_reconciled() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    let mut j = Journal::open(o.clone()).unwrap();
    j.append_event(&mut event(1)).unwrap();
    let old_key = std::fs::read(&o.key_path).unwrap();
    j.checkpoint().unwrap();
    drop(j);
    std::fs::write(&o.key_path, old_key).unwrap(); // the evolved key never reached the disk
    let mut j = Journal::open(o).unwrap();
    j.append_event(&mut event(2)).unwrap();
    j.close().unwrap();
    assert!(check(dir.path()).is_clean());
}

#[test]
fn wrong_trusted_key_is_reported_at_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(opts(dir.path())).unwrap();
    j.append_event(&mut event(0)).unwrap();
    j.close().unwrap();
    let other = VerifyOptions {
        trusted_public_key: Some([3; 32]),
        deep: false,
    };
    let report = verify(&dir.path().join("journal"), &other, &mut |_, _| {}).unwrap();
    let problem = report.problem.unwrap();
    assert_eq!(
        (problem.damage, problem.seq, problem.offset),
        (Damage::UntrustedKey, 1, 8)
    );
}

#[test]
fn retention_deletes_only_below_the_floor_and_moves_the_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.max_bytes = Some(8192);
    let mut j = Journal::open(o.clone()).unwrap();
    for n in 0..100 {
        j.append_event(&mut event(n)).unwrap();
    }
    let segments_before = std::fs::read_dir(&o.dir).unwrap().count();
    j.set_retention_floor(RetentionFloor::acknowledged_up_to(59));
    for n in 0..40 {
        j.append_event(&mut event(n)).unwrap();
    }
    j.close().unwrap();
    let report = check(dir.path());
    assert!(report.is_clean(), "{report:?}");
    assert!(report.first_seq > 1 && report.first_seq <= 60, "{report:?}");
    assert!(std::fs::read_dir(&o.dir).unwrap().count() < segments_before + 6);
}

#[test]
fn retention_by_age_keeps_recent_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.max_age = Some(Duration::from_millis(300));
    let mut j = Journal::open(o.clone()).unwrap();
    j.set_retention_floor(RetentionFloor::without_shipper());
    for n in 0..60 {
        j.append_event(&mut event(n)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(400));
    for n in 0..60 {
        j.append_event(&mut event(n)).unwrap();
    }
    j.close().unwrap();
    let report = check(dir.path());
    assert!(report.is_clean(), "{report:?}");
    assert!(
        report.first_seq > 1,
        "old segments were deleted: {report:?}"
    );
}

/// Whether this process holds a POSIX write lock on the file with inode `ino` (from `/proc/locks`).
fn holds_write_lock(ino: u64) -> bool {
    let me = std::process::id().to_string();
    std::fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .any(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // "1: POSIX  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF"
            f.get(1) == Some(&"POSIX")
                && f.get(3) == Some(&"WRITE")
                && f.get(4) == Some(&me.as_str())
                && f.get(5).and_then(|d| d.rsplit(':').next()) == Some(ino.to_string().as_str())
        })
}

#[test]
fn the_writer_holds_the_journal_lock_while_open() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let mut first = Journal::open(opts(dir.path())).unwrap();
    first.append_event(&mut event(1)).unwrap();
    let ino = std::fs::metadata(dir.path().join("journal/LOCK"))
        .unwrap()
        .ino();
    assert!(holds_write_lock(ino), "no lock on LOCK while open");
    first.close().unwrap();
    assert!(!holds_write_lock(ino), "the lock outlived the writer");
    // Reopened, the journal continues the chain under the lock again.
    let mut second = Journal::open(opts(dir.path())).unwrap();
    assert!(holds_write_lock(ino));
    second.append_event(&mut event(2)).unwrap();
    second.close().unwrap();
    let report = check(dir.path());
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.events, 2);
}

/// Segment files of the journal, by name.
fn segment_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("journal"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("seg-"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_run_that_journals_nothing_leaves_the_journal_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    // A first start that fails before journaling anything: no segment, and the key is kept.
    let first = Journal::open(opts(dir.path())).unwrap();
    let key = first.genesis_public_key();
    drop(first);
    assert!(segment_names(dir.path()).is_empty());
    let mut j = Journal::open(opts(dir.path())).unwrap();
    assert_eq!(
        j.genesis_public_key(),
        key,
        "the genesis key is not replaced"
    );
    j.append_event(&mut event(1)).unwrap();
    j.close().unwrap();
    let before = segment_names(dir.path());
    // Later failed starts, cleanly closed or not, add nothing.
    Journal::open(opts(dir.path())).unwrap().close().unwrap();
    drop(Journal::open(opts(dir.path())).unwrap());
    assert_eq!(segment_names(dir.path()), before);
    let mut j = Journal::open(opts(dir.path())).unwrap();
    assert_eq!(j.generation(), 2, "failed starts use no generation");
    j.append_event(&mut event(2)).unwrap();
    j.close().unwrap();
    let report = check(dir.path());
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.events, report.interrupted_start), (2, None));
}

#[test]
fn an_empty_last_segment_is_an_interrupted_start_and_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(opts(dir.path())).unwrap();
    j.append_event(&mut event(1)).unwrap();
    j.close().unwrap();
    let names = segment_names(dir.path());
    // What an interrupted start of an older version left: a segment holding only its header, and a
    // half-created segment file.
    let index = names.len();
    let empty = dir.path().join(format!("journal/seg-{index:010}.alj"));
    std::fs::write(&empty, b"ALJ\x01\x01\x00\x00\x00").unwrap();
    let unfinished = dir
        .path()
        .join(format!("journal/seg-{:010}.alj.new", index + 1));
    std::fs::write(&unfinished, b"ALJ\x01").unwrap();
    let report = check(dir.path());
    assert!(report.is_clean(), "not damage: {report:?}");
    assert_eq!(
        report.interrupted_start.as_deref(),
        Some(format!("seg-{index:010}.alj").as_str())
    );
    let mut j = Journal::open(opts(dir.path())).unwrap();
    let rec = j.recovered().cloned().unwrap();
    assert_eq!((rec.segment, rec.bytes_cut), (empty.clone(), 8));
    assert!(!unfinished.exists());
    j.append_event(&mut event(2)).unwrap();
    j.close().unwrap();
    let report = check(dir.path());
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.events, report.interrupted_start), (2, None));
}

#[test]
fn an_empty_segment_before_durable_records_is_still_damage() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(opts(dir.path())).unwrap();
    for n in 0..60 {
        j.append_event(&mut event(n)).unwrap();
    }
    j.close().unwrap();
    let names = segment_names(dir.path());
    assert!(names.len() >= 2, "{names:?}");
    // The last segment's records are durable (HEAD names them): emptying it is truncation.
    let last = dir.path().join("journal").join(names.last().unwrap());
    std::fs::write(&last, b"ALJ\x01\x01\x00\x00\x00").unwrap();
    let report = check(dir.path());
    assert!(report.problem.is_some(), "{report:?}");
    assert_eq!(report.interrupted_start, None);
}

#[test]
fn deleted_segments_are_not_replaced_by_a_new_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(opts(dir.path())).unwrap();
    j.append_event(&mut event(1)).unwrap();
    j.close().unwrap();
    for name in segment_names(dir.path()) {
        std::fs::remove_file(dir.path().join("journal").join(name)).unwrap();
    }
    let err = Journal::open(opts(dir.path())).err().unwrap().to_string();
    assert!(err.contains("segments were deleted"), "{err}");
}
