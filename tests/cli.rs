//! The agent's command line: clean shutdown, refusal without root, config errors.

use std::os::unix::process::CommandExt;
use std::process::Command;

use harness::{Agent, agent_bin};

#[test]
fn sigint_and_sigterm_stop_cleanly_with_a_final_event() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let agent = Agent::start(&[]);
        let (status, events) = agent.stop_with(signal);
        assert!(status.success(), "signal {signal}: exit status {status}");
        let last = events.last().expect("events");
        assert!(
            last["event"].get("agent_stop").is_some(),
            "signal {signal}: last event is agent_stop: {last}"
        );
        assert_eq!(last["event"]["agent_stop"]["decode_errors"], 0, "{last}");
        let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
        assert_eq!(seqs.len(), events.len(), "every event is numbered");
        assert!(
            seqs.windows(2).all(|w| w[1] > w[0]),
            "journal sequence numbers strictly increase"
        );
    }
}

#[test]
fn refuses_to_run_without_root() {
    harness::require_root();
    let out = Command::new(agent_bin())
        .args(["run", "--config", "/nonexistent"])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run the agent as nobody");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("must run as root"), "{stderr}");
}

#[test]
fn config_error_names_file_line_and_field() {
    harness::require_root();
    let dir = std::env::temp_dir().join(harness::marker("config"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("config.yaml");
    std::fs::write(&path, "capture:\n  ring_bufer_bytes: 4096\n").expect("write config");
    let out = Command::new(agent_bin())
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .expect("run the agent");
    harness::remove_tree(&dir);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!("{}:2:3:", path.display());
    assert!(stderr.contains(&want), "{stderr}");
    assert!(stderr.contains("ring_bufer_bytes"), "{stderr}");
}

#[test]
fn sequence_numbers_continue_across_restarts_within_a_boot() {
    let keep = harness::temp_dir("seq-state");
    let state = ["--state-dir", keep.to_str().expect("utf-8")];
    let first = harness::Agent::start(&state);
    let (status, events) = first.stop_with(libc::SIGTERM);
    assert!(status.success());
    let last = events
        .last()
        .and_then(|e| e["seq"].as_u64())
        .expect("last seq");
    let second = harness::Agent::start(&state);
    let (_, events) = second.stop_with(libc::SIGTERM);
    let first_seq = events
        .first()
        .and_then(|e| e["seq"].as_u64())
        .expect("first seq");
    assert!(
        first_seq > last,
        "numbers continue across a restart: {first_seq} after {last}"
    );
    harness::remove_tree(&keep);
}

#[test]
fn a_second_agent_on_the_same_state_dir_is_refused() {
    let state = harness::temp_dir("second-agent");
    let agent = harness::Agent::start(&["--state-dir", state.to_str().expect("utf-8")]);
    let mut child = Command::new(agent_bin())
        .args(["run", "--config"])
        .arg(agent.dir.join("config.yaml"))
        .arg("--state-dir")
        .arg(&state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run a second agent");
    // It waits up to 15 s for the lock (DEFAULT_LOCK_WAIT) before giving up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().expect("second agent status").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a second agent kept running on the same state directory");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let second = child.wait_with_output().expect("second agent output");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the journal is open for writing by another process"),
        "{stderr}"
    );
    let journal = state.join("journal");
    assert!(stderr.contains(&journal.display().to_string()), "{stderr}");
    // The first agent was not disturbed: it stops cleanly and its journal verifies.
    let (status, events) = agent.stop_with(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
    assert!(!events.is_empty());
    let verify = Command::new(agent_bin())
        .arg("verify")
        .arg(&journal)
        .output()
        .expect("auditloop verify");
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    harness::remove_tree(&state);
}

/// Runs the agent on `state` until its `agent_start`, stops it cleanly, and checks that its numbers
/// continue after `after` and that the journal verifies. Returns the run's last sequence number.
fn good_run(state: &std::path::Path, after: u64, what: &str) -> u64 {
    let agent = Agent::start(&["--state-dir", state.to_str().expect("utf-8")]);
    let (status, events) = agent.stop_with(libc::SIGTERM);
    assert!(
        status.success(),
        "{what}: the next good start failed: {status}"
    );
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    let (first, last) = (seqs.first().copied(), seqs.last().copied());
    assert!(
        first.is_some_and(|f| f > after),
        "{what}: the chain continues after seq {after}: {first:?}"
    );
    verify_clean(state, what);
    last.unwrap_or(after)
}

fn verify_clean(state: &std::path::Path, what: &str) {
    let out = Command::new(agent_bin())
        .arg("verify")
        .arg(state.join("journal"))
        .output()
        .expect("auditloop verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("OK"),
        "{what}: verify: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn failed_starts_never_brick_the_state_dir() {
    harness::require_root();
    let dir = harness::temp_dir("bad-starts");
    let state = dir.join("state");
    let s = state.to_str().expect("utf-8").to_owned();
    let bad_syscall = dir.join("bad-syscall.yaml");
    std::fs::write(&bad_syscall, "capture:\n  syscalls: [frobnicate]\n").expect("config");
    let bad_rules = dir.join("bad-rules.yaml");
    std::fs::write(
        &bad_rules,
        "- rule: r\n  condition: proc.nmae = x\n  output: o\n",
    )
    .expect("rules");
    let empty = dir.join("empty.yaml");
    std::fs::write(&empty, "").expect("config");
    let agent = agent_bin();
    let agent = agent.to_str().expect("utf-8");
    let run = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["run", "--state-dir", &s, "--config"]
            .iter()
            .map(|a| (*a).to_owned())
            .collect();
        args.push(empty.display().to_string());
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    };
    let mut last = good_run(&state, 0, "first run");
    // Each failure point of start-up, with what its error must say.
    let cases: Vec<(&str, Command, &str)> = vec![
        (
            "a mistyped flag",
            {
                let mut c = Command::new(agent);
                c.args(run(&["--colector", "http://127.0.0.1:9"]));
                c
            },
            "--colector",
        ),
        (
            "a missing token file",
            {
                let mut c = Command::new(agent);
                c.args(run(&[
                    "--collector",
                    "http://127.0.0.1:9",
                    "--token-file",
                    "/nonexistent",
                ]));
                c
            },
            "/nonexistent",
        ),
        (
            "an unknown syscall name",
            {
                let mut c = Command::new(agent);
                c.args(["run", "--state-dir", &s, "--config"])
                    .arg(&bad_syscall);
                c
            },
            "frobnicate",
        ),
        (
            "a rules error",
            {
                let mut c = Command::new(agent);
                c.args(run(&["--rules", bad_rules.to_str().expect("utf-8")]));
                c
            },
            "proc.nmae",
        ),
        (
            "the kernel refusing the programs",
            {
                let mut c = Command::new("setpriv");
                c.args([
                    "--bounding-set=-bpf,-sys_admin,-perfmon",
                    "--inh-caps=-bpf,-sys_admin,-perfmon",
                ])
                .arg(agent)
                .args(run(&[]));
                c
            },
            "loading the kernel programs failed",
        ),
        (
            "a tracepoint that cannot attach",
            {
                let mut c = Command::new("unshare");
                let script = format!(
                    "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug 2>/dev/null; exec {agent} {}",
                    run(&[]).join(" ")
                );
                c.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
                c
            },
            "attaching tracepoint",
        ),
    ];
    for (what, mut command, says) in cases {
        let out = command.output().expect("run the failing start");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: the start should fail");
        assert!(
            stderr.contains(says),
            "{what}: the error names `{says}`: {stderr}"
        );
        verify_clean(&state, what);
        last = good_run(&state, last, what);
    }
    // SIGKILL at every moment of start-up.
    for delay_ms in [0u64, 10, 30, 60, 100, 150, 250, 400, 700, 1200] {
        let what = format!("SIGKILL {delay_ms} ms into start-up");
        let mut child = Command::new(agent)
            .args(run(&["--output", "json"]))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the agent");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        verify_clean(&state, &what);
        last = good_run(&state, last, &what);
    }
    harness::remove_tree(&dir);
}
