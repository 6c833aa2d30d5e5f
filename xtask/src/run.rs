//! `cargo xtask run`: set up, build the agent, and run it live with pretty output.

use std::process::ExitCode;

use anyhow::Context;

use crate::cmd::{self, workspace_root};
use crate::setup::setup;

/// Options of `cargo xtask run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Output format passed to `auditloop run --output`.
    #[arg(long, default_value = "pretty")]
    output: String,
    /// Config file passed to `auditloop run --config`.
    #[arg(long)]
    config: Option<String>,
}

/// Builds and runs the agent until Ctrl-C.
pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    setup()?;
    cmd::run(cmd::cargo().args(["build", "--release", "-p", "auditloop"]))?;
    let agent = workspace_root().join("target/release/auditloop");
    let mut command = std::process::Command::new(&agent);
    command.args(["run", "--output", &args.output]);
    command
        .arg("--rules")
        .arg(workspace_root().join("rules/default.yaml"));
    if let Some(config) = &args.config {
        command.args(["--config", config]);
    }
    eprintln!(
        "xtask: starting {} (Ctrl-C stops it); run commands in another shell to see events",
        agent.display()
    );
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", agent.display()))?;
    // The terminal's Ctrl-C reaches the agent directly (same process group); xtask only waits for it.
    // SAFETY: ignoring SIGINT in this process only; the child was spawned with the default disposition.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let status = child.wait().context("waiting for the agent")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        eprintln!("xtask: agent exited with {status}");
        ExitCode::FAILURE
    })
}
