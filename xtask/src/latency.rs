//! `cargo xtask bench latency`: how fast a rule's kill lands, on this machine, with the release agent.
//!
//! - userspace rule: a child reads `CLOCK_MONOTONIC`, reports it on a pipe, then opens a file the rule
//!   watches; the time until the parent reaps it (SIGKILL through a pidfd) is the syscall→kill latency;
//! - kernel exec rule: time from spawning a denied program to reaping it (SIGKILL in sys_enter_execve; this
//!   includes fork and exec setup).
//!
//! Prints p50/p99 over many runs; asserts nothing.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
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

/// Runs both measurements.
pub fn bench() -> anyhow::Result<ExitCode> {
    cmd::run(cmd::cargo().args(["build", "--release", "-p", "auditloop", "-p", "xtask"]))?;
    let root = workspace_root();
    let agent = root.join("target/release/auditloop");
    let xtask = root.join("target/release/xtask");
    let work = std::env::temp_dir().join(format!("auditloop-latency-{}", std::process::id()));
    let watched = work.join("watched");
    let denied = work.join("denied");
    std::fs::create_dir_all(&watched)?;
    std::fs::create_dir_all(&denied)?;
    let rules = work.join("rules.yaml");
    std::fs::write(
        &rules,
        format!(
            "- rule: kill_writer\n  desc: latency bench\n  condition: evt.kind = file and file.op = open and file.path startswith {w}/\n  output: x\n  actions: [kill]\n- rule: deny_exec\n  desc: latency bench\n  condition: evt.kind = exec and exec.filename startswith {d}/\n  output: x\n  actions: [kill]\n",
            w = watched.display(),
            d = denied.display()
        ),
    )?;
    let bin = denied.join("prog");
    std::fs::write(&bin, "#!/bin/sh\nexit 0\n")?;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))?;
    let mut agent = Command::new(&agent)
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
        .arg(&rules)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the agent")?;
    let mut lines = BufReader::new(agent.stdout.take().context("agent stdout")?).lines();
    // Wait for capture to run, then keep draining its output in the background.
    loop {
        let line = lines.next().context("agent exited")??;
        if line.contains("\"agent_start\"") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});

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
    let mut kernel = Vec::with_capacity(RUNS);
    for i in 0..RUNS {
        let t0 = monotonic_ns();
        let status = Command::new(&bin).status()?;
        let t1 = monotonic_ns();
        if status.signal() != Some(9) {
            bail!("run {i}: the denied program was not killed ({status:?})");
        }
        kernel.push(t1 - t0);
    }
    let _ = agent.kill();
    let _ = agent.wait();
    let _ = std::fs::remove_dir_all(&work);
    user.sort_unstable();
    kernel.sort_unstable();
    println!("kill latency over {RUNS} runs (release agent, default 5 ms reader poll):");
    println!(
        "  userspace rule, open() -> reaped (pidfd SIGKILL):  p50 {:.2} ms  p99 {:.2} ms",
        percentile(&user, 0.5),
        percentile(&user, 0.99)
    );
    println!(
        "  kernel exec rule, spawn -> reaped (incl. fork):     p50 {:.2} ms  p99 {:.2} ms",
        percentile(&kernel, 0.5),
        percentile(&kernel, 0.99)
    );
    Ok(ExitCode::SUCCESS)
}
