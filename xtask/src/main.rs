//! Developer tasks for auditloop: `cargo xtask setup | run | cluster | test | package | vm`.
//!
//! Each task installs what is missing first (see [`setup`]), so the README's commands work on a fresh
//! machine.

mod bench;
mod cluster;
mod cmd;
mod hold_latency;
mod latency;
mod lint;
mod package;
mod run;
mod setup;
mod test;
mod vm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// auditloop developer tasks.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install and check everything the build and the agent need (idempotent).
    Setup,
    /// Set up, build, and run the agent live with pretty output (Ctrl-C stops it).
    Run(run::RunArgs),
    /// Build the release collector and run a local cluster: N replicas sharing one PostgreSQL database and
    /// one set of tokens (Ctrl-C stops them and PostgreSQL).
    Cluster(cluster::ClusterArgs),
    /// Set up, build, and run every test tier: lints, unit tests, integration tests on the real kernel.
    Test(test::TestArgs),
    /// Set up, build the release binaries, and build the Debian packages into `<target>/package/`.
    Package,
    /// Check the sources' structure: no module cycles, no wildcard arms over vocabularies.
    Lint,
    /// Boot Debian kernels 6.1 and 6.12 in qemu, with and without the BPF LSM, and run the capture suite of
    /// `tests/vm/` inside with the real agent (docs/kernels.md).
    Vm(vm::VmArgs),
    /// Run benchmarks in release mode and print their figures.
    Bench(bench::BenchArgs),
    /// (internal) The child process of the latency benchmark.
    #[command(hide = true)]
    LatencyChild {
        /// File to open.
        path: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => setup::setup().map(|_| ExitCode::SUCCESS),
        Task::Run(args) => run::run(&args),
        Task::Cluster(args) => cluster::cluster(&args),
        Task::Test(args) => test::test(&args),
        Task::Package => package::package(),
        Task::Lint => lint::lint().map(|()| ExitCode::SUCCESS),
        Task::Vm(args) => setup::setup().and_then(|()| vm::vm(&args)),
        Task::Bench(args) => bench::bench(&args),
        Task::LatencyChild { path } => latency::child(&path),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
