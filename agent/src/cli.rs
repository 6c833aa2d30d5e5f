//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::DEFAULT_CONFIG_PATH;
use crate::output::Format;

/// auditloop: eBPF audit agent with a tamper-evident journal.
#[derive(Debug, Parser)]
#[command(name = "auditloop", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture events from the kernel and print them (needs root).
    Run(RunArgs),
}

/// Options of `auditloop run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Output format for events on stdout.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub output: Format,
    /// Config file (YAML); an absent file means defaults.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// State directory (overrides the config's `state_dir`; default /var/lib/auditloop).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}
