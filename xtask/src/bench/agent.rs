//! The release agent as the benches run it: default rules, a fresh state directory per start, `--output
//! none`, shipping to a local collector the bench starts once (as `cargo xtask run` does), its journal
//! exported afterwards.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use anyhow::{Context, bail};
use auditloop_testkit::{CollectorProcess, CollectorSpec};

use super::bpf::{self, Link};
use super::proc;
use crate::cmd::workspace_root;

/// Where the release binaries are.
fn release_dir() -> PathBuf {
    workspace_root().join("target/release")
}

/// The release agent binary.
pub fn agent_bin() -> PathBuf {
    release_dir().join("auditloop")
}

/// A local collector the agents ship to, with a root-owned copy of the default rules.
pub struct Sink {
    collector: CollectorProcess,
    dir: PathBuf,
    rules: PathBuf,
    started: u32,
}

impl Sink {
    /// Starts the collector on a free loopback port with its files in `dir` (created).
    pub fn start(dir: &Path) -> anyhow::Result<Sink> {
        let spec = CollectorSpec::new(
            release_dir().join("auditloop-collector"),
            &dir.join("collector"),
        );
        let collector = CollectorProcess::start(&spec).context("starting the collector")?;
        // The agent trusts only files root alone can change: the rules are copied into a root-owned dir.
        let rules = dir.join("rules.yaml");
        std::fs::copy(workspace_root().join("rules/default.yaml"), &rules)
            .with_context(|| format!("copying the default rules to {}", rules.display()))?;
        std::fs::set_permissions(&rules, std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("chmod 644 {}", rules.display()))?;
        Ok(Sink {
            collector,
            dir: dir.to_owned(),
            rules,
            started: 0,
        })
    }
}

/// A running agent.
pub struct Agent {
    child: Option<Child>,
    /// Its pid.
    pub pid: u32,
    /// Its state directory (the journal is `journal/` below it).
    pub state: PathBuf,
    /// Its tracepoint links, read once capture had started.
    pub links: Vec<Link>,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Agent {
    /// Enrolls a new host (a fresh state directory under the sink's) and starts the agent shipping to the
    /// sink; returns once capture runs (every tracepoint attached).
    pub fn start(sink: &mut Sink) -> anyhow::Result<Agent> {
        sink.started += 1;
        let host = format!("bench-{}-{}", std::process::id(), sink.started);
        let state = sink.dir.join(&host);
        std::fs::create_dir_all(&state).with_context(|| format!("creating {}", state.display()))?;
        let token = state.join("host.token");
        let enrolled = Command::new(agent_bin())
            .args([
                "enroll",
                "--config",
                "/nonexistent/config.yaml",
                "--host-id",
                &host,
            ])
            .arg("--collector")
            .arg(sink.collector.url())
            .arg("--enroll-token-file")
            .arg(sink.collector.enroll_token_file())
            .arg("--state-dir")
            .arg(&state)
            .arg("--token-out")
            .arg(&token)
            .stdout(Stdio::null())
            .status()
            .context("running `auditloop enroll`")?;
        if !enrolled.success() {
            bail!("`auditloop enroll` failed ({enrolled})");
        }
        let mut child = Command::new(agent_bin())
            .args([
                "run",
                "--output",
                "none",
                "--config",
                "/nonexistent/config.yaml",
            ])
            .args(["--host-id", &host])
            .arg("--state-dir")
            .arg(&state)
            .arg("--rules")
            .arg(&sink.rules)
            .arg("--collector")
            .arg(sink.collector.url())
            .arg("--token-file")
            .arg(&token)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting the agent")?;
        let pid = child.id();
        let stderr = child.stderr.take().context("agent stderr")?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (started_tx, started_rx) = mpsc::channel();
        let tail = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("capture started") {
                    let _ = started_tx.send(());
                }
                if let Ok(mut tail) = tail.lock() {
                    if tail.len() == 20 {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            }
        });
        let mut agent = Agent {
            child: Some(child),
            pid,
            state,
            links: Vec::new(),
            log,
        };
        if started_rx.recv_timeout(Duration::from_secs(120)).is_err() {
            bail!("the agent did not start capture:\n{}", agent.log_tail());
        }
        agent.links = bpf::links_of(pid)?;
        Ok(agent)
    }

    /// The last lines the agent logged.
    pub fn log_tail(&self) -> String {
        self.log
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// Program ids of its links.
    pub fn prog_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.links.iter().map(|l| l.prog_id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Stops it with SIGTERM and waits until it has exited and its programs are unloaded.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // A child already reaped (by `try_wait`) is not signalled: its pid may have been reused.
        if child.try_wait()?.is_none()
            && let Ok(pid) = libc::pid_t::try_from(self.pid)
        {
            // SAFETY: signalling our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let status = child.wait().context("waiting for the agent")?;
        if !status.success() {
            bail!("the agent exited with {status}:\n{}", self.log_tail());
        }
        bpf::wait_unloaded(&self.prog_ids(), Duration::from_secs(30))
    }

    /// Its journal's events (`auditloop export`), one JSON value each.
    pub fn export(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let out = Command::new(agent_bin())
            .arg("export")
            .arg(self.state.join("journal"))
            .stderr(Stdio::inherit())
            .output()
            .context("running `auditloop export`")?;
        if !out.status.success() {
            bail!("`auditloop export` failed ({})", out.status);
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).context("parsing an exported event"))
            .collect()
    }

    /// Peak RSS in KiB so far.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        proc::peak_rss_kib(self.pid)
    }

    /// Deletes its state directory (plain files the agent wrote; nothing is mounted below it).
    pub fn remove_state(&self) -> anyhow::Result<()> {
        std::fs::remove_dir_all(&self.state)
            .with_context(|| format!("removing {}", self.state.display()))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The kind of an exported event (`exec`, `file`, `loss`, …).
pub fn kind(event: &serde_json::Value) -> &str {
    event
        .get("event")
        .and_then(|e| e.as_object())
        .and_then(|o| o.keys().next())
        .map_or("", String::as_str)
}

/// An exported event's `mono_ns`.
pub fn mono_ns(event: &serde_json::Value) -> u64 {
    event
        .get("mono_ns")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

/// Kinds the agent journals about itself, not about the host.
pub const AGENT_KINDS: &[&str] = &["agent_start", "agent_stop", "config_loaded", "rules_loaded"];

/// The pids of this process and its descendants, followed through `fork` events (and the `ppid` of
/// every event, for forks before the journal began).
pub fn family(events: &[serde_json::Value]) -> std::collections::BTreeSet<u64> {
    let mut family = std::collections::BTreeSet::from([u64::from(std::process::id())]);
    for e in events {
        let pid = e
            .pointer("/process/pid")
            .and_then(serde_json::Value::as_u64);
        let ppid = e
            .pointer("/process/ppid")
            .and_then(serde_json::Value::as_u64);
        if let (Some(pid), Some(ppid)) = (pid, ppid)
            && family.contains(&ppid)
        {
            family.insert(pid);
        }
        if let (Some(pid), Some(child)) = (
            pid,
            e.pointer("/event/fork/child_pid")
                .and_then(serde_json::Value::as_u64),
        ) && family.contains(&pid)
        {
            family.insert(child);
        }
    }
    family
}

/// An exported event's process id.
pub fn pid(event: &serde_json::Value) -> u64 {
    event
        .pointer("/process/pid")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}
