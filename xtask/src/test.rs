//! `cargo xtask test`: every test tier, in order, stopping at the first failure.
//!
//! 1. lint: `cargo fmt --check`, `cargo clippy --all-targets -D warnings` (and the same for the kernel
//!    programs on their BPF target), `cargo xtask lint` (module cycles, wildcard arms over vocabularies);
//! 2. the release binaries and the Debian packages (`cargo xtask package`);
//! 3. unit and integration tests: `cargo test` (integration tests run as root against this kernel and fail,
//!    never skip, when a capability is missing; the package tests install the packages of step 2);
//! 4. the VM tier (`cargo xtask vm`): the capture suite on Debian's 6.1 and 6.12 kernels in qemu, with and
//!    without the BPF LSM (`--no-vm` skips it for quick local runs).

use std::process::ExitCode;
use std::time::Instant;

use crate::cmd;
use crate::setup::setup;

/// Options of `cargo xtask test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Skip the lint tier (fmt, clippy).
    #[arg(long)]
    no_lint: bool,
    /// Skip the VM tier (qemu boots of other kernels; several minutes).
    #[arg(long)]
    no_vm: bool,
    /// Arguments passed to `cargo test` after `--` (e.g. a test name filter).
    #[arg(last = true)]
    test_args: Vec<String>,
}

/// Runs the tiers.
pub fn test(args: &TestArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    setup()?;
    if !args.no_lint {
        cmd::run(cmd::cargo().args(["fmt", "--all", "--", "--check"]))?;
        cmd::run(cmd::cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))?;
        // The kernel programs: their own target, nightly and core built from source, as aya-build does.
        cmd::run(
            cmd::command("rustup")
                .current_dir(cmd::workspace_root().join("agent-ebpf"))
                .env_remove("RUSTUP_TOOLCHAIN")
                .env_remove("CARGO")
                .args([
                    "run",
                    "nightly",
                    "cargo",
                    "clippy",
                    "--target",
                    "bpfel-unknown-none",
                ])
                .args(["-Z", "build-std=core", "--bins", "--", "-D", "warnings"]),
        )?;
        crate::lint::lint()?;
    }
    // The integration tests start the agent and collector binaries: the release builds, as shipped (a
    // debug agent falls seconds behind when the suite's storms run beside a test, which then waits for
    // events the agent has not read yet). Building the packages builds them; the package tests install
    // the packages.
    let packages = crate::package::build_packages()?;
    let release = crate::package::release_dir()?;
    cmd::run(
        cmd::cargo()
            .arg("test")
            .arg("--")
            .args(&args.test_args)
            // One test at a time: every test's agent captures the whole machine, so a storm in one test
            // would load the agent of another (`--test-threads N` after `--` overrides).
            .env("RUST_TEST_THREADS", "1")
            .env("AUDITLOOP_BIN", release.join("auditloop"))
            .env(
                "AUDITLOOP_COLLECTOR_BIN",
                release.join("auditloop-collector"),
            )
            .env("AUDITLOOP_DEB_AGENT", &packages.agent)
            .env("AUDITLOOP_DEB_COLLECTOR", &packages.collector),
    )?;
    if !args.no_vm && !crate::vm::passes(&crate::vm::VmArgs::ci())? {
        return Ok(ExitCode::FAILURE);
    }
    eprintln!(
        "xtask: all test tiers passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
