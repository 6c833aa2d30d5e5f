//! Running commands with a clear error when they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use anyhow::{Context, bail};

/// Directory holding LLVM 22's tools (bpf-linker is built against this LLVM).
pub const LLVM_BIN: &str = "/usr/lib/llvm-22/bin";

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `PATH` with LLVM 22 and cargo's bin directory in front.
pub fn tool_path() -> String {
    let mut parts = vec![LLVM_BIN.to_string()];
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        parts.push(format!("{}/bin", home.to_string_lossy()));
    } else if let Some(home) = std::env::var_os("HOME") {
        parts.push(format!("{}/.cargo/bin", home.to_string_lossy()));
    }
    if let Some(path) = std::env::var_os("PATH") {
        parts.push(path.to_string_lossy().into_owned());
    }
    parts.join(":")
}

/// A command that runs in the workspace root with [`tool_path`].
pub fn command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(workspace_root()).env("PATH", tool_path());
    cmd
}

/// `cargo` as invoked by this xtask.
pub fn cargo() -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    command(&cargo)
}

/// Builds the release agent and collector (what `run`, `package`, `bench` and the integration tests
/// start).
pub fn build_release() -> anyhow::Result<()> {
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "auditloop",
        "-p",
        "auditloop-collector",
    ]))
}

/// Cargo's target directory (`CARGO_TARGET_DIR` or `target/`), as `cargo metadata` reports it.
pub fn target_dir() -> anyhow::Result<PathBuf> {
    let text = output(cargo().args(["metadata", "--no-deps", "--format-version", "1"]))
        .context("`cargo metadata` failed")?;
    let meta: serde_json::Value =
        serde_json::from_str(&text).context("parsing `cargo metadata` output")?;
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("`cargo metadata` gives no target_directory")
}

/// Runs `cmd`, echoing it, and fails unless it exits 0.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = status(cmd)?;
    if !status.success() {
        bail!("`{}` failed: {status}", describe(cmd));
    }
    Ok(())
}

/// Runs `cmd`, echoing it, and returns its status.
pub fn status(cmd: &mut Command) -> anyhow::Result<ExitStatus> {
    eprintln!("xtask: $ {}", describe(cmd));
    cmd.status()
        .with_context(|| format!("starting `{}`", describe(cmd)))
}

/// Runs `cmd` quietly and returns its stdout when it exits 0.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
