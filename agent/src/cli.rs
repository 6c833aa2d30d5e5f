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
    /// Capture events from the kernel, journal and print them (needs root).
    Run(RunArgs),
    /// Verify a journal: hashes, links, sequence, checkpoint signatures and key evolution, the key ladder
    /// after retention, the unsigned tail and HEAD. Exit status: 0 clean and proven, 1 tampered or damaged
    /// (or the trusted key does not or cannot check), 2 usage error, 3 clean but not proven (an unsigned
    /// tail spanning more than --max-unsigned-secs, HEAD missing or behind the last checkpoint).
    Verify(VerifyArgs),
    /// Print journal records as JSON lines or Elastic Common Schema documents.
    Export(ExportArgs),
    /// Journal signing key.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Enroll this host with a collector: send its journal's genesis public key with an enrollment token
    /// and store the per-host token the collector issues (0600). Creates the journal key if there is none.
    Enroll(EnrollArgs),
    /// Rules files.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Test the loop on the running agent: perform a safe stimulus per enabled rule and report which
    /// alerts (and kills) were journaled (needs root). Exit status: 0 every drillable rule fired,
    /// 1 otherwise, 2 usage error or no running agent.
    Drill(DrillArgs),
    /// Report the running agent's health: capture tier, programs, events/s, losses, journal and
    /// checkpoint, shipping lag and last acknowledgement, the rules in force and the last reload, tamper
    /// events. Exit status: 0 healthy, 1 degraded, 2 not running, 3 unknown (the config or status file cannot
    /// be read).
    Status(StatusArgs),
    /// Learn what normally happens on this host from a journal window, and propose alert-only rules that
    /// flag departures from it (each with its support counts and first/last seen, its values in lists to
    /// edit). The proposal is checked by replaying the window through it. Exit status: 0 proposed, 1 the
    /// window raised alerts on the proposal (it is still written, for review), 2 usage error.
    Learn(LearnArgs),
    /// Processes held by `hold` rules on the running agent: list them, approve (continue) or deny (kill)
    /// one (needs root; talks to the agent over its local socket, no collector needed).
    Holds(HoldsArgs),
}

/// Options of `auditloop holds`.
#[derive(Debug, clap::Args)]
pub struct HoldsArgs {
    /// Config file of the agent (its `state_dir` holds the socket).
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG_PATH, global = true)]
    pub config: PathBuf,
    /// State directory (overrides the config's `state_dir`).
    #[arg(long, value_name = "DIR", global = true)]
    pub state_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: HoldsCommand,
}

/// `auditloop holds …`.
#[derive(Debug, Subcommand)]
pub enum HoldsCommand {
    /// List the waiting holds: id, rule, pid, name and executable, age, time left, parent chain.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a hold: the process continues (SIGCONT).
    Approve {
        /// The hold's id (from `auditloop holds list`).
        id: u64,
        /// Why (journaled with the decision).
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Deny a hold: the process is killed (SIGKILL) while stopped.
    Deny {
        /// The hold's id (from `auditloop holds list`).
        id: u64,
        /// Why (journaled with the decision).
        #[arg(long, default_value = "")]
        comment: String,
    },
}

/// Options of `auditloop status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Config file of the agent (its `state_dir` holds the status file).
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// State directory (overrides the config's `state_dir`).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `auditloop rules …`.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Parse and check rules files; print each rule's enforcement path. Exit 1 on errors.
    Check {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print the reference of every field rules can use (Markdown).
    Fields,
    /// Replay a recorded journal (or events as JSON lines) through rules and print which rules would
    /// have fired.
    Test {
        /// Rules file or directory.
        rules: PathBuf,
        /// Journal directory to replay.
        #[arg(long, default_value = DEFAULT_JOURNAL_DIR)]
        journal: PathBuf,
        /// Replay these events instead: one JSON event per line, as `auditloop export --format jsonl`
        /// writes them and the collector console's rule downloads serve them (`-` for stdin).
        #[arg(long, value_name = "FILE", conflicts_with = "journal")]
        events: Option<PathBuf>,
        /// Which events to replay.
        #[command(flatten)]
        window: Window,
    },
    /// Replay history through an old and a new rule set and print, per rule, the alerts the change adds
    /// and removes, with counts and examples. Exit status: 0 no alert added, 1 alerts added, 2 usage
    /// error (bad rules, unreadable journal).
    Diff(DiffArgs),
}

/// A time window of events: `[since, until)`.
#[derive(Clone, Copy, Debug, Default, clap::Args)]
pub struct Window {
    /// Only events at or after this time (RFC 3339, e.g. 2026-11-23T18:00:00Z).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<auditloop_model::WallTime>,
    /// Only events before this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<auditloop_model::WallTime>,
}

impl Window {
    /// Whether `time` is in the window.
    pub fn holds(&self, time: auditloop_model::WallTime) -> bool {
        self.since.is_none_or(|t| time >= t) && self.until.is_none_or(|t| time < t)
    }
}

/// Options of `auditloop rules diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The rules in force: file or directory.
    pub old: PathBuf,
    /// The changed rules: file or directory.
    pub new: PathBuf,
    /// Journal directory to replay.
    #[arg(long, default_value = DEFAULT_JOURNAL_DIR)]
    pub journal: PathBuf,
    /// Replay these events instead (JSON lines, `-` for stdin), as for `rules test`.
    #[arg(long, value_name = "FILE", conflicts_with = "journal")]
    pub events: Option<PathBuf>,
    /// Which events to replay.
    #[command(flatten)]
    pub window: Window,
    /// Examples shown per rule and direction.
    #[arg(long, default_value_t = 3)]
    pub examples: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `auditloop learn`.
#[derive(Debug, clap::Args)]
pub struct LearnArgs {
    /// Journal directory to learn from.
    #[arg(long, default_value = DEFAULT_JOURNAL_DIR)]
    pub journal: PathBuf,
    /// The learning window.
    #[command(flatten)]
    pub window: Window,
    /// Write the proposed rules here (default: standard output).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Agent config whose watched paths count as config paths (with /etc/); a missing default file is
    /// skipped.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// More config paths: a file, or a directory ending in `/` (repeatable).
    #[arg(long = "config-path", value_name = "PATH")]
    pub config_paths: Vec<String>,
    /// Parents that started fewer programs than this get no exec rule.
    #[arg(long, default_value_t = 3)]
    pub min_starts: u64,
    /// Parents that started more distinct programs than this get no exec rule.
    #[arg(long, default_value_t = 40)]
    pub max_programs: usize,
    /// Print the baseline and the proposal's summary as JSON on standard output (needs --out).
    #[arg(long, requires = "out")]
    pub json: bool,
}

/// Journal directory used when none is given.
pub const DEFAULT_JOURNAL_DIR: &str = "/var/lib/auditloop/journal";

/// Options of `auditloop verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Journal directory.
    #[arg(default_value = DEFAULT_JOURNAL_DIR)]
    pub dir: PathBuf,
    /// File holding the trusted genesis public key (hex, as `auditloop key show` prints it).
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also decode every event payload.
    #[arg(long)]
    pub deep: bool,
    /// Longest time, in seconds, the records after the last checkpoint may span before the journal counts
    /// as not proven (exit status 3): nothing signed them, so whoever can write the journal could have
    /// written them.
    #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = parse_secs)]
    pub max_unsigned_secs: f64,
}

fn parse_secs(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Ok(secs),
        _ => Err(format!("`{text}` is not a number of seconds (0 or more)")),
    }
}

/// Export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// The event model as JSON, one per line.
    Jsonl,
    /// Elastic Common Schema documents, one per line.
    Ecs,
}

/// Options of `auditloop export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Journal directory.
    #[arg(default_value = DEFAULT_JOURNAL_DIR)]
    pub dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    pub format: ExportFormat,
    /// Only events at or after this time (RFC 3339, e.g. 2026-11-23T18:00:00Z).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<auditloop_model::WallTime>,
    /// Only events before this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<auditloop_model::WallTime>,
    /// Only events of these kinds (repeat or comma-separate: exec,file,config_change).
    #[arg(long, value_delimiter = ',', value_parser = parse_kind)]
    pub kind: Vec<auditloop_model::EventKind>,
    /// Include journal-internal records (segment starts, checkpoints) in jsonl output.
    #[arg(long)]
    pub all_records: bool,
}

fn parse_time(text: &str) -> Result<auditloop_model::WallTime, String> {
    humantime::parse_rfc3339_weak(text)
        .map(auditloop_model::WallTime::from)
        .map_err(|e| format!("`{text}` is not an RFC 3339 time: {e}"))
}

fn parse_kind(text: &str) -> Result<auditloop_model::EventKind, String> {
    auditloop_model::EventKind::parse(text).ok_or_else(|| {
        let known: Vec<&str> = auditloop_model::EventKind::all()
            .map(auditloop_model::EventKind::as_str)
            .collect();
        format!("unknown event kind `{text}` (known: {})", known.join(", "))
    })
}

/// `auditloop key …`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Print the journal's genesis public key (hex): the trust anchor for `verify --pubkey`.
    Show {
        /// State directory holding `keys/journal.key`.
        #[arg(long, default_value = crate::config::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
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
    /// Rules file or directory (overrides the config's `rules`; default /etc/auditloop/rules.d).
    #[arg(long, value_name = "PATH")]
    pub rules: Option<PathBuf>,
    /// Ship the journal to this collector (`http(s)://host:port`; overrides the config's `ship.collector`).
    /// Repeat or comma-separate for the replicas of one collector: the agent fails over along them in order.
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    pub collector: Vec<String>,
    /// File holding the collector's bearer token (overrides `ship.token_file`).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// This host's id at the collector (overrides `ship.host_id`; default: /etc/machine-id).
    #[arg(long, value_name = "NAME")]
    pub host_id: Option<String>,
    /// Use config, rules, token and key files and the state directory even when someone other than root
    /// could have changed them (by default the agent refuses to start; for tests and development only).
    #[arg(long)]
    pub no_strict_modes: bool,
}

/// Options of `auditloop enroll`.
#[derive(Debug, clap::Args)]
pub struct EnrollArgs {
    /// The agent's config file: its `ship` section and state directory are the defaults of the options
    /// below (an absent file means defaults).
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// File holding the enrollment token the collector's operator gave out.
    #[arg(long, value_name = "FILE")]
    pub enroll_token_file: PathBuf,
    /// Collector base URL (overrides `ship.collector`). Repeat or comma-separate for the replicas of one
    /// collector: tried in order until one answers.
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    pub collector: Vec<String>,
    /// This host's id (overrides `ship.host_id`; default: /etc/machine-id).
    #[arg(long, value_name = "NAME")]
    pub host_id: Option<String>,
    /// State directory holding `keys/journal.key` (overrides the config's `state_dir`).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Where to write the host token (overrides `ship.token_file`; default /etc/auditloop/token).
    #[arg(long, value_name = "FILE")]
    pub token_out: Option<PathBuf>,
    /// Extra CA certificate (PEM) to trust for the collector (overrides `ship.ca_file`).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Allow plain HTTP to a collector that is not on loopback (as `ship.insecure_http`).
    #[arg(long)]
    pub insecure_http: bool,
    /// Replace an existing token file.
    #[arg(long)]
    pub force: bool,
}

/// Options of `auditloop drill`.
#[derive(Debug, clap::Args)]
pub struct DrillArgs {
    /// The agent's config file: where its rules and state directory are (an absent file means defaults).
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// Rules file or directory to drill (overrides the config's `rules`; default /etc/auditloop/rules.d).
    #[arg(long, value_name = "PATH")]
    pub rules: Option<PathBuf>,
    /// The running agent's state directory (overrides the config's `state_dir`; default /var/lib/auditloop).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Seconds to wait for each rule's alert and actions.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 5,
        value_parser = clap::value_parser!(u64).range(1..=600)
    )]
    pub timeout: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Internal: the drill's connection stimulus (a program copy of the drill connects here and exits).
    #[arg(long, value_name = "ADDR", hide = true)]
    pub stimulus_connect: Option<std::net::SocketAddr>,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};

    #[test]
    fn collector_urls_repeat_and_comma_separate() {
        let cli = Cli::try_parse_from([
            "auditloop",
            "run",
            "--collector",
            "https://a:8470,https://b:8470",
            "--collector",
            "https://c:8470",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run");
        };
        assert_eq!(
            args.collector,
            ["https://a:8470", "https://b:8470", "https://c:8470"]
        );
        let cli = Cli::try_parse_from(["auditloop", "run"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run");
        };
        assert!(args.collector.is_empty(), "absent: the config decides");
        let cli = Cli::try_parse_from([
            "auditloop",
            "enroll",
            "--enroll-token-file",
            "/t",
            "--collector",
            "https://a:8470,https://b:8470",
        ])
        .unwrap();
        let Command::Enroll(args) = cli.command else {
            panic!("not enroll");
        };
        assert_eq!(args.collector, ["https://a:8470", "https://b:8470"]);
    }
}
