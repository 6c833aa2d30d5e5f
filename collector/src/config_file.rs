//! The collector's configuration file (`--config FILE`, YAML): every serving setting the command line has,
//! under the same names with `_` for `-`, the metrics endpoint, and the host groups (`groups:`, file only).
//!
//! Every key is optional here; [`crate::settings`] merges the file under the command line (a flag wins) and
//! says which required setting is missing. Unknown keys are errors, and every error names the file, the
//! line and column, and the field, so a typo never silently turns a setting off. The file is read once at
//! start; it holds no secrets (the tokens stay in their own files).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::groups::HostGroups;

/// The configuration file: every key optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Address the API listens on (`--listen`).
    pub listen: Option<String>,
    /// SQLite database file (`--db`).
    pub db: Option<PathBuf>,
    /// The admin token's file (`--admin-token-file`).
    pub admin_token_file: Option<PathBuf>,
    /// The enrollment token's file (`--enroll-token-file`).
    pub enroll_token_file: Option<PathBuf>,
    /// The approver token's file (`--approver-token-file`).
    pub approver_token_file: Option<PathBuf>,
    /// The viewer token's file (`--viewer-token-file`).
    pub viewer_token_file: Option<PathBuf>,
    /// PEM certificate chain to serve HTTPS with (`--tls-cert`; needs `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert` (`--tls-key`).
    pub tls_key: Option<PathBuf>,
    /// Seconds of silence before a `silence` alert (`--silence-secs`; 0 = off).
    pub silence_secs: Option<u64>,
    /// Largest batch body accepted, in bytes (`--max-body-bytes`; at least 1).
    pub max_body_bytes: Option<usize>,
    /// Connections served at once (`--max-connections`; at least 1).
    pub max_connections: Option<usize>,
    /// Batches in progress at once (`--max-concurrent-batches`; at least 1).
    pub max_concurrent_batches: Option<usize>,
    /// The lineage join window in milliseconds (`--lineage-window-ms`; 1 to 3600000).
    pub lineage_window_ms: Option<u64>,
    /// Days of stored records kept (`--retention-days`; 1 to 36500; PostgreSQL only).
    pub retention_days: Option<u64>,
    /// The Prometheus metrics endpoint.
    #[serde(default)]
    pub metrics: MetricsFileConfig,
    /// Host groups: name to host-name glob patterns (fleet-wide learning and rules diffs choose hosts by
    /// them).
    #[serde(default)]
    pub groups: HostGroups,
}

/// The `metrics:` block.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsFileConfig {
    /// Address of the metrics endpoint (`--metrics-listen`); absent = no endpoint.
    pub listen: Option<String>,
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("{path}: cannot read config: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (in the message, so not a source too).
        error: std::io::Error,
    },
    /// The YAML is malformed, or names an unknown field, or a value has the wrong type or range.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when the parser knows none).
        line: usize,
        /// 1-based column (0 when the parser knows none).
        column: usize,
        /// The parser's message, naming the field.
        message: String,
    },
    /// `tls_cert` and `tls_key` must be given together.
    #[error("{path}: field `{field}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl ConfigFile {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigFileError::Read {
            path: path.to_owned(),
            error,
        })?;
        ConfigFile::parse(path, &text)
    }

    /// Parses configuration text; `path` is used in error messages. An empty or comment-only file sets
    /// nothing.
    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigFileError> {
        if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            return Ok(ConfigFile::default());
        }
        let file: ConfigFile = serde_yaml_ng::from_str(text).map_err(|err| {
            let (line, column) = err
                .location()
                .map_or((0, 0), |loc| (loc.line(), loc.column()));
            let mut message = err.to_string();
            let (found_line, found_column) = (line, column);
            let (line, column) = refine(text, line, column, &message);
            let said = format!(" at line {found_line} column {found_column}");
            if (line, column) != (found_line, found_column) && message.ends_with(&said) {
                message.truncate(message.len() - said.len());
                message.push_str(&format!(" at line {line} column {column}"));
            }
            // The key of collectors before enrollment: say what replaced it, not what is expected.
            let message = if message.starts_with("unknown field `hosts`") {
                format!("hosts: {REMOVED_HOSTS}")
            } else {
                message
            };
            ConfigFileError::Syntax {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        })?;
        check(path, text, &file)?;
        Ok(file)
    }
}

/// What upgrading from per-host tokens in the file takes.
const REMOVED_HOSTS: &str = "per-host tokens in the configuration file are gone: the collector issues host \
     tokens and keeps only their digests; run `auditloop-collector issue-host-tokens --db DB --out DIR` for \
     the hosts already in the database (docs/collector.md, \"Upgrading from a shared agent token\")";

/// Checks what the types alone do not: ranges, and that TLS files come in pairs.
fn check(path: &Path, text: &str, file: &ConfigFile) -> Result<(), ConfigFileError> {
    let at_least_one = [
        ("max_body_bytes", file.max_body_bytes),
        ("max_connections", file.max_connections),
        ("max_concurrent_batches", file.max_concurrent_batches),
    ];
    for (key, value) in at_least_one {
        if value == Some(0) {
            return Err(out_of_range(path, text, key, "must be at least 1".into()));
        }
    }
    if let Some(ms) = file.lineage_window_ms
        && !(1..=3_600_000).contains(&ms)
    {
        let message = format!("{ms} is outside 1..=3600000");
        return Err(out_of_range(path, text, "lineage_window_ms", message));
    }
    if let Some(days) = file.retention_days
        && !(1..=36_500).contains(&days)
    {
        let message = format!("{days} is outside 1..=36500");
        return Err(out_of_range(path, text, "retention_days", message));
    }
    let invalid = |field, other| ConfigFileError::Invalid {
        path: path.to_owned(),
        field,
        message: format!("needs `{other}` too"),
    };
    match (&file.tls_cert, &file.tls_key) {
        (Some(_), None) => Err(invalid("tls_cert", "tls_key")),
        (None, Some(_)) => Err(invalid("tls_key", "tls_cert")),
        _ => Ok(()),
    }
}

/// A host group's bad pattern or name, located where it is written: the parser places such an error at
/// the start of the list or map holding it, so the value the message quotes is looked for from there on.
fn refine(text: &str, line: usize, column: usize, message: &str) -> (usize, usize) {
    let quoted = ["invalid host pattern \"", "invalid host group name \""]
        .iter()
        .find_map(|m| message.split_once(m).map(|(_, rest)| rest))
        .and_then(|rest| rest.split_once('"'))
        .map(|(value, _)| value)
        .filter(|v| !v.is_empty() && !v.contains('\\'));
    let Some(value) = quoted else {
        return (line, column);
    };
    for (i, l) in text.lines().enumerate().skip(line.saturating_sub(1)) {
        if l.trim_start().starts_with('#') {
            continue;
        }
        if let Some(at) = l.find(value) {
            let start = if l[..at].ends_with(['"', '\'']) {
                at - 1
            } else {
                at
            };
            return (i + 1, l[..start].chars().count() + 1);
        }
    }
    (line, column)
}

/// The error of the top-level `key`'s value, located where the value starts.
fn out_of_range(path: &Path, text: &str, key: &str, message: String) -> ConfigFileError {
    let (line, column) = locate(text, key);
    ConfigFileError::Syntax {
        path: path.to_owned(),
        line,
        column,
        message: format!("{key}: {message}"),
    }
}

/// The 1-based line and column where the value of the top-level `key` starts (the key's own place when
/// the value is on the next lines; (0, 0) if the key is not found).
fn locate(text: &str, key: &str) -> (usize, usize) {
    for (i, line) in text.lines().enumerate() {
        let Some(rest) = line.strip_prefix(key) else {
            continue;
        };
        let Some(value) = rest.trim_start().strip_prefix(':') else {
            continue;
        };
        let value = value.trim_start();
        let column = if value.is_empty() || value.starts_with('#') {
            1
        } else {
            line.len() - value.len() + 1
        };
        return (i + 1, column);
    }
    (0, 0)
}

#[cfg(test)]
mod tests;
