//! Helpers for auditloop's integration tests: start the real agent binary, read its JSON events, and
//! wait for the ones a test caused.
//!
//! Tests using this need root and a kernel that loads the agent's programs; without them they fail with a
//! message saying what is missing (they never skip).
#![expect(
    clippy::panic,
    clippy::expect_used,
    reason = "a test harness fails the test loudly when the agent misbehaves"
)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "harness/collector.rs"]
pub mod collector;
#[path = "harness/tls.rs"]
pub mod tls;
#[path = "harness/webhook.rs"]
pub mod webhook;

/// How long a test waits for an event it caused before failing.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a test waits for the agent's `agent_start` (loading and verifying every BPF program takes a few
/// seconds on an idle machine, many more on a loaded one; this bounds a hang, it measures nothing).
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Path of the `auditloop` binary: `$AUDITLOOP_BIN`, else next to this test executable's `deps/` dir.
pub fn agent_bin() -> PathBuf {
    auditloop_testkit::bins::agent_bin().unwrap_or_else(|e| panic!("{e}"))
}

/// Fails the test unless it runs as root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "integration tests load BPF programs and must run as root (euid is {euid})"
    );
}

/// A unique marker for one test's commands.
pub fn marker(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("marker-{name}-{}-{nanos:x}", std::process::id())
}

/// A running agent whose stdout events are collected.
pub struct Agent {
    /// Private directory of this agent: `config.yaml` and `state/`.
    pub dir: PathBuf,
    child: Child,
    events: Receiver<Value>,
    seen: Vec<Value>,
    stderr: Arc<Mutex<String>>,
}

impl Agent {
    /// Starts `auditloop run --output json` with default config, a private state dir and `extra`
    /// arguments, and waits for its `agent_start` event.
    pub fn start(extra: &[&str]) -> Agent {
        Agent::start_with_config("", extra)
    }

    /// Like [`Agent::start`], with `config` (YAML) as its config file.
    pub fn start_with_config(config: &str, extra: &[&str]) -> Agent {
        require_root();
        let dir = std::env::temp_dir().join(marker("agent"));
        std::fs::create_dir_all(&dir).expect("agent temp dir");
        std::fs::write(dir.join("config.yaml"), config).expect("write config");
        let mut command = Command::new(agent_bin());
        command
            .args(["run", "--output", "json", "--config"])
            .arg(dir.join("config.yaml"));
        if !extra.contains(&"--state-dir") {
            command.arg("--state-dir").arg(dir.join("state"));
        }
        command.args(extra);
        Agent::spawn(dir, command)
    }

    /// Starts `command`, an `auditloop run --output json` however it is spelled (an installed binary, under
    /// `setpriv`), and waits for its `agent_start` event. `dir` is removed when the agent is dropped.
    pub fn spawn(dir: PathBuf, mut command: Command) -> Agent {
        require_root();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning the agent");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            // Line by line, so a test can watch what the agent logs while it runs.
            let mut reader = BufReader::new(stderr_pipe);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&String::from_utf8_lossy(&line));
                }
                line.clear();
            }
        });
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("agent printed a non-JSON line ({e}): {line}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let mut agent = Agent {
            dir,
            child,
            events: rx,
            seen: Vec::new(),
            stderr,
        };
        agent.wait_within("agent_start", START_TIMEOUT, |_, _| true);
        agent
    }

    /// Waits for an event of `kind` for which `pred(event, body)` holds (`body` is the kind's object);
    /// fails the test after [`EVENT_TIMEOUT`]. Returns the whole event.
    pub fn wait_for(&mut self, kind: &str, pred: impl Fn(&Value, &Value) -> bool) -> Value {
        self.wait_within(kind, EVENT_TIMEOUT, pred)
    }

    /// Like [`Agent::wait_for`], failing after `timeout`.
    pub fn wait_within(
        &mut self,
        kind: &str,
        timeout: Duration,
        pred: impl Fn(&Value, &Value) -> bool,
    ) -> Value {
        let matches = |ev: &Value| ev["event"].get(kind).is_some_and(|body| pred(ev, body));
        if let Some(ev) = self.seen.iter().find(|ev| matches(ev)) {
            return ev.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(ev) => {
                    let hit = matches(&ev);
                    self.seen.push(ev.clone());
                    if hit {
                        return ev;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no `{kind}` event matched within {timeout:?}; {} events seen; agent stderr:\n{}",
                    self.seen.len(),
                    self.stderr()
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "agent output ended before a matching `{kind}` event; status {:?}; stderr:\n{}",
                    self.child.try_wait(),
                    self.stderr()
                ),
            }
        }
    }

    /// Reads events until `done(seen)` holds; fails the test after `timeout`.
    pub fn wait_until(&mut self, timeout: Duration, done: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .events
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(ev) => self.seen.push(ev),
                Err(RecvTimeoutError::Timeout) => {
                    assert!(
                        Instant::now() < deadline,
                        "condition not met within {timeout:?}; {} events seen",
                        self.seen.len()
                    );
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("agent output ended; stderr:\n{}", self.stderr())
                }
            }
        }
    }

    /// Every event seen so far.
    pub fn seen(&self) -> &[Value] {
        &self.seen
    }

    /// The agent's stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The agent's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the agent without waiting.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(pid, signal) };
    }

    /// The agent's exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends `signal` and waits for the agent to exit; collects the remaining events.
    pub fn stop_with(mut self, signal: libc::c_int) -> (ExitStatus, Vec<Value>) {
        self.signal(signal);
        let status = self.child.wait().expect("waiting for the agent");
        while let Ok(ev) = self.events.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(ev);
        }
        (status, std::mem::take(&mut self.seen))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        remove_tree(&self.dir);
    }
}

/// A fresh temporary directory for one test (removed by the caller or left for inspection on failure).
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(marker(name));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Mount points at or below `dir`, from `/proc/self/mountinfo` (deepest first).
pub fn mounts_below(dir: &std::path::Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        // Spaces and other specials are octal-escaped in mountinfo.
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

/// Removes the test directory `dir` and everything in it, never crossing into a mount: whatever is
/// mounted below it is detached first (`umount -l`), and if anything is still mounted there, nothing is
/// removed and the test fails. (A bind mount of a system directory left below a test directory would
/// otherwise make `remove_dir_all` delete that system directory's files.)
pub fn remove_tree(dir: &std::path::Path) {
    for mount in mounts_below(dir) {
        let _ = Command::new("umount").arg("-l").arg(&mount).status();
    }
    let left = mounts_below(dir);
    assert!(
        left.is_empty(),
        "not removing {}: still mounted below it: {left:?}",
        dir.display()
    );
    let _ = std::fs::remove_dir_all(dir);
}
