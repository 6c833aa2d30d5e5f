//! `cargo xtask bench [journal|rules|latency|holds|ship|overhead|storm]`: benchmarks, run as release builds;
//! results are printed, never asserted.
//!
//! Without an argument the quick ones run (journal, rules, latency, holds, ship). `overhead` and `storm` run only
//! when named: they take minutes, install auditd, bpftrace and bpftool, and change audit rules and sysctls
//! for their duration (restored at the end). See docs/benchmarks.md.

mod agent;
mod audit;
mod bpf;
mod floor;
mod generator;
mod interrupt;
mod overhead;
mod proc;
mod report;
mod scratch;
mod stats;
mod storm;
mod workloads;

use std::process::ExitCode;

use anyhow::Context;

use crate::cmd;

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Which benchmark: `journal`, `rules`, `latency`, `holds`, `ship`, `cluster`, `learn`, `overhead` or
    /// `storm` (default: the first seven).
    what: Option<String>,
    #[command(flatten)]
    overhead: overhead::OverheadArgs,
    #[command(flatten)]
    storm: storm::StormArgs,
}

/// Runs the selected benchmarks.
pub fn bench(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let all = args.what.is_none();
    let what = args.what.as_deref().unwrap_or("");
    if !matches!(
        what,
        "" | "journal"
            | "rules"
            | "latency"
            | "holds"
            | "ship"
            | "cluster"
            | "learn"
            | "overhead"
            | "storm"
    ) {
        anyhow::bail!(
            "unknown benchmark `{what}` (known: journal, rules, latency, holds, ship, cluster, learn, \
             overhead, storm)"
        );
    }
    if all || what == "journal" {
        cmd::run(cmd::cargo().args(["bench", "-p", "auditloop-journal", "--bench", "journal"]))?;
    }
    if all || what == "rules" {
        cmd::run(cmd::cargo().args(["bench", "-p", "auditloop-rules", "--bench", "rules"]))?;
    }
    if all || what == "latency" {
        crate::latency::bench()?;
    }
    if all || what == "holds" {
        crate::hold_latency::bench()?;
    }
    if all || what == "ship" {
        cmd::run(cmd::cargo().args(["build", "--release", "-p", "auditloop-collector"]))?;
        let collector = cmd::workspace_root().join("target/release/auditloop-collector");
        cmd::run(
            cmd::cargo()
                .args(["bench", "-p", "auditloop", "--bench", "ship"])
                .env("AUDITLOOP_COLLECTOR_BIN", collector),
        )?;
    }
    if all || what == "cluster" {
        crate::setup::ensure_packages(crate::setup::POSTGRES_PACKAGES)?;
        cmd::run(cmd::cargo().args(["build", "--release", "-p", "auditloop-collector"]))?;
        let collector = cmd::workspace_root().join("target/release/auditloop-collector");
        cmd::run(
            cmd::cargo()
                .args(["bench", "-p", "auditloop", "--bench", "cluster"])
                .env("AUDITLOOP_COLLECTOR_BIN", collector)
                .env("RUST_LOG", "warn"),
        )?;
    }
    if all || what == "learn" {
        cmd::run(cmd::cargo().args(["build", "--release", "-p", "auditloop"]))?;
        let agent = cmd::workspace_root().join("target/release/auditloop");
        cmd::run(
            cmd::cargo()
                .args(["bench", "-p", "auditloop", "--bench", "learn"])
                .env("AUDITLOOP_BIN", agent),
        )?;
    }
    if what == "overhead" {
        overhead::overhead(&args.overhead)?;
    }
    if what == "storm" {
        storm::storm(&args.storm)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What the system benches need: setup (tracefs mounted), the Debian `packages`, and release builds of
/// the agent and the collector. An `auditd` the package's install started is stopped again.
fn prepare(packages: &[&str]) -> anyhow::Result<()> {
    interrupt::catch();
    crate::setup::setup()?;
    let had_auditd = crate::setup::installed("auditd");
    crate::setup::ensure_packages(packages)?;
    if !had_auditd && crate::setup::installed("auditd") {
        stop_packaged_auditd()?;
    }
    cmd::build_release()
}

/// Stops the audit daemon a fresh `auditd` install started (Debian starts services on install where
/// policy allows), so the machine runs no daemon it did not run before.
fn stop_packaged_auditd() -> anyhow::Result<()> {
    let status = audit::status()?;
    let Some(pid) = status
        .get("pid")
        .and_then(|p| p.parse::<i32>().ok())
        .filter(|&p| p > 0)
    else {
        return Ok(());
    };
    eprintln!("xtask: the auditd package started auditd (pid {pid}); stopping and disabling it");
    if std::path::Path::new("/run/systemd/system").exists() {
        cmd::run(cmd::command("systemctl").args(["disable", "--now", "auditd.service"]))
            .context("stopping the packaged auditd")?;
    } else {
        // SAFETY: signalling the pid the kernel names as its audit daemon.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    Ok(())
}
