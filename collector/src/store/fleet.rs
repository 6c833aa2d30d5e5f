//! Fleet alerts: every alert of every host as one list with a state people change, and the collector's
//! own audit log of who changed what.
//!
//! Two sources feed the list. **Rule** alerts are the `alert` events hosts ship: one fleet alert per alert
//! event, stored with the batch that carries it (a [`Finding`] in the record's columns), joined to its
//! triggering event and to the `action` events of the same trigger by sequence number. **Chain** alerts are
//! the collector's own ([`AlertKind`](auditloop_protocol::api::AlertKind)): one per host and kind, reopened
//! when raised again after being resolved. People move an alert between [`AlertState`]s; every change is an
//! [`AuditEntry`], and the audit log is hash-chained so a rewritten entry is noticed.

use auditloop_model::Severity;
use auditloop_protocol::api::fleet::{AlertSource, AlertState};

/// What an `alert` or `action` event tells the fleet-alert list (derived at ingest, see
/// [`columns`](crate::store::columns)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// A rule alert.
    Alert {
        /// Rule name.
        rule: String,
        /// Severity.
        severity: Severity,
        /// Tags.
        tags: Vec<String>,
        /// Rendered output.
        output: String,
        /// Sequence number of the triggering event.
        trigger_seq: u64,
    },
    /// An action carried out for a rule.
    Action {
        /// Rule name.
        rule: String,
        /// Which action (its stable name).
        action: String,
        /// Sequence number of the triggering event.
        trigger_seq: u64,
        /// Whether it succeeded.
        ok: bool,
        /// Details or the error.
        detail: String,
    },
    /// A hold's request or outcome.
    Hold(crate::store::holds::HoldReport),
    /// The names of the rules a host loaded.
    RulesLoaded(Vec<String>),
}

/// Filters over fleet alerts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetQuery {
    /// Only this host.
    pub host: Option<String>,
    /// Only this rule (for chain alerts: the alert kind's name).
    pub rule: Option<String>,
    /// Only this source.
    pub source: Option<AlertSource>,
    /// Only alerts at least this severe.
    pub min_severity: Option<Severity>,
    /// Only alerts in this state.
    pub state: Option<AlertState>,
    /// Only rule alerts triggered by this event (sequence number, with `host`).
    pub trigger_seq: Option<u64>,
    /// Last raised at or after (ns since the Unix epoch).
    pub since_ns: Option<u64>,
    /// Last raised before (ns since the Unix epoch).
    pub until_ns: Option<u64>,
    /// Alerts with an id below this one (newest first paging).
    pub before: Option<i64>,
    /// Alerts written (raised, repeated or changed) after this revision, oldest change first (for live
    /// feeds: what is new since).
    pub after: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// One action carried out for a rule alert's trigger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetAction {
    /// Sequence number of the `action` event.
    pub seq: u64,
    /// Which action.
    pub action: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// Details or the error.
    pub detail: String,
}

/// A stored fleet alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetAlert {
    /// Id: increases as alerts are stored (a reopened chain alert gets a new one).
    pub id: i64,
    /// Revision: the latest of every alert's writes (raised, repeated, changed) has the highest.
    pub rev: i64,
    /// Where it comes from.
    pub source: AlertSource,
    /// Host.
    pub host: String,
    /// Rule name, or the chain alert's kind.
    pub rule: String,
    /// Severity.
    pub severity: Severity,
    /// Tags.
    pub tags: Vec<String>,
    /// The rule's output, or the chain alert's description and detail.
    pub output: String,
    /// Sequence number of the `alert` event (rule) or the record concerned (chain).
    pub seq: Option<u64>,
    /// Sequence number of the triggering event (rule alerts).
    pub trigger_seq: Option<u64>,
    /// When first raised (ns since the Unix epoch; a rule alert's event time).
    pub time_ns: u64,
    /// When last raised.
    pub last_time_ns: u64,
    /// How often raised (chain alerts count repeats; rule alerts are one per event).
    pub count: u64,
    /// State.
    pub state: AlertState,
    /// Who last changed the state (`None` while never changed).
    pub state_by: Option<String>,
    /// When (ns since the Unix epoch).
    pub state_ns: Option<u64>,
    /// The comment given with the last change.
    pub state_comment: Option<String>,
    /// The actions carried out for the trigger (rule alerts), by sequence number.
    pub actions: Vec<FleetAction>,
}

/// A change of a fleet alert's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange<'a> {
    /// The alert.
    pub id: i64,
    /// The new state.
    pub state: AlertState,
    /// Who (a role or user name).
    pub by: &'a str,
    /// Why.
    pub comment: &'a str,
    /// When (ns since the Unix epoch).
    pub now_ns: u64,
}

/// One entry of the collector's audit log: something a person did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// Id (increasing).
    pub id: i64,
    /// When (ns since the Unix epoch).
    pub time_ns: u64,
    /// Who.
    pub who: String,
    /// What: `alert_state`, `hold_verdict`, `verify`, …
    pub action: String,
    /// On what: `alert:<id>`, `hold:<host>:<id>`, `host:<host>`.
    pub target: String,
    /// Details (JSON).
    pub detail: serde_json::Value,
    /// SHA-256 (hex) over the previous entry's hash and this entry's fields.
    pub hash: String,
}

/// An audit entry to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAuditEntry<'a> {
    /// When (ns since the Unix epoch).
    pub time_ns: u64,
    /// Who.
    pub who: &'a str,
    /// What.
    pub action: &'a str,
    /// On what.
    pub target: &'a str,
    /// Details (JSON).
    pub detail: serde_json::Value,
}

/// The hash of an audit entry: SHA-256 over the previous entry's hash (hex, empty for the first) and the
/// entry's fields, each length-prefixed.
pub fn audit_hash(previous: &str, entry: &NewAuditEntry<'_>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let detail = entry.detail.to_string();
    let time = entry.time_ns.to_string();
    for part in [
        previous,
        time.as_str(),
        entry.who,
        entry.action,
        entry.target,
        detail.as_str(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The severity a chain alert of `kind` is listed with: a refused or rewritten chain is critical, the rest
/// are warnings.
pub fn chain_severity(kind: auditloop_protocol::api::AlertKind) -> Severity {
    use auditloop_protocol::api::AlertKind;
    match kind {
        AlertKind::Forgery | AlertKind::Tamper | AlertKind::ChainFork => Severity::Critical,
        AlertKind::Gap
        | AlertKind::UnexpectedRestart
        | AlertKind::Silence
        | AlertKind::SpoolOverflow => Severity::Warning,
    }
}
