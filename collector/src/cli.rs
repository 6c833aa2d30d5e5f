//! Command-line arguments of `auditloop-collector`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::http::DEFAULT_MAX_BODY_BYTES;

/// auditloop's central collector: verifies the hash chain of every batch agents ship, stores the records
/// in SQLite, serves queries and raises alerts.
#[derive(Clone, Debug, Parser)]
#[command(name = "auditloop-collector", version)]
pub struct Args {
    /// Address to listen on (`127.0.0.1:0` picks a free port; the chosen address is printed).
    #[arg(long, value_name = "ADDR")]
    pub listen: String,
    /// SQLite database file (created if missing).
    #[arg(long, value_name = "PATH")]
    pub db: PathBuf,
    /// File holding the token every host may ship with.
    #[arg(long, value_name = "FILE")]
    pub agent_token_file: PathBuf,
    /// File holding the token of the query API.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: PathBuf,
    /// YAML configuration file with per-host tokens (see docs/collector.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Largest batch body accepted, in bytes (larger ones get 413).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_BODY_BYTES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_body_bytes: usize,
    /// Raise a `silence` alert for a host that shipped before and has not shipped for this many seconds
    /// (0 turns silence alerts off).
    #[arg(long, value_name = "N", default_value_t = 300)]
    pub silence_secs: u64,
}

impl Args {
    /// The silence period, if silence alerts are on.
    pub fn silence(&self) -> Option<Duration> {
        (self.silence_secs > 0).then(|| Duration::from_secs(self.silence_secs))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::{CommandFactory, Parser};

    use super::Args;

    #[test]
    fn arguments_parse_with_defaults() {
        Args::command().debug_assert();
        let args = Args::try_parse_from([
            "auditloop-collector",
            "--listen",
            "127.0.0.1:0",
            "--db",
            "c.db",
            "--agent-token-file",
            "a",
            "--admin-token-file",
            "b",
        ])
        .unwrap();
        assert_eq!(args.max_body_bytes, 16 * 1024 * 1024);
        assert_eq!(args.silence(), Some(Duration::from_secs(300)));
        assert!(args.config.is_none());
        let err = Args::try_parse_from(["auditloop-collector", "--listen", "x"]).unwrap_err();
        assert!(err.to_string().contains("--db"), "{err}");
    }
}
