//! The `floor` configuration: bpftrace with an empty program on every tracepoint the agent attaches, the
//! cost of the tracepoints themselves (syscall tracepoint path, BPF dispatch) with no work in them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::bpf;

/// A running bpftrace with empty programs.
pub struct Floor {
    child: Option<Child>,
    /// Its pid.
    pub pid: u32,
    prog_ids: Vec<u32>,
}

impl Floor {
    /// Writes the script for `tracepoints` (`category:name`) to `script` and starts bpftrace; returns once
    /// every probe is attached (as many perf-event attachments of bpftrace as tracepoints).
    pub fn start(tracepoints: &[String], script: &Path) -> anyhow::Result<Floor> {
        let text: String = tracepoints
            .iter()
            .map(|tp| format!("tracepoint:{tp} {{}}\n"))
            .collect();
        std::fs::write(script, text).with_context(|| format!("writing {}", script.display()))?;
        let child = Command::new("bpftrace")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting bpftrace")?;
        let pid = child.id();
        let mut floor = Floor {
            child: Some(child),
            pid,
            prog_ids: Vec::new(),
        };
        let started = Instant::now();
        loop {
            let mine: Vec<u32> = bpf::perf_show()?
                .into_iter()
                .filter(|a| a.pid == pid)
                .map(|a| a.prog_id)
                .collect();
            if mine.len() >= tracepoints.len() {
                floor.prog_ids = mine;
                return Ok(floor);
            }
            let exited = floor
                .child
                .as_mut()
                .map(|c| c.try_wait().ok().flatten().is_some())
                .unwrap_or(true);
            if exited || started.elapsed() > Duration::from_secs(120) {
                bail!(
                    "bpftrace attached {} of {} probes (see {})",
                    mine.len(),
                    tracepoints.len(),
                    script.display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops bpftrace (SIGINT) and waits until its programs are unloaded.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // A child already reaped (by `try_wait`) is not signalled: its pid may have been reused.
        if child.try_wait()?.is_none()
            && let Ok(pid) = libc::pid_t::try_from(self.pid)
        {
            // SAFETY: signalling our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
        child.wait().context("waiting for bpftrace")?;
        bpf::wait_unloaded(&self.prog_ids, Duration::from_secs(30))
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            eprintln!("xtask: stopping bpftrace: {err:#}");
        }
    }
}
