//! Journal throughput on this machine: appends per second (framing + SHA-256 chain + buffered write, before
//! fsync cost), appends of whole events (adds bincode encoding), and verification records per second.
//! Run with `cargo xtask bench journal` (or `cargo bench -p auditloop-journal --bench journal`).
#![expect(clippy::unwrap_used, reason = "a benchmark aborts on any error")]

use std::time::{Duration, Instant};

use auditloop_journal::record::{Payload, encode_payload};
use auditloop_journal::{FsyncPolicy, Journal, JournalOptions, VerifyOptions, verify};
use auditloop_model::{Event, EventBody, Exec, Process, WallTime};

const APPENDS: u64 = 2_000_000;

fn sample() -> Event {
    Event {
        seq: 0,
        time: WallTime(1_700_000_000_000_000_000),
        mono_ns: 42,
        process: Process {
            pid: 4242,
            tid: 4242,
            ppid: 1,
            comm: "bash".into(),
            exe: "/usr/bin/bash".into(),
            parent_exe: "/usr/sbin/sshd".into(),
            ..Process::default()
        },
        event: EventBody::Exec(Exec {
            filename: "/usr/bin/curl".into(),
            argv: vec![
                "curl".into(),
                "-s".into(),
                "https://example.invalid/install.sh".into(),
            ],
            ret: Some(0),
            success: true,
            dirfd: -100,
            ..Exec::default()
        }),
    }
}

fn main() {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/tmp"
    };
    let dir = tempfile::tempdir_in(base).unwrap();
    let opts = JournalOptions {
        dir: dir.path().join("journal"),
        key_path: dir.path().join("keys/journal.key"),
        segment_bytes: 256 * 1024 * 1024,
        fsync: FsyncPolicy::Never,
        max_bytes: None,
        max_age: None,
        host: "bench".into(),
        boot_id: "bench".into(),
        lock_wait: Duration::from_millis(200),
    };
    let payload = encode_payload(&Payload::Event(sample())).unwrap();

    let mut journal = Journal::open(opts.clone()).unwrap();
    let started = Instant::now();
    for _ in 0..APPENDS {
        journal.append_encoded(&payload).unwrap();
    }
    journal.sync().unwrap();
    let raw = rate(APPENDS, started.elapsed());
    let started = Instant::now();
    let mut event = sample();
    for _ in 0..APPENDS / 4 {
        journal.append_event(&mut event).unwrap();
    }
    let encoded = rate(APPENDS / 4, started.elapsed());
    journal.close().unwrap();

    let started = Instant::now();
    let report = verify(&opts.dir, &VerifyOptions::default(), &mut |_, _| {}).unwrap();
    let verify_rate = rate(report.records, started.elapsed());
    assert!(report.is_clean(), "{report:?}");
    let started = Instant::now();
    let deep = verify(
        &opts.dir,
        &VerifyOptions {
            deep: true,
            ..VerifyOptions::default()
        },
        &mut |_, _| {},
    )
    .unwrap();
    let deep_rate = rate(deep.records, started.elapsed());

    let started = Instant::now();
    let mut h = [0u8; 32];
    for i in 0..APPENDS {
        h = auditloop_journal::record::record_hash(i, &h, &payload);
    }
    let hash_rate = rate(APPENDS, started.elapsed());
    println!(
        "  sha256 chain step alone:     {hash_rate:>10.0} records/s ({})",
        h[0]
    );
    println!(
        "journal bench ({} byte event payload, {} records, one core):",
        payload.len(),
        report.records
    );
    println!(
        "  append (encoded event):      {:>10.0} records/s   target >= 1,000,000",
        raw
    );
    println!("  append (encode + append):    {:>10.0} records/s", encoded);
    println!(
        "  verify:                      {:>10.0} records/s   target >= 2,000,000",
        verify_rate
    );
    println!(
        "  verify --deep (decode all):  {:>10.0} records/s",
        deep_rate
    );
}

fn rate(n: u64, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}
