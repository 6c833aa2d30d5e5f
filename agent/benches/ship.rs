//! Shipping on this machine: the agent's shipper reading its journal and the real collector storing in
//! SQLite, over loopback.
//!
//! 1. Throughput: a journal of 1,000,000 events is shipped from scratch; events/s = events / time until the
//!    collector acknowledged the last record.
//! 2. Latency: events are appended at a steady 10,000/s for 10 s (100 ms group commit and a checkpoint every
//!    second, as the agent does) while the shipper runs; event→stored latency is the collector's `stored_ns`
//!    minus the event's time, event→verified the `stored_ns` of the first checkpoint covering the event
//!    (records after a batch's last checkpoint are only pending until then).
//!
//! Run with `cargo xtask bench ship` (it builds the release collector and passes its path in
//! `AUDITLOOP_COLLECTOR_BIN`).
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark aborts on any error"
)]

use std::path::Path;
use std::time::{Duration, Instant};

use auditloop::ship::{self, ShipSettings};
use auditloop_journal::RetentionFloor;
use auditloop_journal::{FsyncPolicy, Journal, JournalOptions};
use auditloop_model::{Event, EventBody, File, FileOp, Process, WallTime};
use auditloop_testkit::{CollectorProcess, CollectorSpec};
use tokio::sync::watch;

const THROUGHPUT_EVENTS: u64 = 1_000_000;
const RATE: u64 = 10_000;
const RATE_SECS: u64 = 10;

fn event(i: u64) -> Event {
    Event {
        seq: 0,
        time: WallTime::now(),
        mono_ns: i,
        process: Process {
            pid: 4242,
            tid: 4242,
            ppid: 1,
            comm: "bench".into(),
            exe: "/usr/bin/bench".into(),
            ..Process::default()
        },
        event: EventBody::File(File {
            op: FileOp::Open,
            syscall: "openat".into(),
            path: format!("/var/lib/app/data-{}.bin", i % 1000),
            flags: 0o1101,
            ret: Some(3),
            ..File::default()
        }),
    }
}

fn collector(dir: &Path) -> CollectorProcess {
    let bin = auditloop_testkit::bins::collector_bin()
        .expect("AUDITLOOP_COLLECTOR_BIN (run through `cargo xtask bench ship`)");
    CollectorProcess::start(&CollectorSpec::new(bin, dir)).unwrap()
}

fn options(state: &Path, fsync: FsyncPolicy) -> JournalOptions {
    let mut opts = JournalOptions::in_state_dir(state, "bench");
    opts.fsync = fsync;
    opts
}

fn start_shipper(
    state: &Path,
    c: &CollectorProcess,
    host: &str,
) -> (
    RetentionFloor,
    watch::Sender<Option<Instant>>,
    ship::ShipperHandle,
) {
    let acked = RetentionFloor::acknowledged_up_to(0);
    let (tx, rx) = watch::channel(None);
    let settings = ShipSettings {
        collectors: vec![c.url()],
        token_file: enroll(state, c, host),
        host_id: host.into(),
        ca_file: None,
        client_cert: None,
        batch_max_bytes: 1024 * 1024,
        batch_max_wait: Duration::from_millis(200),
        timeout: Duration::from_secs(30),
        insecure_http: false,
    };
    let cursor = ship::cursor::AckCursor::load(state).unwrap();
    let handle = ship::spawn(
        settings,
        state.join("journal"),
        cursor,
        acked.clone(),
        rx,
        auditloop::telemetry::Telemetry::default(),
        None,
    )
    .unwrap();
    (acked, tx, handle)
}

/// Enrolls `host` with the genesis key of the journal under `state`; returns its token file.
fn enroll(state: &Path, c: &CollectorProcess, host: &str) -> std::path::PathBuf {
    let key = auditloop_journal::keys::EpochKey::load(&state.join("keys/journal.key"))
        .unwrap()
        .expect("the journal key (the journal is opened first)");
    let answer: serde_json::Value = reqwest::blocking::Client::new()
        .post(format!("{}/v1/enroll", c.url()))
        .bearer_auth(&c.enroll_token)
        .json(&serde_json::json!({
            "host_id": host,
            "genesis_public_key": hex::encode(key.genesis_public()),
        }))
        .send()
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .unwrap();
    let file = c.dir.join(format!("{host}.token"));
    std::fs::write(&file, answer["token"].as_str().unwrap()).unwrap();
    file
}

fn head(state: &Path) -> u64 {
    let text = std::fs::read_to_string(state.join("journal/HEAD")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["seq"]
        .as_u64()
        .unwrap()
}

fn throughput(dir: &Path, c: &CollectorProcess) {
    let state = dir.join("throughput");
    let mut journal = Journal::open(options(&state, FsyncPolicy::Never)).unwrap();
    for i in 0..THROUGHPUT_EVENTS {
        journal.append_event(&mut event(i)).unwrap();
    }
    journal.close().unwrap();
    let last = head(&state);
    let start = Instant::now();
    let (acked, stop, handle) = start_shipper(&state, c, "throughput");
    while acked.acknowledged() < last {
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = start.elapsed();
    stop.send_replace(Some(Instant::now()));
    handle.join().unwrap();
    println!(
        "ship throughput: {THROUGHPUT_EVENTS} events ({last} records) journal → collector storage in {:.2} s = {:.0} events/s",
        elapsed.as_secs_f64(),
        THROUGHPUT_EVENTS as f64 / elapsed.as_secs_f64()
    );
}

fn latency(dir: &Path, c: &CollectorProcess) {
    let state = dir.join("latency");
    let mut journal = Journal::open(options(
        &state,
        FsyncPolicy::Interval(Duration::from_millis(100)),
    ))
    .unwrap();
    let (acked, stop, handle) = start_shipper(&state, c, "latency");
    let start = Instant::now();
    let total = RATE * RATE_SECS;
    let mut last_checkpoint = Instant::now();
    for i in 0..total {
        let due = start + Duration::from_nanos(i * 1_000_000_000 / RATE);
        while Instant::now() < due {
            journal.maybe_sync().unwrap();
            std::thread::sleep(Duration::from_micros(200));
        }
        journal.append_event(&mut event(i)).unwrap();
        if last_checkpoint.elapsed() >= Duration::from_secs(1) {
            journal.checkpoint().unwrap();
            last_checkpoint = Instant::now();
        }
    }
    journal.close().unwrap();
    let last = head(&state);
    while acked.acknowledged() < last {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.send_replace(Some(Instant::now()));
    handle.join().unwrap();

    let client = reqwest::blocking::Client::new();
    // Every record in seq order: events (time, stored) and the checkpoints that cover them.
    let mut records: Vec<serde_json::Value> = Vec::new();
    let mut after: Option<serde_json::Value> = None;
    loop {
        let mut url = format!("{}/v1/events?host=latency&limit=1000", c.url());
        if let Some(a) = &after {
            url.push_str(&format!(
                "&after={}",
                a.as_str().map_or_else(|| a.to_string(), str::to_owned)
            ));
        }
        let page: serde_json::Value = client
            .get(url)
            .bearer_auth(&c.admin_token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        records.extend(page["events"].as_array().unwrap().iter().cloned());
        match page.get("next") {
            Some(next) if !next.is_null() => after = Some(next.clone()),
            _ => break,
        }
    }
    records.sort_by_key(|r| r["seq"].as_u64().unwrap());
    // event→stored: the collector stored the event; event→verified: it stored a checkpoint signed by the
    // host's key that covers the event (`verified_ns`; until then the event is only pending).
    let mut stored = Vec::with_capacity(total as usize);
    let mut verified = Vec::with_capacity(total as usize);
    for r in &records {
        let Some(time) = r["event"]["time"].as_str() else {
            continue;
        };
        let time_ns = humantime::parse_rfc3339(time)
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        if r["event"]["event"]["file"].is_object() {
            stored.push(r["stored_ns"].as_u64().unwrap().saturating_sub(time_ns));
            let at = r["verified_ns"]
                .as_u64()
                .expect("every event is verified once the journal is closed and shipped");
            verified.push(at.saturating_sub(time_ns));
        }
    }
    let report = |what: &str, mut latencies: Vec<u64>| {
        latencies.sort_unstable();
        let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize] as f64 / 1e6;
        println!(
            "ship latency at {RATE} events/s for {RATE_SECS} s: {} events; event→{what} p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            latencies.len(),
            pct(0.50),
            pct(0.99),
            pct(1.0)
        );
    };
    report("stored", stored);
    report("verified", verified);
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let c = collector(dir.path());
    throughput(dir.path(), &c);
    latency(dir.path(), &c);
}
