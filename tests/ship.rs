//! Shipping to a real collector over loopback: a million events arrive exactly once with an intact chain;
//! a collector outage, a SIGKILLed agent and a collector that lost its database all end with zero loss and
//! zero duplicates; tampered batches and wrong tokens are refused.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use auditloop_journal::record::{SEGMENT_HEADER_LEN, read_frame};
use auditloop_journal::{FsyncPolicy, Journal, JournalOptions};
use auditloop_model::{Event, EventBody, Loss, LossStage, Process, WallTime};
use auditloop_protocol::batch::{Batch, CONTENT_TYPE_BINARY, CONTENT_TYPE_JSON};
use harness::collector::{Collector, free_port};
use harness::{Agent, agent_bin, temp_dir};
use serde_json::Value;

/// Writes `n` synthetic events into the journal of `state` (as an agent would have, without shipping).
pub(crate) fn write_journal(state: &Path, n: u64) {
    let mut opts = JournalOptions::in_state_dir(state, "test-host");
    opts.fsync = FsyncPolicy::Never;
    let mut journal = Journal::open(opts).expect("journal");
    for i in 0..n {
        let mut event = Event {
            seq: 0,
            time: WallTime::now(),
            mono_ns: i,
            process: Process {
                pid: 4242,
                comm: "ship-test".into(),
                ..Process::default()
            },
            event: EventBody::Loss(Loss {
                stage: LossStage::Decode,
                record: "synthetic".into(),
                count: i,
                total: i,
            }),
        };
        journal.append_event(&mut event).expect("append");
    }
    journal.close().expect("close");
}

/// The durable head of `state`'s journal: sequence number and hash (hex).
fn head(state: &Path) -> (u64, String) {
    let text = std::fs::read_to_string(state.join("journal/HEAD")).expect("HEAD");
    let head: Value = serde_json::from_str(&text).expect("HEAD json");
    (
        head["seq"].as_u64().expect("seq"),
        head["hash"].as_str().expect("hash").to_owned(),
    )
}

/// `auditloop verify --json` of `state`'s journal; asserts it is clean.
fn verify(state: &Path) -> Value {
    let out = Command::new(agent_bin())
        .arg("verify")
        .arg(state.join("journal"))
        .arg("--json")
        .output()
        .expect("verify");
    let report: Value = serde_json::from_slice(&out.stdout).expect("verify json");
    assert_eq!(
        out.status.code(),
        Some(0),
        "local journal verifies: {report}"
    );
    report
}

/// Starts an agent shipping `state` to `collector` as `host` (enrolled with the journal's key first).
fn shipping_agent(state: &Path, collector: &Collector, host: &str) -> Agent {
    let token = collector.enroll(host, state);
    Agent::start(&[
        "--state-dir",
        state.to_str().expect("utf-8"),
        "--collector",
        &collector.url(),
        "--token-file",
        token.to_str().expect("utf-8"),
        "--host-id",
        host,
    ])
}

/// Asserts the collector holds exactly the local chain: records 1..=head, once each, verified from this
/// journal's genesis key up to the final checkpoint (which only this host's key could sign).
pub(crate) fn assert_same_chain(collector: &Collector, host: &str, state: &Path) -> Value {
    let report = verify(state);
    let (seq, hash) = head(state);
    let entry = collector.wait_host(host, Duration::from_secs(120), |h| {
        h["last_seq"].as_u64() == Some(seq)
    });
    let key = Command::new(agent_bin())
        .args(["key", "show", "--state-dir"])
        .arg(state)
        .output()
        .expect("key show");
    let key = String::from_utf8_lossy(&key.stdout).trim().to_owned();
    assert_eq!(
        entry["genesis_key"],
        key.as_str(),
        "same genesis key: {entry}"
    );
    assert_eq!(entry["first_seq"], 1, "{entry}");
    assert_eq!(
        entry["last_hash"],
        hash.as_str(),
        "the same last record: {entry}"
    );
    assert_eq!(
        entry["last_checkpoint_seq"].as_u64(),
        Some(seq),
        "the final checkpoint verified: {entry}"
    );
    assert_eq!(
        entry["records"], report["records"],
        "every record once: {entry}"
    );
    assert_eq!(
        entry["events"], report["events"],
        "every event once: {entry}"
    );
    assert_eq!(entry["status"], "verified", "{entry}");
    entry
}

/// Runs short-lived processes until the flag clears: steady event load.
fn load(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let _ = Command::new("/bin/true").arg("ship-load").status();
            n += 1;
        }
        n
    })
}

#[test]
fn a_million_events_are_stored_exactly_once_with_an_intact_chain() {
    let dir = temp_dir("ship-million");
    let state = dir.join("state");
    write_journal(&state, 1_000_000);
    let (written, _) = head(&state);
    let collector = Collector::start(&dir.join("collector"), 0);
    let agent = shipping_agent(&state, &collector, "million");
    collector.wait_host("million", Duration::from_secs(600), |h| {
        h["last_seq"].as_u64() >= Some(written)
    });
    let (status, _) = agent.stop_with(libc::SIGTERM);
    assert!(status.success());
    let entry = assert_same_chain(&collector, "million", &state);
    let page = collector.get("/v1/events?host=million&kind=loss&limit=1");
    let loss = &page["events"][0]["event"]["event"]["loss"];
    assert_eq!(loss["stage"], "decode", "{page}");
    assert_eq!(loss["record"], "synthetic", "{page}");
    assert!(entry["events"].as_u64() > Some(1_000_000), "{entry}");
    harness::remove_tree(&dir);
}

#[test]
fn collector_outage_and_agent_sigkill_lose_and_duplicate_nothing() {
    let dir = temp_dir("ship-outage");
    let state = dir.join("state");
    let port = free_port();
    let mut collector = Collector::start(&dir.join("collector"), port);
    let agent = shipping_agent(&state, &collector, "outage");
    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(Arc::clone(&stop));
    collector.wait_host("outage", Duration::from_secs(30), |h| {
        h["last_seq"].as_u64() > Some(0)
    });
    // Outage under load: the journal spools, the shipper backs off.
    collector.kill();
    std::thread::sleep(Duration::from_secs(3));
    let collector = Collector::start(&dir.join("collector"), port);
    std::thread::sleep(Duration::from_secs(1));
    // SIGKILL mid-stream, then a new agent on the same journal resumes from the ack cursor.
    let (_, _) = agent.stop_with(libc::SIGKILL);
    let agent = shipping_agent(&state, &collector, "outage");
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let spawned = loader.join().expect("load thread");
    assert!(spawned > 10, "load ran ({spawned} processes)");
    let (status, _) = agent.stop_with(libc::SIGTERM);
    assert!(status.success());
    assert_same_chain(&collector, "outage", &state);
    harness::remove_tree(&dir);
}

#[test]
fn a_collector_that_lost_its_database_gets_everything_again() {
    let dir = temp_dir("ship-gap");
    let state = dir.join("state");
    let port = free_port();
    let mut first = Collector::start(&dir.join("first"), port);
    let agent = shipping_agent(&state, &first, "gap");
    first.wait_host("gap", Duration::from_secs(30), |h| {
        h["last_seq"].as_u64() > Some(0)
    });
    first.kill();
    // Same address, empty database: once the host is enrolled there (its new token written to the file the
    // agent reads after a refusal), the agent's next batch starts past 1, gets 409 and resends from 1.
    let second = Collector::start(&dir.join("second"), port);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !agent
        .stderr()
        .contains("waits until the token file changes")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the agent was not refused by the new collector: {}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    second.enroll_to("gap", &state, &first.enroll("gap", &state));
    let marker = harness::marker("gap");
    let _ = Command::new("/bin/true").arg(&marker).status();
    second.wait_host("gap", Duration::from_secs(60), |h| {
        h["last_seq"].as_u64() > Some(1)
    });
    let (status, _) = agent.stop_with(libc::SIGTERM);
    assert!(status.success());
    assert_same_chain(&second, "gap", &state);
    let alerts = second.get("/v1/alerts?host=gap&kind=gap");
    assert!(
        alerts["alerts"].as_array().is_some_and(|a| !a.is_empty()),
        "the 409 was raised as a gap alert: {alerts}"
    );
    harness::remove_tree(&dir);
}

/// Frames of records `1..=last` of `state`'s journal, as a batch.
fn batch_of(state: &Path, last: u64) -> Batch {
    let mut frames = Vec::new();
    let segments =
        auditloop_journal::files::list_segments(&state.join("journal")).expect("segments");
    'outer: for (_, path) in segments {
        let bytes = std::fs::read(&path).expect("segment");
        let mut off = SEGMENT_HEADER_LEN;
        while let Some(Ok(rec)) = bytes.get(off..).map(read_frame) {
            if rec.seq > last {
                break 'outer;
            }
            frames.extend_from_slice(&bytes[off..off + rec.len]);
            off += rec.len;
        }
    }
    Batch {
        first_seq: 1,
        last_seq: last,
        anchor: None,
        frames,
    }
}

#[test]
fn tampered_batches_and_wrong_tokens_are_refused_and_store_nothing() {
    let dir = temp_dir("ship-tamper");
    let state: PathBuf = dir.join("state");
    write_journal(&state, 50);
    let (last, _) = head(&state);
    let collector = Collector::start(&dir.join("collector"), 0);
    let token = std::fs::read_to_string(collector.enroll("tamper", &state)).expect("token");
    let token = token.trim();
    let good = batch_of(&state, last);
    let body = good.encode_binary(3).expect("encode");

    let (status, _) =
        collector.post_batch("tamper", "wrong-token", CONTENT_TYPE_BINARY, body.clone());
    assert_eq!(status, 401);

    let mut tampered = good.clone();
    let middle = tampered.frames.len() / 2;
    tampered.frames[middle] ^= 0x01;
    let (status, reply) = collector.post_batch(
        "tamper",
        token,
        CONTENT_TYPE_BINARY,
        tampered.encode_binary(3).expect("encode"),
    );
    assert_eq!(status, 422, "{reply}");
    assert!(reply["error"].is_string(), "422 names the problem: {reply}");
    assert!(
        collector
            .host("tamper")
            .is_none_or(|h| h["records"].as_u64() == Some(0)),
        "nothing stored from a tampered batch"
    );

    let (status, reply) = collector.post_batch(
        "tamper",
        token,
        CONTENT_TYPE_JSON,
        good.encode_json().expect("json"),
    );
    assert_eq!(status, 200, "{reply}");
    let (status, _) = collector.post_batch("tamper", token, CONTENT_TYPE_BINARY, body);
    assert_eq!(status, 200, "a replayed batch is accepted");
    let entry = collector.host("tamper").expect("host stored");
    assert_eq!(
        entry["records"].as_u64(),
        Some(last),
        "stored once: {entry}"
    );

    let (status, reply) =
        collector.post_batch("tamper", token, CONTENT_TYPE_BINARY, b"garbage".to_vec());
    assert_eq!(status, 400);
    assert!(reply["error"].is_string(), "400 names the reason: {reply}");
    harness::remove_tree(&dir);
}
