//! Fleet alerts on the wire: every rule alert of every host and the collector's chain-health alerts in one
//! list, each with a state people change.

use serde::{Deserialize, Serialize};
use strum::{EnumIter, EnumString, IntoStaticStr, VariantNames};

use crate::api::RecordView;

/// `GET ?host=&rule=&source=&severity=&state=&since=&until=&before=&after=&limit=` (any console role):
/// fleet alerts, newest first ([`FleetAlertsPage`]). `severity` keeps alerts at least that severe.
pub const FLEET_ALERTS: &str = "/v1/fleet/alerts";
/// `GET`: one fleet alert with its triggering event and state history ([`FleetAlertDetail`]).
pub const FLEET_ALERT: &str = "/v1/fleet/alerts/{id}";
/// `POST` [`StateRequest`] (admin or approver): changes the alert's state; answers the alert.
pub const FLEET_ALERT_STATE: &str = "/v1/fleet/alerts/{id}/state";

/// Where a fleet alert comes from.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    EnumString,
    IntoStaticStr,
    VariantNames,
    strum::Display,
    serde_with::SerializeDisplay,
    serde_with::DeserializeFromStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum AlertSource {
    /// A host's rule matched an event (an `alert` event the host shipped).
    Rule,
    /// The collector judged a host's chain or shipping (gap, forgery, silence, …).
    Chain,
}

/// Where a person has taken a fleet alert.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    EnumString,
    IntoStaticStr,
    VariantNames,
    strum::Display,
    serde_with::SerializeDisplay,
    serde_with::DeserializeFromStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum AlertState {
    /// Nobody has looked at it yet.
    Open,
    /// Someone is on it.
    Acknowledged,
    /// Dealt with.
    Resolved,
}

/// One action carried out for a rule alert's trigger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionView {
    /// Sequence number of the `action` event.
    pub seq: u64,
    /// Which action (`kill`, `rollback`, `deny`, `hold`, …).
    pub action: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// Details or the error.
    pub detail: String,
}

/// One fleet alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetAlertView {
    /// Id (the paging cursor).
    pub id: i64,
    /// Source.
    pub source: AlertSource,
    /// Host.
    pub host: String,
    /// Rule name, or the chain alert's kind.
    pub rule: String,
    /// Severity (syslog level name).
    pub severity: String,
    /// Tags (e.g. ATT&CK ids).
    pub tags: Vec<String>,
    /// The rule's output, or what the chain alert means.
    pub output: String,
    /// Sequence number of the `alert` event (rule) or of the record concerned (chain).
    pub seq: Option<u64>,
    /// Sequence number of the triggering event (rule alerts).
    pub trigger_seq: Option<u64>,
    /// When first raised (ns since the Unix epoch).
    pub time_ns: u64,
    /// The same, RFC 3339.
    pub time: String,
    /// When last raised (ns since the Unix epoch).
    pub last_time_ns: u64,
    /// How often raised.
    pub count: u64,
    /// State.
    pub state: AlertState,
    /// Who last changed the state.
    pub state_by: Option<String>,
    /// When (ns since the Unix epoch).
    pub state_ns: Option<u64>,
    /// The comment of the last change.
    pub state_comment: Option<String>,
    /// Actions carried out for the trigger, and their outcome.
    pub actions: Vec<ActionView>,
}

/// `GET` [`FLEET_ALERTS`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetAlertsPage {
    /// Alerts, newest first.
    pub alerts: Vec<FleetAlertView>,
    /// The cursor of the next (older) page (pass as `before`); `null` on the last page.
    pub next: Option<i64>,
}

/// One change in an alert's history (an entry of the collector's audit log).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChangeView {
    /// When (ns since the Unix epoch).
    pub time_ns: u64,
    /// Who.
    pub who: String,
    /// The new state.
    pub state: String,
    /// Why.
    pub comment: String,
}

/// `GET` [`FLEET_ALERT`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FleetAlertDetail {
    /// The alert.
    pub alert: FleetAlertView,
    /// Its triggering event, when stored.
    pub trigger: Option<RecordView>,
    /// Its state changes, oldest first.
    pub history: Vec<StateChangeView>,
}

/// The body of a [`FLEET_ALERT_STATE`] request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRequest {
    /// The new state.
    pub state: AlertState,
    /// Why.
    #[serde(default)]
    pub comment: String,
}
