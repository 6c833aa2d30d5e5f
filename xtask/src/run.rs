//! `cargo xtask run`: set up, build, start a collector (SQLite in a temporary directory, fresh tokens) and
//! the agent shipping to it with the default rules, and show events and alerts live until Ctrl-C.

use std::process::ExitCode;

use anyhow::Context;
use auditloop_testkit::{CollectorProcess, CollectorSpec};

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
    /// Address the collector listens on.
    #[arg(long, default_value = "127.0.0.1:8470")]
    listen: String,
}

/// Builds and runs collector and agent until Ctrl-C.
pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    setup()?;
    cmd::build_release()?;
    let release = workspace_root().join("target/release");
    let dir = std::env::temp_dir().join(format!("auditloop-collector-{}", std::process::id()));
    let spec = CollectorSpec {
        listen: args.listen.clone(),
        ..CollectorSpec::new(release.join("auditloop-collector"), &dir)
    };
    let mut collector = CollectorProcess::start(&spec)
        .with_context(|| format!("starting the collector (is {} in use?)", args.listen))?;
    let url = collector.url();
    let admin_token = collector.admin_token.clone();

    // The agent trusts only files root alone can change (strict modes): a checkout may belong to a user,
    // so the default rules are copied next to the collector's files, which root created.
    let rules = dir.join("rules.yaml");
    std::fs::copy(workspace_root().join("rules/default.yaml"), &rules)
        .with_context(|| format!("copying the default rules to {}", rules.display()))?;
    std::fs::set_permissions(&rules, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .with_context(|| format!("chmod 644 {}", rules.display()))?;
    // The host enrolls with the collector's enrollment token; its own token goes next to the collector's.
    let token_file = dir.join("host.token");
    let mut enroll = std::process::Command::new(release.join("auditloop"));
    enroll
        .args(["enroll", "--collector", &url, "--enroll-token-file"])
        .arg(collector.enroll_token_file())
        .arg("--token-out")
        .arg(&token_file);
    if let Some(config) = &args.config {
        // The same state directory (journal key) and host id as the agent below.
        enroll.args(["--config", config]);
    }
    let enrolled = enroll.status().context("running `auditloop enroll`")?;
    anyhow::ensure!(
        enrolled.success(),
        "`auditloop enroll` failed ({enrolled}): the agent could not enroll with the collector"
    );
    let mut command = std::process::Command::new(release.join("auditloop"));
    command.args(["run", "--output", &args.output]);
    command
        .arg("--rules")
        .arg(&rules)
        .arg("--collector")
        .arg(&url)
        .arg("--token-file")
        .arg(&token_file);
    if let Some(config) = &args.config {
        command.args(["--config", config]);
    }
    eprintln!(
        "xtask: collector at {url} (database and tokens in {dir}); agent shipping to it. Ctrl-C stops both.\n\
         xtask: console: open {url}/ and log in with the admin token {admin_token}\n\
         xtask: or look with:\n\
         \x20 curl -s -H 'Authorization: Bearer {admin_token}' {url}/v1/hosts\n\
         \x20 curl -s -H 'Authorization: Bearer {admin_token}' '{url}/v1/events?kind=exec&limit=5'\n\
         \x20 curl -s -H 'Authorization: Bearer {admin_token}' {url}/v1/alerts",
        dir = dir.display()
    );
    let mut agent = command.spawn().context("starting auditloop")?;
    // The terminal's Ctrl-C reaches both children directly (same process group); xtask only waits.
    // SAFETY: ignoring SIGINT in this process only; the children were spawned with the default disposition.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let status = agent.wait().context("waiting for the agent")?;
    // Give the collector the same stop signal if the agent ended on its own.
    collector.stop();
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        eprintln!("xtask: agent exited with {status}");
        ExitCode::FAILURE
    })
}
