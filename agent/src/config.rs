//! The agent's configuration file (YAML).
//!
//! An absent file means defaults. Unknown keys are errors, and every error names the file, the line and
//! column, and the field, so a typo never silently turns a setting off.

use std::path::{Path, PathBuf};

use agent_common::wire::{op_slot, op_slot_names};
use serde::Deserialize;

mod ship;

pub use ship::ShipConfig;

/// Where the agent looks for its config when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/auditloop/config.yaml";

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Kernel capture settings.
    pub capture: CaptureConfig,
    /// Config-file watching.
    pub watch: WatchConfig,
    /// The agent's state directory (journal, keys, content store).
    pub state_dir: PathBuf,
    /// Journal settings.
    pub journal: JournalConfig,
    /// Rules file or directory (`*.yaml`); absent = no rules.
    pub rules: PathBuf,
    /// Alert delivery.
    pub alerts: AlertsConfig,
    /// Shipping the journal to a collector.
    pub ship: ShipConfig,
    /// The Prometheus metrics endpoint.
    pub metrics: MetricsConfig,
}

/// The Prometheus metrics endpoint (off unless `listen` is set).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address to serve `/metrics` on, e.g. `127.0.0.1:9464`. Unauthenticated: keep it on loopback or a
    /// management network.
    pub listen: Option<std::net::SocketAddr>,
}

/// Alert delivery.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// URL every alert is POSTed to as JSON (http or https).
    pub webhook: Option<String>,
}

/// When journal records are made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncMode {
    /// After every record.
    Always,
    /// Group commit every `fsync_interval_ms`.
    Interval,
    /// Only at checkpoints (once a second), rotation and stop.
    Never,
}

/// Journal settings.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// Segment size that triggers rotation, in bytes.
    pub segment_bytes: u64,
    /// Durability policy.
    pub fsync: FsyncMode,
    /// Group commit interval in milliseconds.
    pub fsync_interval_ms: u64,
    /// Delete the oldest segments while the journal is larger than this (never unshipped records).
    pub max_bytes: Option<u64>,
    /// Delete segments last written more than this many seconds ago (never unshipped records).
    pub max_age_secs: Option<u64>,
    /// What the agent does when the journal cannot be written (a full disk, an I/O error).
    pub on_error: OnJournalError,
}

/// What the agent does when the journal cannot be written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnJournalError {
    /// Keep capture and actions running, count every event not written, and write one `loss` record
    /// (stage `journal`) with the exact count as soon as the journal can be written again.
    #[default]
    Continue,
    /// Exit with a non-zero status (a service manager restarts the agent).
    Halt,
}

impl Default for JournalConfig {
    fn default() -> JournalConfig {
        JournalConfig {
            segment_bytes: 64 * 1024 * 1024,
            fsync: FsyncMode::Interval,
            fsync_interval_ms: 100,
            max_bytes: None,
            max_age_secs: None,
            on_error: OnJournalError::Continue,
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            capture: CaptureConfig::default(),
            watch: WatchConfig::default(),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            journal: JournalConfig::default(),
            rules: PathBuf::from(DEFAULT_RULES_PATH),
            alerts: AlertsConfig::default(),
            ship: ShipConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// Default rules location.
pub const DEFAULT_RULES_PATH: &str = "/etc/auditloop/rules.d";

/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/auditloop";

/// Kernel capture settings.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Size of the kernel ring buffer in bytes: a power of two, at least one page.
    pub ring_buffer_bytes: u32,
    /// Milliseconds between reader polls when the kernel has not woken the reader.
    pub poll_interval_ms: u64,
    /// Extra syscalls to record raw (arguments and return value), by name.
    pub syscalls: Vec<String>,
    /// Event kinds not to capture: `exec`, `fork`, `exit`, `io_uring`, or a syscall op (`open`, `rename`,
    /// `connect`, …).
    pub disable: Vec<String>,
    /// What is not recorded at all (filtered in the kernel).
    pub ignore: IgnoreConfig,
    /// Paths (exact files, or directory prefixes ending in `/`) whose read-only opens are recorded.
    pub sensitive_paths: Vec<String>,
    /// How much ancestry the process table keeps and exec events record.
    pub ancestry: AncestryConfig,
    /// Enforcement tier: `auto` (the best this kernel allows), `lsm` (BPF LSM; start fails where the
    /// kernel cannot run it) or `tracepoint` (syscall tracepoints and fanotify only).
    pub mode: CaptureMode,
}

/// `capture.mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureMode {
    /// The best tier this kernel allows.
    #[default]
    Auto,
    /// BPF LSM hooks (deny in the kernel).
    Lsm,
    /// Syscall tracepoints only.
    Tracepoint,
}

/// Ancestry depths (`capture.ancestry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AncestryConfig {
    /// Ancestors the process table keeps per process (what rules see as `proc.aname[N]` and the like),
    /// 1 to 64.
    pub depth: usize,
    /// Ancestors an exec event records (compact: pid, start, exe, comm), 0 to `depth`.
    pub exec_depth: usize,
}

impl Default for AncestryConfig {
    fn default() -> AncestryConfig {
        AncestryConfig {
            depth: 16,
            exec_depth: 4,
        }
    }
}

/// In-kernel ignore lists.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IgnoreConfig {
    /// Process ids.
    pub pids: Vec<u32>,
    /// Task names (`comm`, at most 15 bytes).
    pub comms: Vec<String>,
    /// Path prefixes (absolute); file events on paths below them are not recorded.
    pub path_prefixes: Vec<String>,
}

impl Default for IgnoreConfig {
    fn default() -> IgnoreConfig {
        IgnoreConfig {
            pids: Vec::new(),
            comms: Vec::new(),
            path_prefixes: ["/proc/", "/sys/", "/dev/pts/", "/dev/null"]
                .map(String::from)
                .to_vec(),
        }
    }
}

impl Default for CaptureConfig {
    fn default() -> CaptureConfig {
        CaptureConfig {
            ring_buffer_bytes: 8 * 1024 * 1024,
            poll_interval_ms: 5,
            mode: CaptureMode::Auto,
            syscalls: Vec::new(),
            disable: Vec::new(),
            ignore: IgnoreConfig::default(),
            sensitive_paths: [
                "/etc/shadow",
                "/etc/gshadow",
                "/etc/sudoers",
                "/etc/sudoers.d/",
                "/etc/ssh/ssh_host_*",
                "/root/.ssh/",
            ]
            .map(String::from)
            .to_vec(),
            ancestry: AncestryConfig::default(),
        }
    }
}

/// Config-file watching.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    /// Files and directories (a directory covers the files directly in it) to watch.
    pub paths: Vec<PathBuf>,
    /// Watched files whose content is secret: absolute paths or globs (`*` does not cross `/`; a directory
    /// covers the files directly in it). Their changes carry hashes, size, metadata and changed entry
    /// names, never content or a diff. The built-in entries (the default) always apply, and so does a
    /// watched file whose content holds a PEM private key.
    #[serde(deserialize_with = "redact_entries")]
    pub redact: Vec<String>,
}

impl Default for WatchConfig {
    fn default() -> WatchConfig {
        WatchConfig {
            paths: crate::watch::WatchList::default_paths(),
            redact: crate::watch::Redaction::default_patterns(),
        }
    }
}

/// `watch.redact`, each entry checked (absolute, a valid glob) where it is written.
fn redact_entries<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let entries = Vec::<String>::deserialize(d)?;
    crate::watch::Redaction::new(entries.iter().map(String::as_str))
        .map_err(serde::de::Error::custom)?;
    Ok(entries)
}

/// A config file that could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("{path}: cannot read config: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML is malformed or names an unknown field or a wrong type.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message (names the field).
        message: String,
    },
    /// A field has a value outside its range.
    #[error("{path}: field `{field}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Dotted field name.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Loads `path`; a missing file gives the defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(path, &text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses and checks config text; `path` is used in error messages.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        // An empty or comment-only file is the defaults, not an error.
        if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            return Ok(Config::default());
        }
        let config: Config = serde_yaml_ng::from_str(text).map_err(|err| {
            let (line, column) = err
                .location()
                .map_or((0, 0), |loc| (loc.line(), loc.column()));
            ConfigError::Syntax {
                path: path.to_owned(),
                line,
                column,
                message: err.to_string(),
            }
        })?;
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let ring = self.capture.ring_buffer_bytes;
        if !ring.is_power_of_two() || ring < 4096 {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                field: "capture.ring_buffer_bytes",
                message: format!("{ring} is not a power of two of at least 4096"),
            });
        }
        for name in &self.capture.disable {
            if op_slot(name).is_none() {
                return Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    field: "capture.disable",
                    message: format!(
                        "unknown event kind `{name}` (known: {})",
                        op_slot_names().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }
        for prefix in self
            .capture
            .ignore
            .path_prefixes
            .iter()
            .chain(&self.capture.sensitive_paths)
        {
            if !prefix.starts_with('/') {
                return Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    field: "capture.ignore.path_prefixes / capture.sensitive_paths",
                    message: format!("`{prefix}` is not an absolute path"),
                });
            }
        }
        if let Some(url) = &self.alerts.webhook
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                field: "alerts.webhook",
                message: format!("`{url}` is not an http(s) URL"),
            });
        }
        if self.journal.segment_bytes < 4096 {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                field: "journal.segment_bytes",
                message: format!("{} is below 4096", self.journal.segment_bytes),
            });
        }
        if !(1..=10_000).contains(&self.journal.fsync_interval_ms) {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                field: "journal.fsync_interval_ms",
                message: format!("{} is outside 1..=10000", self.journal.fsync_interval_ms),
            });
        }
        if let Some(max) = self.journal.max_bytes
            && max < 2 * self.journal.segment_bytes
        {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                field: "journal.max_bytes",
                message: format!(
                    "{max} is below twice journal.segment_bytes ({}): retention deletes whole segments",
                    self.journal.segment_bytes
                ),
            });
        }
        self.ship.check(path)?;
        let ancestry = self.capture.ancestry;
        if !(1..=64).contains(&ancestry.depth) {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                field: "capture.ancestry.depth",
                message: format!("{} is outside 1..=64", ancestry.depth),
            });
        }
        if ancestry.exec_depth > ancestry.depth {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                field: "capture.ancestry.exec_depth",
                message: format!(
                    "{} is more than capture.ancestry.depth ({})",
                    ancestry.exec_depth, ancestry.depth
                ),
            });
        }
        if !(1..=1000).contains(&self.capture.poll_interval_ms) {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                field: "capture.poll_interval_ms",
                message: format!("{} is outside 1..=1000", self.capture.poll_interval_ms),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/auditloop/config.yaml"), text)
    }

    #[test]
    fn empty_and_missing_are_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
        assert_eq!(parse("# nothing\n").unwrap(), Config::default());
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Config::load(&dir.path().join("absent.yaml")).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn reads_values() {
        let c = parse("capture:\n  ring_buffer_bytes: 65536\n").unwrap();
        assert_eq!(c.capture.ring_buffer_bytes, 65536);
        assert_eq!(c.capture.poll_interval_ms, 5);
    }

    #[test]
    fn unknown_field_names_file_line_col_and_field() {
        let err = parse("capture:\n  ring_bufer_bytes: 65536\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("/etc/auditloop/config.yaml:2:3: "),
            "{text}"
        );
        assert!(text.contains("ring_bufer_bytes"), "{text}");
    }

    #[test]
    fn bad_ring_size_names_field() {
        let err = parse("capture:\n  ring_buffer_bytes: 5000\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/auditloop/config.yaml: field `capture.ring_buffer_bytes`: 5000 is not a power of two of at least 4096"
        );
    }

    #[test]
    fn ancestry_depths_are_read_and_checked() {
        let c = parse("capture:\n  ancestry:\n    depth: 8\n    exec_depth: 2\n").unwrap();
        assert_eq!(
            c.capture.ancestry,
            AncestryConfig {
                depth: 8,
                exec_depth: 2
            }
        );
        assert_eq!(Config::default().capture.ancestry.depth, 16);
        let err = parse("capture:\n  ancestry:\n    depth: 0\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/auditloop/config.yaml: field `capture.ancestry.depth`: 0 is outside 1..=64"
        );
        let err = parse("capture:\n  ancestry:\n    depth: 3\n    exec_depth: 4\n").unwrap_err();
        assert!(
            err.to_string().contains(
                "`capture.ancestry.exec_depth`: 4 is more than capture.ancestry.depth (3)"
            ),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_is_located() {
        let err = parse("capture:\n  poll_interval_ms: soon\n").unwrap_err();
        assert!(
            err.to_string().starts_with("/etc/auditloop/config.yaml:2:"),
            "{err}"
        );
    }
}
