//! `cargo xtask bench latency`: how fast a rule's kill lands, on this machine, with the release agent.
//!
//! - userspace rule: a child reads `CLOCK_MONOTONIC`, reports it on a pipe, then opens a file the rule
//!   watches; the time until the parent reaps it (SIGKILL through a pidfd) is the syscall→kill latency;
//! - kernel exec rule: time from spawning a denied program to reaping it (SIGKILL in sys_enter_execve; this
//!   includes fork and exec setup);
//! - exec guard: the same program run as `./prog`, a spelling the kernel cannot decide, stopped by the
//!   fanotify exec guard before it runs;
//! - exec latency of programs no rule matches, side by side in one run: without an agent, with an agent
//!   without kill rules, and with kill rules (kernel map and exec guard active), for a warm binary and for
//!   a fresh copy each run (which no cache has seen).
//!
//! Prints p50/p99 over many runs (and p50 ratios to no agent); asserts nothing.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::cmd::{self, workspace_root};

const RUNS: usize = 200;

/// The child half: print the monotonic time, then open `path` for writing, then wait to be killed.
pub fn child(path: &str) -> anyhow::Result<ExitCode> {
    let t0 = monotonic_ns();
    let mut out = std::io::stdout();
    writeln!(out, "{t0}")?;
    out.flush()?;
    let _f = std::fs::File::create(path)?;
    std::thread::sleep(Duration::from_secs(10));
    Ok(ExitCode::SUCCESS)
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0) as f64 / 1e6
}

/// A running release agent with its output drained.
struct RunningAgent {
    child: std::process::Child,
}

impl RunningAgent {
    /// Starts `agent` with `rules` and a state directory in `work`, and waits until capture runs.
    fn start(agent: &Path, work: &Path, rules: &Path) -> anyhow::Result<RunningAgent> {
        let mut child = Command::new(agent)
            .args([
                "run",
                "--output",
                "json",
                "--config",
                "/nonexistent/config.yaml",
                "--state-dir",
            ])
            .arg(work.join("state"))
            .arg("--rules")
            .arg(rules)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the agent")?;
        let mut lines = BufReader::new(child.stdout.take().context("agent stdout")?).lines();
        // Wait for capture to run, then keep draining its output in the background.
        loop {
            let line = lines.next().context("agent exited")??;
            if line.contains("\"agent_start\"") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        // Let the exec guard mark the file systems.
        std::thread::sleep(Duration::from_millis(500));
        Ok(RunningAgent { child })
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Spawn → reaped of `bin` (which exits 0), `RUNS` times, in nanoseconds.
fn exec_times(bin: &Path) -> anyhow::Result<Vec<u64>> {
    let mut times = Vec::with_capacity(RUNS);
    for i in 0..RUNS {
        let t0 = monotonic_ns();
        let status = Command::new(bin).status()?;
        let t1 = monotonic_ns();
        if !status.success() {
            bail!("run {i}: {} failed ({status:?})", bin.display());
        }
        times.push(t1 - t0);
    }
    Ok(times)
}

/// Like [`exec_times`], but each run executes a fresh copy of `/bin/true` (a file no cache has seen).
fn cold_exec_times(dir: &Path) -> anyhow::Result<Vec<u64>> {
    std::fs::create_dir_all(dir)?;
    let mut times = Vec::with_capacity(RUNS);
    for i in 0..RUNS {
        let bin = dir.join(format!("true-{i}"));
        std::fs::copy("/bin/true", &bin)?;
        let t0 = monotonic_ns();
        let status = Command::new(&bin).status()?;
        let t1 = monotonic_ns();
        if !status.success() {
            bail!("run {i}: {} failed ({status:?})", bin.display());
        }
        times.push(t1 - t0);
        std::fs::remove_file(&bin)?;
    }
    Ok(times)
}

/// p50/p99 in ms of `times` (sorted in place).
fn summary(times: &mut [u64]) -> (f64, f64) {
    times.sort_unstable();
    (percentile(times, 0.5), percentile(times, 0.99))
}

/// Runs every measurement.
pub fn bench() -> anyhow::Result<ExitCode> {
    cmd::run(cmd::cargo().args(["build", "--release", "-p", "auditloop", "-p", "xtask"]))?;
    let root = workspace_root();
    let agent_bin = root.join("target/release/auditloop");
    let xtask = root.join("target/release/xtask");
    let work = std::env::temp_dir().join(format!("auditloop-latency-{}", std::process::id()));
    let watched = work.join("watched");
    let denied = work.join("denied");
    std::fs::create_dir_all(&watched)?;
    std::fs::create_dir_all(&denied)?;
    let kill_rules = work.join("rules.yaml");
    std::fs::write(
        &kill_rules,
        format!(
            "- rule: kill_writer\n  desc: latency bench\n  condition: evt.kind = file and file.op = open and file.path startswith {w}/\n  output: x\n  actions: [kill]\n- rule: deny_exec\n  desc: latency bench\n  condition: evt.kind = exec and exec.filename startswith {d}/\n  output: x\n  actions: [kill]\n",
            w = watched.display(),
            d = denied.display()
        ),
    )?;
    let no_rules = work.join("none.yaml");
    std::fs::write(&no_rules, "")?;
    let bin = denied.join("prog");
    std::fs::write(&bin, "#!/bin/sh\nexit 0\n")?;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))?;
    let allowed = Path::new("/bin/true");
    let cold = work.join("cold");

    // Non-matching execs, side by side: no agent, an agent without kill rules, one with kill rules.
    let (mut base_warm, mut base_cold) = (exec_times(allowed)?, cold_exec_times(&cold)?);
    let (mut plain_warm, mut plain_cold) = {
        let _agent = RunningAgent::start(&agent_bin, &work, &no_rules)?;
        (exec_times(allowed)?, cold_exec_times(&cold)?)
    };
    let agent = RunningAgent::start(&agent_bin, &work, &kill_rules)?;
    let (mut kill_warm, mut kill_cold) = (exec_times(allowed)?, cold_exec_times(&cold)?);

    let mut user = Vec::with_capacity(RUNS);
    for i in 0..RUNS {
        let mut child = Command::new(&xtask)
            .args([
                "latency-child",
                &watched.join(format!("f{i}")).to_string_lossy(),
            ])
            .stdout(Stdio::piped())
            .spawn()?;
        let mut t0 = String::new();
        BufReader::new(child.stdout.take().context("child stdout")?).read_line(&mut t0)?;
        let status = child.wait()?;
        let t1 = monotonic_ns();
        if status.signal() != Some(9) {
            bail!("run {i}: the writer was not killed ({status:?})");
        }
        user.push(t1.saturating_sub(t0.trim().parse::<u64>()?));
    }
    let killed = |command: &mut Command, what: &str| -> anyhow::Result<Vec<u64>> {
        let mut times = Vec::with_capacity(RUNS);
        for i in 0..RUNS {
            let t0 = monotonic_ns();
            let status = command.status()?;
            let t1 = monotonic_ns();
            if status.signal() != Some(9) {
                bail!("run {i}: {what} was not killed ({status:?})");
            }
            times.push(t1 - t0);
        }
        Ok(times)
    };
    // The common path: an absolute canonical name, decided in the kernel.
    let mut kernel = killed(&mut Command::new(&bin), "the denied program")?;
    // The slow path: a relative spelling the kernel cannot decide, stopped by the exec guard.
    let mut guard = killed(
        Command::new("./prog").current_dir(&denied),
        "the denied program run as ./prog",
    )?;
    drop(agent);
    let _ = std::fs::remove_dir_all(&work);

    let row = |label: &str, times: &mut [u64], base: f64| {
        let (p50, p99) = summary(times);
        let ratio = if base > 0.0 { p50 / base } else { 0.0 };
        println!("  {label:<46} p50 {p50:>6.2} ms  p99 {p99:>6.2} ms  (p50 x{ratio:.2})");
    };
    println!(
        "exec latency of non-matching execs over {RUNS} runs each, spawn -> reaped (release agent):"
    );
    let (warm50, _) = summary(&mut base_warm);
    let (cold50, _) = summary(&mut base_cold);
    row("no agent, /bin/true", &mut base_warm, warm50);
    row("agent, no kill rules, /bin/true", &mut plain_warm, warm50);
    row("agent, kill rules, /bin/true", &mut kill_warm, warm50);
    row(
        "no agent, a new copy of /bin/true each run",
        &mut base_cold,
        cold50,
    );
    row(
        "agent, no kill rules, a new copy each run",
        &mut plain_cold,
        cold50,
    );
    row(
        "agent, kill rules, a new copy each run",
        &mut kill_cold,
        cold50,
    );
    println!("kill latency over {RUNS} runs (default 5 ms reader poll):");
    let (u50, u99) = summary(&mut user);
    println!(
        "  userspace rule, open() -> reaped (pidfd SIGKILL):   p50 {u50:.2} ms  p99 {u99:.2} ms"
    );
    let (k50, k99) = summary(&mut kernel);
    println!(
        "  kernel exec rule, spawn -> reaped (incl. fork):      p50 {k50:.2} ms  p99 {k99:.2} ms"
    );
    let (g50, g99) = summary(&mut guard);
    println!(
        "  exec guard (./prog), spawn -> reaped (incl. fork):   p50 {g50:.2} ms  p99 {g99:.2} ms"
    );
    Ok(ExitCode::SUCCESS)
}
