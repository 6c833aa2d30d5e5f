//! Command-line arguments of `auditloop-collector`: serving ([`Args`]), or the migration command
//! `auditloop-collector issue-host-tokens` ([`IssueHostTokens`]).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::http::{DEFAULT_MAX_BODY_BYTES, default_max_concurrent_batches};
use crate::lineage::{DEFAULT_WINDOW_MS, LineageOptions};
use crate::listen::{DEFAULT_MAX_CONNECTIONS, ListenOptions, Timeouts, TlsError, load_acceptor};

/// The name of the migration command.
pub const ISSUE_HOST_TOKENS: &str = "issue-host-tokens";

/// auditloop's central collector: verifies the hash chain of every batch agents ship, stores the records
/// in SQLite, serves queries and raises alerts.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "auditloop-collector",
    version,
    after_help = "Migration from a shared agent token: `auditloop-collector issue-host-tokens --db DB --out DIR \
                  [--host H]` issues a token for every host already in the database (see its --help)."
)]
pub struct Args {
    /// Address to listen on (`127.0.0.1:0` picks a free port; the chosen address is printed).
    #[arg(long, value_name = "ADDR")]
    pub listen: String,
    /// SQLite database file (created if missing).
    #[arg(long, value_name = "PATH")]
    pub db: PathBuf,
    /// File holding the token of the query API and of host administration.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: PathBuf,
    /// File holding the enrollment token, which may only create new hosts (`POST /v1/enroll`); without it
    /// only the admin token enrolls hosts.
    #[arg(long, value_name = "FILE")]
    pub enroll_token_file: Option<PathBuf>,
    /// Removed: the shared agent token is gone (passing it is an error naming the migration).
    #[arg(long, value_name = "FILE", hide = true, value_parser = removed_agent_token)]
    pub agent_token_file: Option<PathBuf>,
    /// Removed: per-host tokens are issued by the collector, not configured (passing it is an error).
    #[arg(long, value_name = "FILE", hide = true, value_parser = removed_config)]
    pub config: Option<PathBuf>,
    /// Largest batch body accepted, in bytes (larger ones get 413).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_BODY_BYTES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_body_bytes: usize,
    /// Raise a `silence` alert for a host that shipped before and has not shipped for this many seconds
    /// (0 turns silence alerts off).
    #[arg(long, value_name = "N", default_value_t = 300)]
    pub silence_secs: u64,
    /// Serve HTTPS with this PEM certificate chain (leaf first; needs --tls-key). Without it the API is
    /// plain HTTP: serve it so only on loopback or behind a TLS proxy.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Connections served at once. When all are taken, the connection idle longest is closed for a new
    /// one; when every one is mid-request, new connections are closed.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: usize,
    /// Batches read, decompressed and verified at once; beyond, 429 with `Retry-After: 1` [default: 4 per
    /// core].
    #[arg(long, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_concurrent_batches: Option<usize>,
    /// Lineage: how far apart in time a connect on one host and the accept of the same connection on
    /// another may be to join, in milliseconds (clock skew between the hosts included).
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_WINDOW_MS,
          value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..=3_600_000))]
    pub lineage_window_ms: u64,
    /// Header read timeout (default 10s; for tests).
    #[arg(long, hide = true, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Option<Duration>,
    /// Idle connection timeout (default 60s; for tests).
    #[arg(long, hide = true, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// TLS handshake timeout (default 10s; for tests).
    #[arg(long, hide = true, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub tls_handshake_timeout: Option<Duration>,
}

impl Args {
    /// The silence period, if silence alerts are on.
    pub fn silence(&self) -> Option<Duration> {
        (self.silence_secs > 0).then(|| Duration::from_secs(self.silence_secs))
    }

    /// The bound on batches in progress.
    pub fn max_concurrent_batches(&self) -> usize {
        self.max_concurrent_batches
            .unwrap_or_else(default_max_concurrent_batches)
    }

    /// The lineage walk's bounds: `--lineage-window-ms` and the defaults.
    pub fn lineage(&self) -> LineageOptions {
        LineageOptions::with_window_ms(self.lineage_window_ms)
    }

    /// How connections are served: TLS from `--tls-cert`/`--tls-key` (read now), the cap and timeouts.
    pub fn listen_options(&self) -> Result<ListenOptions, TlsError> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(load_acceptor(cert, key)?),
            _ => None,
        };
        let default = Timeouts::default();
        Ok(ListenOptions {
            tls,
            max_connections: self.max_connections,
            timeouts: Timeouts {
                header_read: self.header_read_timeout.unwrap_or(default.header_read),
                idle: self.idle_timeout.unwrap_or(default.idle),
                tls_handshake: self.tls_handshake_timeout.unwrap_or(default.tls_handshake),
            },
        })
    }
}

/// Issues a new token for every host already in the database that has none (or, with `--host`, for that
/// host, replacing its token), writes each to `DIR/<host>.token` (mode 0600, never over an existing file)
/// and stores only its digest. The hosts' genesis or anchor keys already stored are their enrolled
/// identity. Used once when upgrading from a collector with a shared agent token; the collector may be
/// running.
#[derive(Clone, Debug, Parser)]
#[command(name = "auditloop-collector issue-host-tokens", version)]
pub struct IssueHostTokens {
    /// The collector's SQLite database file (it must exist).
    #[arg(long, value_name = "PATH")]
    pub db: PathBuf,
    /// Directory the token files are written to (created 0700 if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Only this host, replacing the token it has.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
}

/// What the command line asks for.
#[derive(Clone, Debug)]
pub enum Invocation {
    /// Serve the API.
    Serve(Box<Args>),
    /// Run the migration command.
    IssueHostTokens(IssueHostTokens),
}

/// Parses a command line (the program name first): `issue-host-tokens …` or the serving flags.
pub fn parse_from(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, clap::Error> {
    let args: Vec<OsString> = args.into_iter().collect();
    if args.get(1).is_some_and(|a| a == ISSUE_HOST_TOKENS) {
        let program = OsString::from(format!("auditloop-collector {ISSUE_HOST_TOKENS}"));
        let rest = std::iter::once(program).chain(args.into_iter().skip(2));
        IssueHostTokens::try_parse_from(rest).map(Invocation::IssueHostTokens)
    } else {
        Args::try_parse_from(args).map(|a| Invocation::Serve(Box::new(a)))
    }
}

/// What upgrading from the shared token takes, as the removed flags' errors say it.
const MIGRATION: &str = "enroll hosts with `POST /v1/enroll` (--enroll-token-file) or `POST /v1/hosts` (admin \
     token), and for the hosts already in the database run `auditloop-collector issue-host-tokens --db DB \
     --out DIR` and install each host's DIR/<host>.token as its token file (docs/collector.md, \"Upgrading \
     from a shared agent token\")";

fn removed_agent_token(_: &str) -> Result<PathBuf, String> {
    Err(format!(
        "the shared agent token is gone: every host now ships with a token of its own; {MIGRATION}"
    ))
}

fn removed_config(_: &str) -> Result<PathBuf, String> {
    Err(format!(
        "per-host tokens in a configuration file are gone: the collector issues host tokens and keeps only \
         their digests; {MIGRATION}"
    ))
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::time::Duration;

    use clap::{CommandFactory, Parser};

    use super::{Args, Invocation, IssueHostTokens, parse_from};

    fn parse(args: &[&str]) -> Result<Invocation, clap::Error> {
        parse_from(args.iter().map(OsString::from))
    }

    #[test]
    fn arguments_parse_with_defaults() {
        Args::command().debug_assert();
        IssueHostTokens::command().debug_assert();
        let Invocation::Serve(args) = parse(&[
            "auditloop-collector",
            "--listen",
            "127.0.0.1:0",
            "--db",
            "c.db",
            "--admin-token-file",
            "b",
        ])
        .unwrap() else {
            panic!("not serving");
        };
        assert_eq!(args.max_body_bytes, 16 * 1024 * 1024);
        assert_eq!(args.silence(), Some(Duration::from_secs(300)));
        assert!(args.enroll_token_file.is_none());
        assert_eq!(args.max_connections, 1024);
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(args.max_concurrent_batches(), 4 * cores);
        assert_eq!(args.lineage().window_ns, 5_000_000_000);
        let listen = args.listen_options().unwrap();
        assert!(listen.tls.is_none());
        assert_eq!(listen.timeouts, crate::listen::Timeouts::default());
        let err = parse(&["auditloop-collector", "--listen", "x"]).unwrap_err();
        assert!(err.to_string().contains("--db"), "{err}");
    }

    #[test]
    fn the_shared_token_flag_names_the_migration() {
        let err = parse(&[
            "auditloop-collector",
            "--listen",
            "127.0.0.1:0",
            "--db",
            "c.db",
            "--admin-token-file",
            "b",
            "--agent-token-file",
            "a",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("shared agent token is gone"), "{err}");
        assert!(err.contains("issue-host-tokens --db DB --out DIR"), "{err}");
        let err = parse(&["auditloop-collector", "--config", "c.yaml"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("issue-host-tokens"), "{err}");
    }

    #[test]
    fn the_migration_command_parses() {
        let Invocation::IssueHostTokens(cmd) = parse(&[
            "auditloop-collector",
            "issue-host-tokens",
            "--db",
            "c.db",
            "--out",
            "tokens",
            "--host",
            "web-1",
        ])
        .unwrap() else {
            panic!("not the migration command");
        };
        assert_eq!(cmd.db.to_str(), Some("c.db"));
        assert_eq!(cmd.out.to_str(), Some("tokens"));
        assert_eq!(cmd.host.as_deref(), Some("web-1"));
        let err = parse(&["auditloop-collector", "issue-host-tokens", "--db", "c.db"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--out"), "{err}");
    }

    #[test]
    fn tls_needs_both_files_and_limits_are_positive() {
        let base = [
            "auditloop-collector",
            "--listen",
            "127.0.0.1:0",
            "--db",
            "c.db",
            "--admin-token-file",
            "b",
        ];
        let with = |extra: &[&str]| Args::try_parse_from(base.iter().chain(extra));
        let err = with(&["--tls-cert", "c.pem"]).unwrap_err().to_string();
        assert!(err.contains("--tls-key"), "{err}");
        let err = with(&["--tls-key", "k.pem"]).unwrap_err().to_string();
        assert!(err.contains("--tls-cert"), "{err}");
        assert!(with(&["--max-connections", "0"]).is_err());
        assert!(with(&["--max-concurrent-batches", "0"]).is_err());
        assert!(with(&["--lineage-window-ms", "0"]).is_err());
        assert_eq!(
            with(&["--lineage-window-ms", "250"])
                .unwrap()
                .lineage()
                .window_ns,
            250_000_000
        );
        let args = with(&[
            "--max-concurrent-batches",
            "3",
            "--header-read-timeout",
            "2s",
            "--idle-timeout",
            "500ms",
        ])
        .unwrap();
        assert_eq!(args.max_concurrent_batches(), 3);
        let timeouts = args.listen_options().unwrap().timeouts;
        assert_eq!(timeouts.header_read, Duration::from_secs(2));
        assert_eq!(timeouts.idle, Duration::from_millis(500));
        // The TLS files are read when the options are built, and a missing one is named.
        let args = with(&["--tls-cert", "/nonexistent/c.pem", "--tls-key", "k.pem"]).unwrap();
        let Err(err) = args.listen_options() else {
            panic!("a missing certificate file is an error");
        };
        let err = err.to_string();
        assert!(err.starts_with("/nonexistent/c.pem"), "{err}");
    }
}
