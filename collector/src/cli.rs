//! Command-line arguments of `auditloop-collector`: serving ([`Args`]), or the migration command
//! `auditloop-collector issue-host-tokens` ([`IssueHostTokens`]).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// The name of the migration command.
pub const ISSUE_HOST_TOKENS: &str = "issue-host-tokens";

/// auditloop's central collector: verifies the hash chain of every batch agents ship, stores the records
/// in SQLite, serves queries and raises alerts.
///
/// Every serving setting may also come from `--config FILE`; a flag given here overrides the file.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "auditloop-collector",
    version,
    after_help = "Migration from a shared agent token: `auditloop-collector issue-host-tokens --db DB --out DIR \
                  [--host H]` issues a token for every host already in the database (see its --help)."
)]
pub struct Args {
    /// YAML configuration file with any of the settings below (`listen`, `db`, `admin_token_file`, ...,
    /// `metrics: {listen: ADDR}`); flags override it. The package's is /etc/auditloop-collector/config.yaml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on (`127.0.0.1:0` picks a free port; the chosen address is printed). Required,
    /// here or as `listen` in --config.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Database: a SQLite file (created if missing), or a PostgreSQL URL (`postgres://user@host:port/db`,
    /// shared by every replica; the schema is created on first start). Required, here or as `db` in
    /// --config.
    #[arg(long, value_name = "PATH|URL")]
    pub db: Option<PathBuf>,
    /// File holding the token of the query API and of host administration. Required, here or as
    /// `admin_token_file` in --config.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// File holding the enrollment token, which may only create new hosts (`POST /v1/enroll`); without it
    /// only the admin token enrolls hosts.
    #[arg(long, value_name = "FILE")]
    pub enroll_token_file: Option<PathBuf>,
    /// File holding the approver token: reads the API and console, decides holds and changes alert
    /// states.
    #[arg(long, value_name = "FILE")]
    pub approver_token_file: Option<PathBuf>,
    /// File holding the viewer token: reads the API and console, changes nothing.
    #[arg(long, value_name = "FILE")]
    pub viewer_token_file: Option<PathBuf>,
    /// Removed: the shared agent token is gone (passing it is an error naming the migration).
    #[arg(long, value_name = "FILE", hide = true, value_parser = removed_agent_token)]
    pub agent_token_file: Option<PathBuf>,
    /// Largest batch body accepted, in bytes (larger ones get 413) [default: 16777216].
    #[arg(long, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_body_bytes: Option<usize>,
    /// Raise a `silence` alert for a host that shipped before and has not shipped for this many seconds
    /// (0 turns silence alerts off) [default: 300].
    #[arg(long, value_name = "N")]
    pub silence_secs: Option<u64>,
    /// Serve HTTPS with this PEM certificate chain (leaf first; needs --tls-key). Without it the API is
    /// plain HTTP: serve it so only on loopback or behind a TLS proxy.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Connections served at once. When all are taken, the connection idle longest is closed for a new
    /// one; when every one is mid-request, new connections are closed [default: 1024].
    #[arg(long, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: Option<usize>,
    /// Batches read, decompressed and verified at once; beyond, 429 with `Retry-After: 1` [default: 4 per
    /// core].
    #[arg(long, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_concurrent_batches: Option<usize>,
    /// Lineage: how far apart in time a connect on one host and the accept of the same connection on
    /// another may be to join, in milliseconds (clock skew between the hosts included) [default: 5000].
    #[arg(long, value_name = "MS",
          value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..=3_600_000))]
    pub lineage_window_ms: Option<u64>,
    /// Keep stored records this many days (UTC days of when they were stored), dropping older days whole;
    /// PostgreSQL databases only (their records are partitioned by day). Off unless given.
    #[arg(long, value_name = "DAYS",
          value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..=36_500))]
    pub retention_days: Option<u64>,
    /// Serve Prometheus metrics at http://ADDR/metrics (no authentication: bind it to loopback). Off
    /// unless given here or as `metrics: {listen: ADDR}` in --config.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
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

/// Issues a new token for every host already in the database that has none (or, with `--host`, for that
/// host, replacing its token), writes each to `DIR/<host>.token` (mode 0600, never over an existing file)
/// and stores only its digest. The hosts' genesis or anchor keys already stored are their enrolled
/// identity. Used once when upgrading from a collector with a shared agent token; the collector may be
/// running.
#[derive(Clone, Debug, Parser)]
#[command(name = "auditloop-collector issue-host-tokens", version)]
pub struct IssueHostTokens {
    /// The collector's database: its SQLite file (it must exist) or its PostgreSQL URL.
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

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use clap::CommandFactory;

    use super::{Args, Invocation, IssueHostTokens, parse_from};

    fn parse(args: &[&str]) -> Result<Invocation, clap::Error> {
        parse_from(args.iter().map(OsString::from))
    }

    #[test]
    fn serving_flags_parse_and_are_all_optional_here() {
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
            "--metrics-listen",
            "127.0.0.1:9465",
        ])
        .unwrap() else {
            panic!("not serving");
        };
        assert_eq!(args.listen.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(args.metrics_listen.as_deref(), Some("127.0.0.1:9465"));
        assert!(args.enroll_token_file.is_none() && args.max_body_bytes.is_none());
        // Whether the required settings are there is decided with the config file (`settings`).
        let Invocation::Serve(args) =
            parse(&["auditloop-collector", "--config", "c.yaml"]).unwrap()
        else {
            panic!("not serving");
        };
        assert_eq!(args.config.as_deref(), Some(std::path::Path::new("c.yaml")));
        assert!(args.listen.is_none());
    }

    #[test]
    fn limits_are_positive() {
        let with = |extra: &[&str]| {
            let mut args = vec!["auditloop-collector"];
            args.extend_from_slice(extra);
            parse(&args)
        };
        assert!(with(&["--max-connections", "0"]).is_err());
        assert!(with(&["--max-concurrent-batches", "0"]).is_err());
        assert!(with(&["--max-body-bytes", "0"]).is_err());
        assert!(with(&["--lineage-window-ms", "0"]).is_err());
        assert!(with(&["--lineage-window-ms", "3600001"]).is_err());
        assert!(with(&["--lineage-window-ms", "250"]).is_ok());
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
}
