//! `cargo xtask run`: set up, build, start a collector (SQLite in a temporary directory, fresh tokens) and
//! the agent shipping to it with the default rules, and show events and alerts live until Ctrl-C.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{ExitCode, Stdio};

use anyhow::{Context, bail};

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
    cmd::run(cmd::cargo().args([
        "build",
        "--release",
        "-p",
        "auditloop",
        "-p",
        "auditloop-collector",
    ]))?;
    let release = workspace_root().join("target/release");
    let dir = std::env::temp_dir().join(format!("auditloop-collector-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    write_token(&dir.join("agent.token"))?;
    let admin_token = write_token(&dir.join("admin.token"))?;

    let mut collector = std::process::Command::new(release.join("auditloop-collector"))
        .arg("--listen")
        .arg(&args.listen)
        .arg("--db")
        .arg(dir.join("collector.db"))
        .arg("--agent-token-file")
        .arg(dir.join("agent.token"))
        .arg("--admin-token-file")
        .arg(dir.join("admin.token"))
        .stdout(Stdio::piped())
        .spawn()
        .context("starting auditloop-collector")?;
    let stdout = collector.stdout.take().context("collector stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().transpose()?.unwrap_or_default();
    let Some(addr) = first.strip_prefix("listening on ") else {
        let _ = collector.kill();
        bail!(
            "the collector did not start (printed {first:?}); is {} in use?",
            args.listen
        );
    };
    let url = format!("http://{}", addr.trim());
    std::thread::spawn(move || for _ in lines {});

    let mut command = std::process::Command::new(release.join("auditloop"));
    command.args(["run", "--output", &args.output]);
    command
        .arg("--rules")
        .arg(workspace_root().join("rules/default.yaml"))
        .arg("--collector")
        .arg(&url)
        .arg("--token-file")
        .arg(dir.join("agent.token"));
    if let Some(config) = &args.config {
        command.args(["--config", config]);
    }
    eprintln!(
        "xtask: collector at {url} (database and tokens in {dir}); agent shipping to it. Ctrl-C stops both.\n\
         xtask: look with:\n\
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
    if let Ok(pid) = libc::pid_t::try_from(collector.id()) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let _ = collector.wait();
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        eprintln!("xtask: agent exited with {status}");
        ExitCode::FAILURE
    })
}

/// Writes a fresh random token (hex of 32 bytes from the OS) to `path`, mode 0600.
fn write_token(path: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{token}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(token)
}
