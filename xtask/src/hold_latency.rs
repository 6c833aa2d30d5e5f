//! `cargo xtask bench holds`: how long a hold takes on this machine, without the human: a release agent
//! with a kernel `hold` rule, a program it holds at exec, and an automated approver (`auditloop holds
//! approve ID` as soon as the agent journals the request).
//!
//! Per run: spawn → the process is stopped (`/proc/<pid>/stat` state `T`); spawn → the approval is applied
//! (the CLI returns after the agent sent SIGCONT); the agent's own `latency_us` (request → decision
//! applied, journaled in the `approved` event); spawn → the held program finished. Prints p50/p99; asserts
//! nothing.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cmd::{self, workspace_root};

const RUNS: usize = 100;

/// What the agent's output says about holds: `(state, pid, id, latency_us)`.
type HoldLine = (String, u64, u64, u64);

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0) as f64 / 1e3
}

/// `/proc/<pid>/stat`'s state letter.
fn state_of(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.get(stat.rfind(')')? + 2..)?.chars().next()
}

/// The next `hold` event of `pid` in `state`.
fn next_hold(rx: &Receiver<HoldLine>, pid: u32, state: &str) -> anyhow::Result<HoldLine> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).context("no hold event within 10 s")?;
        if line.0 == state && line.1 == u64::from(pid) {
            return Ok(line);
        }
    }
}

/// Runs the measurement.
pub fn bench() -> anyhow::Result<ExitCode> {
    cmd::run(cmd::cargo().args(["build", "--release", "-p", "auditloop"]))?;
    let agent_bin = workspace_root().join("target/release/auditloop");
    let work = std::env::temp_dir().join(format!("auditloop-holds-{}", std::process::id()));
    let held = work.join("held");
    std::fs::create_dir_all(&held)?;
    let rules = work.join("rules.yaml");
    std::fs::write(
        &rules,
        format!(
            "- rule: hold_bench\n  desc: hold latency bench\n  condition: evt.kind = exec and exec.filename startswith {}/\n  output: x\n  actions: [hold]\n  hold: {{timeout: 1m, default: deny}}\n",
            held.display()
        ),
    )?;
    let prog = held.join("prog");
    std::fs::write(&prog, "#!/bin/sh\nexit 0\n")?;
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755))?;
    let state = work.join("state");
    let mut agent = Command::new(&agent_bin)
        .args([
            "run",
            "--output",
            "json",
            "--config",
            "/nonexistent/config.yaml",
        ])
        .arg("--state-dir")
        .arg(&state)
        .arg("--rules")
        .arg(&rules)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the agent")?;
    let stdout = agent.stdout.take().context("agent stdout")?;
    let (tx, rx) = channel::<HoldLine>();
    let (started_tx, started_rx) = channel::<()>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("\"agent_start\"") {
                let _ = started_tx.send(());
            }
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let hold = &value["event"]["hold"];
            if let (Some(state), Some(pid), Some(id)) = (
                hold["state"].as_str(),
                hold["target_pid"].as_u64(),
                hold["id"].as_u64(),
            ) {
                let latency = hold["latency_us"].as_u64().unwrap_or(0);
                if tx.send((state.to_owned(), pid, id, latency)).is_err() {
                    break;
                }
            }
        }
    });
    let result = measure(&agent_bin, &state, &prog, &rx, &started_rx);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.id() as libc::pid_t, libc::SIGTERM) };
    let _ = agent.wait();
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn measure(
    agent_bin: &Path,
    state: &Path,
    prog: &Path,
    rx: &Receiver<HoldLine>,
    started: &Receiver<()>,
) -> anyhow::Result<ExitCode> {
    started
        .recv_timeout(Duration::from_secs(120))
        .context("the agent did not start")?;
    let (mut stopped, mut applied, mut agent_us, mut finished) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..RUNS {
        let t0 = Instant::now();
        let mut child = Command::new(prog).spawn()?;
        let pid = child.id();
        while state_of(pid) != Some('T') {
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("run {i}: pid {pid} was never stopped");
            }
            std::hint::spin_loop();
        }
        stopped.push(t0.elapsed().as_micros() as u64);
        let (_, _, id, _) = next_hold(rx, pid, "requested")?;
        let out = Command::new(agent_bin)
            .args(["holds", "approve", &id.to_string(), "--state-dir"])
            .arg(state)
            .output()?;
        if !out.status.success() {
            bail!(
                "run {i}: approve failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        applied.push(t0.elapsed().as_micros() as u64);
        let status = child.wait()?;
        finished.push(t0.elapsed().as_micros() as u64);
        if !status.success() {
            bail!("run {i}: the approved program failed ({status:?})");
        }
        let (_, _, _, latency) = next_hold(rx, pid, "approved")?;
        agent_us.push(latency);
    }
    println!(
        "hold latency over {RUNS} runs, kernel hold at exec, automated approver (release agent):"
    );
    for (label, times) in [
        ("spawn -> stopped (state T)", &mut stopped),
        ("spawn -> approval applied (CLI returned)", &mut applied),
        ("agent: request -> decision applied", &mut agent_us),
        ("spawn -> approved program finished", &mut finished),
    ] {
        times.sort_unstable();
        println!(
            "  {label:<44} p50 {:>7.2} ms  p99 {:>7.2} ms",
            percentile(times, 0.5),
            percentile(times, 0.99)
        );
    }
    Ok(ExitCode::SUCCESS)
}
