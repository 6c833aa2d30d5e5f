//! What `verify` proves about journals the real agent wrote: a forged unsigned tail, a missing `HEAD` and a
//! `HEAD` behind the last checkpoint are not proven (exit 3); after retention moved `ANCHOR`,
//! `verify --pubkey` follows the key ladder (another host's key fails, the right one succeeds, no ladder
//! means trust cannot be traced, never a claimed check); an idle agent signs a heartbeat checkpoint at least
//! every ~3 s, also while `verify` reads its live journal.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use auditloop_journal::files::{self, Anchor, Head};
use auditloop_journal::keys::{EpochKey, parse_public_key};
use auditloop_journal::reader::Reader;
use auditloop_journal::record::{SEGMENT_HEADER_LEN, encode_event, frame, read_frame};
use auditloop_journal::{Payload, ladder_file};
use auditloop_model::{Event, EventBody, Loss, LossStage, Process, WallTime};
use harness::{Agent, agent_bin, temp_dir};
use serde_json::Value;

fn auditloop(args: &[&str]) -> std::process::Output {
    Command::new(agent_bin())
        .args(args)
        .output()
        .expect("run auditloop")
}

/// `auditloop verify DIR --json EXTRA...`: exit code and report.
fn verify_json(journal: &Path, extra: &[&str]) -> (Option<i32>, Value) {
    let dir = journal.to_str().expect("utf-8");
    let mut args = vec!["verify", dir, "--json"];
    args.extend_from_slice(extra);
    let out = auditloop(&args);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify --json printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

/// `auditloop verify DIR EXTRA...` (text): exit code and stdout.
fn verify_text(journal: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let dir = journal.to_str().expect("utf-8");
    let mut args = vec!["verify", dir];
    args.extend_from_slice(extra);
    let out = auditloop(&args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Every event kind the agent can capture, from its own error message for an unknown one (so the list
/// follows the agent).
fn all_event_kinds() -> Vec<String> {
    let dir = temp_dir("kinds");
    let config = dir.join("config.yaml");
    std::fs::write(&config, "capture:\n  disable: [no-such-kind]\n").expect("config");
    let out = Command::new(agent_bin())
        .args(["run", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .output()
        .expect("run auditloop");
    harness::remove_tree(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let known = stderr
        .split("(known: ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("the agent did not list its event kinds: {stderr}"));
    known.split(", ").map(str::to_owned).collect()
}

/// A config under which the agent captures and watches nothing (no kind, no sensitive-path reads, no
/// watched files), so it stays idle whatever else runs on the machine.
fn idle_config() -> String {
    format!(
        "capture:\n  disable: [{}]\n  sensitive_paths: []\nwatch:\n  paths: []\n",
        all_event_kinds().join(", ")
    )
}

/// Runs the agent on `state` with `config` until its start, lets `work` run, stops it cleanly.
fn run_agent(state: &Path, config: &str, work: impl FnOnce()) {
    let agent = Agent::start_with_config(config, &["--state-dir", state.to_str().expect("utf-8")]);
    work();
    let (status, _) = agent.stop_with(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
}

/// The genesis key of `state` (what `auditloop key show` prints), written to a file.
fn genesis_key_file(state: &Path) -> PathBuf {
    let out = auditloop(&["key", "show", "--state-dir", state.to_str().expect("utf-8")]);
    assert!(out.status.success());
    let file = state.join("genesis.pub");
    std::fs::write(&file, &out.stdout).expect("key file");
    file
}

/// Appends `times.len()` well-formed, hash-linked event records with those times after the last record of
/// `journal` (no checkpoint), as whoever can write the files but holds no key would.
fn forge_tail(journal: &Path, times: &[u64]) -> u64 {
    let segments = files::list_segments(journal).expect("segments");
    let (_, last_segment) = segments.last().expect("a segment").clone();
    let mut bytes = std::fs::read(&last_segment).expect("segment");
    let (mut seq, mut hash) = (0, [0u8; 32]);
    let mut off = SEGMENT_HEADER_LEN;
    while let Some(Ok(rec)) = bytes.get(off..).map(read_frame) {
        (seq, hash) = (rec.seq, rec.hash);
        off += rec.len;
    }
    assert_eq!(off, bytes.len(), "the journal ends in a whole record");
    for (n, &time) in times.iter().enumerate() {
        seq += 1;
        let event = Event {
            seq,
            time: WallTime(time),
            mono_ns: n as u64,
            process: Process {
                pid: 4242,
                comm: "forger".into(),
                ..Process::default()
            },
            event: EventBody::Loss(Loss {
                stage: LossStage::Decode,
                record: "forged".into(),
                count: 0,
                total: 0,
            }),
        };
        let payload = encode_event(&event).expect("encode");
        hash = frame(&mut bytes, seq, &hash, &payload);
    }
    std::fs::write(&last_segment, &bytes).expect("write the forged tail");
    seq
}

fn write_head(journal: &Path, seq: u64, hash: [u8; 32]) {
    let head = Head {
        seq,
        hash: files::hex_hash(&hash),
    };
    files::write_json(&files::head_path(journal), &head, true).expect("HEAD");
}

/// Hash of record `seq` of `journal`.
fn hash_of(journal: &Path, seq: u64) -> [u8; 32] {
    Reader::open(journal)
        .expect("reader")
        .map(|r| r.expect("record"))
        .find(|r| r.seq == seq)
        .map(|r| r.hash)
        .expect("the record")
}

/// Copies the journal directory `from` to `to` (segments and side files).
fn copy_journal(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("copy dir");
    for entry in std::fs::read_dir(from).expect("journal dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }
}

/// A journal the agent wrote and sealed with a clean stop, in `dir/state/journal`.
fn agent_journal(dir: &Path) -> PathBuf {
    let state = dir.join("state");
    run_agent(&state, "", || {
        let marker = harness::marker("verify");
        Command::new("/bin/true")
            .arg(&marker)
            .status()
            .expect("true");
    });
    state.join("journal")
}

#[test]
fn a_forged_unsigned_tail_is_not_proven() {
    let dir = temp_dir("verify-tail");
    let journal = agent_journal(&dir);
    let (code, clean) = verify_json(&journal, &[]);
    assert_eq!(code, Some(0), "{clean}");

    // A tail spanning 12 s, hash-linked and never signed.
    let forged = dir.join("forged");
    copy_journal(&journal, &forged);
    let t = WallTime::now().0;
    let last = forge_tail(&forged, &[t, t + 4_000_000_000, t + 12_000_000_000]);
    let (code, report) = verify_json(&forged, &[]);
    assert_eq!(code, Some(3), "{report}");
    assert_eq!(clean["head"], "ok", "{clean}");
    assert_eq!(clean["verdict"], "ok", "{clean}");
    assert_eq!(report["unsigned_tail"], 3, "{report}");
    assert_eq!(report["unsigned_tail_secs"], 12.0, "{report}");
    assert_eq!(report["verdict"], "unproven", "{report}");
    assert_eq!(report["unproven"][0]["kind"], "unsigned_tail", "{report}");
    assert_eq!(report["problem"], Value::Null, "the chain itself is intact");
    // HEAD moved to the forged end as well: still not proven.
    write_head(&forged, last, hash_of(&forged, last));
    let (code, text) = verify_text(&forged, &[]);
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.starts_with("UNPROVEN:") && text.contains("span 12.0 s"),
        "{text}"
    );
    // A longer allowance accepts it; a short tail passes the default.
    assert_eq!(
        verify_json(&forged, &["--max-unsigned-secs", "30"]).0,
        Some(0)
    );
    let short = dir.join("short");
    copy_journal(&journal, &short);
    forge_tail(&short, &[t, t + 2_000_000_000]);
    let (code, report) = verify_json(&short, &[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["unsigned_tail"], 2, "{report}");

    // Bad usage is still 2.
    assert_eq!(
        verify_json(&journal, &[]).0,
        Some(0),
        "the original is untouched"
    );
    assert_eq!(
        auditloop(&[
            "verify",
            journal.to_str().expect("utf-8"),
            "--max-unsigned-secs",
            "-1"
        ])
        .status
        .code(),
        Some(2)
    );
    harness::remove_tree(&dir);
}

#[test]
fn after_retention_pubkey_follows_the_key_ladder_and_another_hosts_key_fails() {
    let dir = temp_dir("verify-ladder");
    let state = dir.join("state");
    // Small segments and a small limit: retention moves ANCHOR while the agent runs (no shipper: every
    // durable record may go).
    let config = "journal:\n  segment_bytes: 4096\n  max_bytes: 32768\nwatch:\n  paths: []\n";
    run_agent(&state, config, || {
        let started = Instant::now();
        let mut n = 0;
        while n < 400 || started.elapsed() < Duration::from_secs(4) {
            Command::new("/bin/true")
                .arg("ladder-load")
                .status()
                .expect("true");
            n += 1;
        }
    });
    let journal = state.join("journal");
    let anchor: Anchor = files::read_json(&files::anchor_path(&journal))
        .expect("ANCHOR")
        .expect("ANCHOR");
    assert!(
        anchor.seq > 1 && anchor.epoch > 0,
        "retention ran: {anchor:?}"
    );
    let key_file = genesis_key_file(&state);
    let key = key_file.to_str().expect("utf-8");

    // Another host's genesis key fails, naming the ladder.
    let other = dir.join("other.pub");
    let other_key = EpochKey::generate().expect("key").public();
    std::fs::write(&other, files::hex_hash(&other_key)).expect("other key");
    let other = other.to_str().expect("utf-8");
    let (code, report) = verify_json(&journal, &["--pubkey", other]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["problem"]["damage"], "untrusted_key", "{report}");
    assert_eq!(report["problem"]["segment"], "LADDER", "{report}");
    let (code, text) = verify_text(&journal, &["--pubkey", other]);
    assert_eq!(code, Some(1));
    assert!(text.starts_with("UNTRUSTED:"), "{text}");
    assert!(!text.contains("verified from the trusted key"), "{text}");

    // The right key: traced through the ladder to ANCHOR's key.
    let (code, report) = verify_json(&journal, &["--pubkey", key]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["trust"], "trusted_key", "{report}");
    assert!(report["ladder_links"].as_u64() >= Some(1), "{report}");
    let genesis = std::fs::read_to_string(&key_file).expect("key");
    assert_eq!(report["genesis_public_key"], genesis.trim(), "{report}");
    let (_, text) = verify_text(&journal, &["--pubkey", key]);
    assert!(
        text.contains("signatures verified from the trusted key")
            && text.contains("key ladder links"),
        "{text}"
    );
    // What the shipper will send: it leads from the genesis key to ANCHOR's key.
    let ladder = files::read_ladder(&journal).expect("read_ladder");
    let genesis_key = parse_public_key(&genesis).expect("genesis key");
    let anchor_key = parse_public_key(&anchor.public_key).expect("anchor key");
    assert_eq!(
        ladder.check(&genesis_key, anchor.epoch, &anchor_key),
        Ok(())
    );

    // Without a ladder: trust cannot be traced; a trusted key is refused, never claimed.
    let bare = dir.join("bare");
    copy_journal(&journal, &bare);
    std::fs::remove_file(ladder_file::ladder_path(&bare)).expect("remove LADDER");
    let (code, report) = verify_json(&bare, &["--pubkey", key]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["problem"]["damage"], "untraced_key", "{report}");
    let (code, text) = verify_text(&bare, &["--pubkey", key]);
    assert_eq!(code, Some(1));
    assert!(
        text.starts_with("UNTRACED:") && text.contains("cannot be checked"),
        "{text}"
    );
    let (code, text) = verify_text(&bare, &[]);
    assert_eq!(code, Some(0), "integrity alone still verifies: {text}");
    assert!(text.contains("TRUST NOT TRACED"), "{text}");
    assert!(!text.contains("verified from the"), "{text}");
    harness::remove_tree(&dir);
}

#[test]
fn a_missing_or_stale_head_is_not_proven() {
    let dir = temp_dir("verify-head");
    let journal = agent_journal(&dir);
    let (code, clean) = verify_json(&journal, &[]);
    assert_eq!(code, Some(0), "{clean}");

    // HEAD missing.
    let headless = dir.join("headless");
    copy_journal(&journal, &headless);
    std::fs::remove_file(files::head_path(&headless)).expect("remove HEAD");
    let (code, report) = verify_json(&headless, &[]);
    assert_eq!(code, Some(3), "{report}");
    assert_eq!(report["head"], "missing", "{report}");
    assert_eq!(report["unproven"][0]["kind"], "head_missing", "{report}");

    // HEAD behind the last checkpoint (a checkpoint HEAD never followed).
    let behind = dir.join("behind");
    copy_journal(&journal, &behind);
    let checkpoint = clean["last_checkpoint_seq"].as_u64().expect("a checkpoint");
    write_head(&behind, checkpoint - 1, hash_of(&behind, checkpoint - 1));
    let (code, report) = verify_json(&behind, &[]);
    assert_eq!(code, Some(3), "{report}");
    assert_eq!(report["head"], "behind", "{report}");
    assert_eq!(
        report["unproven"][0]["kind"], "head_behind_checkpoint",
        "{report}"
    );
    harness::remove_tree(&dir);
}

/// Sequence number and kind of every record in `journal` (for failure messages).
fn record_kinds(journal: &Path) -> Vec<(u64, String)> {
    Reader::open(journal)
        .map(|reader| {
            reader
                .filter_map(Result::ok)
                .map(|r| {
                    let kind = match &r.payload {
                        Payload::Event(e) => format!("{:?}", e.event.kind()),
                        Payload::Checkpoint(_) => "checkpoint".into(),
                        Payload::SegmentStart(_) => "segment_start".into(),
                    };
                    (r.seq, kind)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checkpoint sequence numbers in `journal`.
fn checkpoints(journal: &Path) -> Vec<u64> {
    Reader::open(journal)
        .map(|reader| {
            reader
                .filter_map(Result::ok)
                .filter(|r| matches!(r.payload, Payload::Checkpoint(_)))
                .map(|r| r.seq)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_idle_agent_signs_a_heartbeat_at_least_every_three_seconds() {
    let dir = temp_dir("verify-heartbeat");
    let state = dir.join("state");
    let agent = Agent::start_with_config(
        &idle_config(),
        &["--state-dir", state.to_str().expect("utf-8")],
    );
    let journal = state.join("journal");
    // Watch for ~10 s, noting when each new checkpoint appears.
    let started = Instant::now();
    let mut seen = checkpoints(&journal);
    let mut arrivals = vec![started];
    let mut verified_live = 0;
    while started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        let now = checkpoints(&journal);
        if now.len() > seen.len() {
            arrivals.push(Instant::now());
            seen = now;
            // A live journal verifies while the agent writes it.
            if verified_live < 2 {
                let (code, report) = verify_json(&journal, &[]);
                assert_eq!(code, Some(0), "live verify: {report}");
                verified_live += 1;
            }
        }
    }
    arrivals.push(Instant::now());
    let gaps: Vec<f64> = arrivals
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_secs_f64())
        .collect();
    let beats = arrivals.len() - 2;
    assert!(
        beats >= 3,
        "only {beats} checkpoints in ~10 s idle; gaps {gaps:?}"
    );
    assert!(
        gaps.iter().all(|g| *g <= 3.6),
        "a gap of more than ~3 s without a checkpoint: {gaps:?}"
    );
    // They are heartbeats: consecutive checkpoints with nothing journaled between them.
    let consecutive = seen.windows(2).filter(|w| w[1] == w[0] + 1).count();
    assert!(
        consecutive >= 2,
        "checkpoints follow each other directly: {seen:?}; records: {:?}",
        record_kinds(&journal)
    );
    let (status, _) = agent.stop_with(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
    let (code, report) = verify_json(&journal, &[]);
    assert_eq!(code, Some(0), "{report}");
    harness::remove_tree(&dir);
}
