//! The journal through the agent: every printed event is journaled, `verify`, `export` and `key show` work
//! on what `run` wrote, and 50 SIGKILLs under load never leave a journal that fails to verify.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use harness::{Agent, agent_bin, temp_dir};
use serde_json::Value;

#[expect(clippy::expect_used, reason = "a test helper fails the test loudly")]
fn auditloop(args: &[&str]) -> std::process::Output {
    Command::new(agent_bin())
        .args(args)
        .output()
        .expect("run auditloop")
}

#[test]
fn run_writes_a_journal_that_verifies_exports_and_detects_tampering() {
    let state = temp_dir("journal-state");
    let state_arg = state.to_str().expect("utf-8");
    let agent = Agent::start(&["--state-dir", state_arg]);
    let marker = harness::marker("journaled");
    std::process::Command::new("/bin/true")
        .arg(&marker)
        .status()
        .expect("true");
    let mut agent = agent;
    agent.wait_for("exec", |_, x| x["argv"][1] == marker.as_str());
    let (status, printed) = agent.stop_with(libc::SIGTERM);
    assert!(status.success());

    let journal = state.join("journal");
    let jdir = journal.to_str().expect("utf-8");
    let pubkey = auditloop(&["key", "show", "--state-dir", state_arg]);
    assert!(pubkey.status.success());
    let key_file = state.join("genesis.pub");
    std::fs::write(&key_file, &pubkey.stdout).expect("key file");
    let out = auditloop(&[
        "verify",
        jdir,
        "--pubkey",
        key_file.to_str().expect("utf-8"),
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(
        report["unsigned_tail"], 0,
        "a clean stop seals the journal: {report}"
    );

    // Every printed event is in the journal, with the same number and content.
    let export = auditloop(&["export", jdir]);
    assert!(export.status.success());
    let exported: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    // Printed copies the stdout stage had to drop (a busy machine: it never blocks journaling) are the
    // only difference, and a `loss` of stage `stdout` in the journal counts them exactly.
    let by_seq: std::collections::BTreeMap<u64, &Value> = exported
        .iter()
        .filter_map(|e| e["seq"].as_u64().map(|s| (s, e)))
        .collect();
    for event in &printed {
        let seq = event["seq"].as_u64().expect("numbered");
        assert_eq!(
            by_seq.get(&seq),
            Some(&event),
            "export returns what run printed"
        );
    }
    let dropped: u64 = exported
        .iter()
        .filter(|e| e["event"]["loss"]["stage"] == "stdout")
        .filter_map(|e| e["event"]["loss"]["count"].as_u64())
        .sum();
    let stdout_losses = exported
        .iter()
        .filter(|e| e["event"]["loss"]["stage"] == "stdout")
        .count() as u64;
    if dropped == 0 {
        assert_eq!(exported, printed, "export returns exactly what run printed");
    } else {
        let unprinted = (exported.len() - printed.len()) as u64;
        assert!(
            unprinted <= dropped + stdout_losses,
            "{unprinted} events neither printed nor counted as dropped copies ({dropped})"
        );
    }
    let ecs = auditloop(&["export", jdir, "--format", "ecs", "--kind", "exec"]);
    let docs: Vec<Value> = String::from_utf8_lossy(&ecs.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("ecs"))
        .collect();
    assert!(
        docs.iter().all(|d| d["event"]["action"] == "exec"),
        "kind filter"
    );
    assert!(
        docs.iter()
            .any(|d| d["process"]["args"][1] == marker.as_str()),
        "ECS process.args"
    );

    // A changed byte in the middle of the journal is found and named.
    let seg = std::fs::read_dir(&journal)
        .expect("journal dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "alj"))
        .expect("a segment");
    let mut bytes = std::fs::read(&seg).expect("segment");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&seg, bytes).expect("tamper");
    let out = auditloop(&["verify", jdir]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("TAMPERED:") && text.contains("seg-0000000000.alj at offset"),
        "{text}"
    );

    let wrong = state.join("wrong.pub");
    std::fs::write(&wrong, "00".repeat(32)).expect("wrong key");
    assert_eq!(
        auditloop(&["verify", jdir, "--pubkey", wrong.to_str().expect("utf-8")])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        auditloop(&["verify", "/nonexistent/journal"]).status.code(),
        Some(2)
    );
    harness::remove_tree(&state);
}

#[test]
fn fifty_sigkills_under_load_leave_a_verifiable_journal_with_continuing_numbers() {
    harness::require_root();
    let state = temp_dir("crash-state");
    let work = temp_dir("crash-load");
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, work) = (Arc::clone(&stop), work.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let p = work.join(format!("f{}", n % 64));
                let _ = std::fs::write(&p, n.to_le_bytes());
                n += 1;
            }
        })
    };
    let mut last_seq = 0u64;
    let mut reapers = Vec::new();
    for round in 0..50 {
        let mut child = Command::new(agent_bin())
            .args([
                "run",
                "--output",
                "json",
                "--config",
                "/nonexistent/config.yaml",
                "--state-dir",
            ])
            .arg(&state)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start agent");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut first = None;
        let mut seen = 0;
        // Kill it while it journals under load: after its start and a varying number of events.
        while let Some(Ok(line)) = lines.next() {
            let ev: Value = serde_json::from_str(&line).expect("json");
            let seq = ev["seq"].as_u64().expect("seq");
            first.get_or_insert(seq);
            seen += 1;
            if seen > 20 + round * 7 {
                break;
            }
        }
        let first = first.expect("the agent printed events");
        assert!(
            first > last_seq,
            "round {round}: numbering restarted at {first} after {last_seq}"
        );
        // SAFETY: SIGKILL to our own child.
        unsafe {
            libc::kill(
                libc::pid_t::try_from(child.id()).expect("pid"),
                libc::SIGKILL,
            )
        };
        drop(lines);
        // A killed agent runs no more code; its teardown in the kernel takes seconds, so reap it aside.
        reapers.push(std::thread::spawn(move || child.wait()));
        let out = auditloop(&[
            "verify",
            state.join("journal").to_str().expect("utf-8"),
            "--json",
        ]);
        let report: Value = serde_json::from_slice(&out.stdout).expect("report");
        assert_eq!(out.status.code(), Some(0), "round {round}: {report}");
        last_seq = report["last_seq"].as_u64().expect("last_seq");
    }
    stop.store(true, Ordering::Relaxed);
    load.join().expect("load thread");
    for r in reapers {
        let _ = r.join();
    }
    harness::remove_tree(&state);
    harness::remove_tree(&work);
}
