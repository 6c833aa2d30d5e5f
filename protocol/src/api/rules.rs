//! Rule tuning across the fleet on the wire: a baseline learned from a host group's stored events and the
//! alert-only rules it proposes, a rule change replayed over stored events, and the per-rule hit
//! statistics.
//!
//! Hosts are chosen by `group` (a host group of the collector's configuration file, host-name glob patterns)
//! and/or `hosts` (one ad-hoc glob pattern); with both, `hosts` narrows the group and never selects a host
//! outside it. Windows are `since` (inclusive) and `until` (exclusive), RFC 3339 or nanoseconds since the
//! Unix epoch, over event time. Only verified records are read, a host at a time in sequence order, and at
//! most `max_events` of them per request ([`DEFAULT_MAX_EVENTS`], never more than [`MAX_EVENTS`]); past
//! that, the answer says `truncated`.

use serde::{Deserialize, Serialize};

/// `GET ?group=&hosts=&since=&until=&max_events=&config_paths=` (any console role): the group's baseline
/// and the rules proposed from it (JSON, see `docs/collector.md`).
pub const RULES_LEARN: &str = "/v1/rules/learn";
/// `GET`, the same parameters as [`RULES_LEARN`]: the proposed rules file alone (`application/yaml`,
/// as an attachment).
pub const RULES_LEARN_YAML: &str = "/v1/rules/learn.yaml";
/// `POST` [`DiffRequest`] (any console role): the alerts a rule change adds and removes over the stored
/// events of the chosen hosts (JSON, see `docs/collector.md`).
pub const RULES_DIFF: &str = "/v1/rules/diff";
/// `GET` (any console role): hits per rule, noisiest first, and the loaded rules that never fired (JSON).
pub const RULES_STATS: &str = "/v1/rules/stats";
/// `GET`: the same statistics as CSV, one row per rule (never-fired rules with 0 hits last).
pub const RULES_STATS_CSV: &str = "/v1/rules/stats.csv";

/// Events read when a request names no `max_events`.
pub const DEFAULT_MAX_EVENTS: u64 = 200_000;
/// The most events one request reads.
pub const MAX_EVENTS: u64 = 1_000_000;
/// The largest body of [`RULES_DIFF`], in bytes (both rule files and the rest).
pub const MAX_DIFF_BODY: usize = 1024 * 1024;
/// Examples per rule and direction when a diff names no `examples`.
pub const DEFAULT_EXAMPLES: usize = 3;
/// The most examples per rule and direction.
pub const MAX_EXAMPLES: usize = 50;

/// The body of a [`RULES_DIFF`] request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffRequest {
    /// The current rules file's text.
    pub old: String,
    /// The changed rules file's text.
    pub new: String,
    /// A host group of the collector's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// A host-name glob pattern (within `group` when both are given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<String>,
    /// Window start (inclusive): RFC 3339 or nanoseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Window end (exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Examples kept per rule and direction (default [`DEFAULT_EXAMPLES`], at most [`MAX_EXAMPLES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub examples: Option<usize>,
    /// Events read at most (default [`DEFAULT_MAX_EVENTS`], at most [`MAX_EVENTS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_events: Option<u64>,
}

/// How many events one host gave a learn or a diff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEvents {
    /// Host.
    pub host: String,
    /// Its events read in the window.
    pub events: u64,
}

#[cfg(test)]
mod tests {
    use super::DiffRequest;

    #[test]
    fn a_diff_request_needs_only_the_two_files() {
        let r: DiffRequest = serde_json::from_str(r#"{"old":"a","new":"b"}"#).unwrap();
        assert_eq!((r.old.as_str(), r.new.as_str()), ("a", "b"));
        assert_eq!(r.group, None);
        let err = serde_json::from_str::<DiffRequest>(r#"{"old":"","new":"","grup":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `grup`"), "{err}");
    }
}
