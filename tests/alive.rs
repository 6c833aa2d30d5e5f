//! Alive or dead, never a zombie: a full disk under the journal is counted exactly and the chain still
//! verifies; `journal.on_error: halt` exits non-zero naming the journal and the next start continues the
//! chain; a stdout that blocks for 10 s never stops the journal from growing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::{Agent, agent_bin, temp_dir};
use serde_json::Value;

/// A tmpfs of `mib` MiB mounted on a fresh directory, unmounted on drop.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(name: &str, mib: u32) -> SmallDisk {
        harness::require_root();
        let dir = temp_dir(name);
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(&dir)
            .status()
            .expect("mount");
        assert!(status.success(), "mounting a tmpfs on {}", dir.display());
        SmallDisk { dir }
    }

    /// Fills the disk with `filler` until a write fails with ENOSPC.
    fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0x5a_u8; 64 * 1024];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) if err.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(err) => panic!("filling {}: {err}", path.display()),
            }
        }
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        harness::remove_tree(&self.dir);
    }
}

/// Starts `count` short-lived processes (an exec, a fork and an exit each), in the background.
fn exec_storm(count: u32) -> std::process::Child {
    Command::new("/bin/sh")
        .args([
            "-c",
            &format!("i=0; while [ $i -lt {count} ]; do /bin/true; i=$((i+1)); done"),
        ])
        .spawn()
        .expect("exec storm")
}

fn auditloop(args: &[&str]) -> std::process::Output {
    Command::new(agent_bin())
        .args(args)
        .output()
        .expect("run auditloop")
}

/// `verify` on `journal`: its JSON report, asserting a clean result.
fn verify_clean(journal: &Path) -> Value {
    let out = auditloop(&["verify", journal.to_str().expect("utf-8"), "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

/// Every event in `journal`, in order.
fn exported(journal: &Path) -> Vec<Value> {
    let out = auditloop(&["export", journal.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn losses(events: &[Value], stage: &str) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| e["event"].get("loss"))
        .filter(|l| l["stage"] == stage)
        .cloned()
        .collect()
}

fn kind(event: &Value) -> String {
    event["event"]
        .as_object()
        .and_then(|o| o.keys().next().cloned())
        .unwrap_or_default()
}

fn empty_rules(dir: &Path) -> PathBuf {
    let path = dir.join("rules.yaml");
    std::fs::write(&path, "").expect("rules");
    path
}

/// Waits until `done()` or fails after `timeout` with `what`.
fn wait(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_full_disk_is_counted_exactly_and_the_chain_verifies() {
    let disk = SmallDisk::mount("alive-enospc", 24);
    let state = disk.dir.join("state");
    let rules = empty_rules(&temp_dir("alive-rules"));
    let mut agent = Agent::start(&[
        "--state-dir",
        state.to_str().expect("utf-8"),
        "--rules",
        rules.to_str().expect("utf-8"),
    ]);
    let filler = disk.fill();
    // Events keep coming while the disk is full: more than the journal's reserve can hold.
    let mut storm = exec_storm(3000);
    wait(
        Duration::from_secs(60),
        "the agent to notice the full disk",
        || agent.stderr().contains("the disk is full"),
    );
    assert!(storm.wait().expect("storm").success());
    std::fs::remove_file(&filler).expect("free space");
    let loss = agent.wait_for("loss", |_, l| l["stage"] == "journal");
    assert!(
        loss["event"]["loss"]["count"].as_u64().unwrap_or(0) > 0,
        "{loss}"
    );
    // After the loss record, events are journaled again.
    let marker = harness::marker("after-enospc");
    Command::new("/bin/true")
        .arg(&marker)
        .status()
        .expect("true");
    agent.wait_for("exec", |_, x| x["argv"][1] == marker.as_str());
    let (status, _) = agent.stop_with(libc::SIGTERM);
    assert!(status.success(), "{status:?}");

    let journal = state.join("journal");
    let report = verify_clean(&journal);
    assert_eq!(report["unsigned_tail"], 0, "{report}");
    let events = exported(&journal);
    let lost: u64 = losses(&events, "journal")
        .iter()
        .map(|l| l["count"].as_u64().unwrap_or(0))
        .sum();
    assert!(lost > 0);
    assert!(
        losses(&events, "stdout").is_empty(),
        "stdout fell behind: the exact count below would include printed losses"
    );
    // Exact: every event capture produced is either in the chain or in a `loss` record's count.
    let stop = events
        .iter()
        .rev()
        .find_map(|e| e["event"].get("agent_stop"))
        .expect("agent_stop in the journal");
    let consumer_made = [
        "config_loaded",
        "rules_loaded",
        "journal_recovered",
        "agent_stop",
    ];
    let captured = events
        .iter()
        .filter(|e| {
            let k = kind(e);
            // Self-protection follows events (the test's SIGTERM) in the journal stage; only the agent's
            // own check of its kernel objects (`bpf`, no trigger) comes from capture.
            if k == "tamper" {
                return e["event"]["tamper"]["what"] == "bpf"
                    && e["event"]["tamper"]["trigger_seq"] == 0;
            }
            let agent_loss = k == "loss"
                && ["journal", "stdout", "webhook", "spool_overflow"]
                    .contains(&e["event"]["loss"]["stage"].as_str().unwrap_or(""));
            !consumer_made.contains(&k.as_str()) && !agent_loss
        })
        .count() as u64;
    assert_eq!(
        captured + lost,
        stop["events"].as_u64().expect("events"),
        "journaled {captured} + lost {lost} must be every event captured ({stop})"
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"]["exec"]["argv"][1] == marker.as_str()),
        "the event after the loss is journaled"
    );
}

#[test]
fn halt_on_a_full_disk_exits_non_zero_naming_the_journal_and_the_next_start_continues() {
    let disk = SmallDisk::mount("alive-halt", 24);
    let state = disk.dir.join("state");
    let rules = empty_rules(&temp_dir("alive-halt-rules"));
    let args = [
        "--state-dir",
        state.to_str().expect("utf-8"),
        "--rules",
        rules.to_str().expect("utf-8"),
    ];
    let config = "journal:\n  on_error: halt\n";
    let agent = Agent::start_with_config(config, &args);
    let filler = disk.fill();
    let mut storm = exec_storm(3000);
    let (status, _) = {
        let mut agent = agent;
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = agent.try_wait() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the agent kept running on a full disk with on_error: halt"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let stderr = agent.stderr();
        assert!(
            stderr.contains("journal stage stopped") && stderr.contains("the disk is full"),
            "the exit names the stage and the cause: {stderr}"
        );
        (status, ())
    };
    let _ = storm.wait();
    assert_eq!(status.code(), Some(1), "{status:?}");
    // What was accepted is sealed in the reserve: the journal verifies as it is, on the full disk.
    let journal = state.join("journal");
    verify_clean(&journal);
    std::fs::remove_file(&filler).expect("free space");
    // The next start continues the same chain.
    let before = exported(&journal).len();
    let agent = Agent::start_with_config(config, &args);
    let (status, _) = agent.stop_with(libc::SIGTERM);
    assert!(status.success());
    verify_clean(&journal);
    let events = exported(&journal);
    assert!(events.len() > before);
    let lost: u64 = losses(&events, "journal")
        .iter()
        .map(|l| l["count"].as_u64().unwrap_or(0))
        .sum();
    assert!(lost >= 1, "the event that met the full disk is counted");
}

#[test]
fn a_blocked_stdout_never_stops_the_journal() {
    harness::require_root();
    let dir = temp_dir("alive-stdout");
    let state = dir.join("state");
    let rules = empty_rules(&dir);
    std::fs::write(dir.join("config.yaml"), "").expect("config");
    // The agent's stdout is a pipe nobody reads: it fills within the first events and stays full.
    let (reader, writer) = std::io::pipe().expect("pipe");
    let mut child = Command::new(agent_bin())
        .args(["run", "--output", "json", "--config"])
        .arg(dir.join("config.yaml"))
        .arg("--state-dir")
        .arg(&state)
        .arg("--rules")
        .arg(&rules)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("agent");
    let journal = state.join("journal");
    let size = || -> u64 {
        std::fs::read_dir(&journal)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    };
    let mut storm = exec_storm(200);
    assert!(storm.wait().expect("storm").success());
    std::thread::sleep(Duration::from_secs(2));
    let early = size();
    let started = Instant::now();
    // Ten seconds of events while nothing reads stdout.
    let mut last = early;
    let mut grew = 0;
    while started.elapsed() < Duration::from_secs(10) {
        let mut storm = exec_storm(100);
        assert!(storm.wait().expect("storm").success());
        std::thread::sleep(Duration::from_millis(500));
        let now = size();
        if now > last {
            grew += 1;
        }
        last = now;
    }
    let marker = harness::marker("after-blocked-stdout");
    Command::new("/bin/true")
        .arg(&marker)
        .status()
        .expect("true");
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        last > early && grew >= 5,
        "the journal grew {early} -> {last} bytes, in {grew} of the half-second steps"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(30),
            "the agent did not stop with a blocked stdout"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(reader);
    assert!(status.success(), "{status:?}");
    verify_clean(&journal);
    let events = exported(&journal);
    assert!(
        events
            .iter()
            .any(|e| e["event"]["exec"]["argv"][1] == marker.as_str()),
        "events after 10 s of blocked stdout are journaled"
    );
    let dropped: u64 = losses(&events, "stdout")
        .iter()
        .map(|l| l["count"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        dropped > 0,
        "the printed copies stdout never took are counted"
    );
    harness::remove_tree(&dir);
}
