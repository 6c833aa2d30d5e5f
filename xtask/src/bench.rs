//! `cargo xtask bench [journal]`: benchmarks, run as release builds; results are printed, never asserted.

use std::process::ExitCode;

use crate::cmd;

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Which benchmark: `journal`, `rules`, `latency` or `ship` (default: all).
    what: Option<String>,
}

/// Runs the selected benchmarks.
pub fn bench(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let all = args.what.is_none();
    let what = args.what.as_deref().unwrap_or("");
    if !matches!(what, "" | "journal" | "rules" | "latency" | "ship") {
        anyhow::bail!("unknown benchmark `{what}` (known: journal, rules, latency, ship)");
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
    if all || what == "ship" {
        cmd::run(cmd::cargo().args(["build", "--release", "-p", "auditloop-collector"]))?;
        let collector = cmd::workspace_root().join("target/release/auditloop-collector");
        cmd::run(
            cmd::cargo()
                .args(["bench", "-p", "auditloop", "--bench", "ship"])
                .env("AUDITLOOP_COLLECTOR_BIN", collector),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
