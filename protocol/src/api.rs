//! The collector's HTTP API: routes, answers and error bodies, shared by the collector (which builds them)
//! and the agent and tests (which read them). The routes and their semantics are documented in
//! `docs/collector.md`.

use auditloop_model::Event;
use serde::{Deserialize, Serialize};
use strum::{EnumIter, EnumString, IntoStaticStr, VariantNames};

/// `GET /healthz`: answers `ok` while the collector runs.
pub const HEALTHZ: &str = "/healthz";
/// `POST`: one batch from an agent, authorized for the host in the path.
pub const BATCHES: &str = "/v1/hosts/{host}/batches";
/// `GET`: every host ([`HostsPage`]).
pub const HOSTS: &str = "/v1/hosts";
/// `GET`: one host ([`HostSummary`]).
pub const HOST: &str = "/v1/hosts/{host}";
/// `GET`: stored records ([`EventsPage`]).
pub const EVENTS: &str = "/v1/events";
/// `GET`: alerts ([`AlertsPage`]).
pub const ALERTS: &str = "/v1/alerts";
/// `POST` [`EnrollRequest`] with the enrollment (or admin) token: creates a new host, answers
/// [`EnrollResponse`] (201), or 409 `host_exists`. `POST` [`HostRegistration`] to [`HOSTS`] with the admin
/// token pre-registers or re-enrolls a host.
pub const ENROLL: &str = "/v1/enroll";

/// A host asking to be enrolled: its id and the genesis public key of its journal (`auditloop key show`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// Host id (as in the host's segment starts).
    pub host_id: String,
    /// The journal's genesis public key, 64 hex digits.
    pub genesis_public_key: String,
}

/// An admin registering a host (`POST /v1/hosts`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRegistration {
    /// Host id.
    pub host_id: String,
    /// The journal's genesis public key, 64 hex digits.
    pub genesis_public_key: String,
    /// Re-enroll an existing host: new key and new token; its stored chain stays, its state restarts
    /// from the new key's genesis.
    #[serde(default)]
    pub replace: bool,
}

/// An enrolled host (HTTP 201): its per-host token, shown once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// Host id.
    pub host_id: String,
    /// The token that authorizes batches of this host only.
    pub token: String,
}

/// The path agents POST batches of `host` to.
pub fn batches_path(host: &str) -> String {
    BATCHES.replace("{host}", host)
}

/// The answer to a stored batch (HTTP 200).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchReceipt {
    /// Records stored.
    pub stored: u64,
    /// Records already stored before (replayed).
    pub duplicates: u64,
    /// The sequence number the host's next batch must start at (or before).
    pub next_seq: u64,
}

/// The body of every error answer: a human-readable `error`, plus the fields its status adds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Why the request failed.
    pub error: String,
    /// 409: the sequence number the collector expects next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_seq: Option<u64>,
    /// 422: the kind of damage (`hash_mismatch`, `broken_link`, …, or `chain_fork`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damage: Option<String>,
    /// 422: the sequence number concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// What `damage` says for a replayed record that differs from the stored one.
pub const DAMAGE_CHAIN_FORK: &str = "chain_fork";

/// A host's chain status.
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
pub enum HostStatus {
    /// Every stored record verified, from the host's genesis record.
    Verified,
    /// Every stored record verified from an anchor trusted on first use (the host's earliest records were
    /// gone before it first shipped).
    AnchoredTofu,
    /// The last batch refused replayed records that differ from stored ones.
    Forked,
    /// The last batch refused failed verification.
    Tampered,
}

/// Kinds of collector alert.
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
pub enum AlertKind {
    /// A replayed record differs from the stored one: the host's journal was rewritten.
    ChainFork,
    /// A batch started after the next expected sequence number (answered with 409).
    Gap,
    /// A record failed verification (answered with 422).
    Tamper,
    /// An agent generation began without the previous one ending in `agent_stop`, or generations were
    /// skipped.
    UnexpectedRestart,
    /// A host that shipped before has not shipped for the silence period.
    Silence,
    /// The agent's spool overflowed (a `loss` event of stage `spool_overflow`).
    SpoolOverflow,
}

macro_rules! named {
    ($($ty:ident),*) => {$(
        impl $ty {
            /// The stable name (as stored and served).
            pub fn as_str(self) -> &'static str {
                self.into()
            }

            /// The value called `name`, if any.
            pub fn parse(name: &str) -> Option<$ty> {
                name.parse().ok()
            }

            /// Every value, in declaration order.
            pub fn all() -> impl Iterator<Item = $ty> {
                <$ty as strum::IntoEnumIterator>::iter()
            }
        }
    )*};
}
named!(HostStatus, AlertKind);

/// One host, as `GET /v1/hosts` lists it and `GET /v1/hosts/{host}` serves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSummary {
    /// Host name.
    pub host: String,
    /// Chain status.
    pub status: HostStatus,
    /// First stored sequence number.
    pub first_seq: u64,
    /// Last stored sequence number.
    pub last_seq: u64,
    /// Sequence number the next batch must continue from.
    pub next_seq: u64,
    /// Hash (hex) of the last stored record, which the host's journal `HEAD` names too once it is shipped
    /// (`null` before the first batch).
    pub last_hash: Option<String>,
    /// Records stored (events, segment starts, checkpoints): `last_seq - first_seq + 1`.
    pub records: u64,
    /// Event records stored.
    pub events: u64,
    /// Replayed records received and not stored again.
    pub duplicates: u64,
    /// Batches stored.
    pub batches: u64,
    /// Last contact (a stored or refused batch), ns since the Unix epoch.
    pub last_seen_ns: u64,
    /// The same, RFC 3339.
    pub last_seen: String,
    /// Sequence number of the last verified checkpoint (`null` before the first).
    pub last_checkpoint_seq: Option<u64>,
    /// When it was stored (ns since the Unix epoch).
    pub last_checkpoint_ns: Option<u64>,
    /// Key epoch the next checkpoint must name.
    pub epoch: u64,
    /// The host's genesis public key (hex), once its first segment start is stored.
    pub genesis_key: Option<String>,
    /// The anchor public key trusted on first use (hex), for hosts first seen after their genesis.
    pub anchor_key: Option<String>,
    /// Generation (agent start counter) of the last segment start.
    pub generation: Option<u64>,
    /// Whether a silence alert is open for the host.
    pub silent: bool,
}

/// `GET /v1/hosts`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostsPage {
    /// Every host, by name.
    pub hosts: Vec<HostSummary>,
}

/// One alert, as `GET /v1/alerts` serves it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    /// Alert id (the paging cursor).
    pub id: i64,
    /// Host.
    pub host: String,
    /// Kind.
    pub kind: AlertKind,
    /// When it was raised (ns since the Unix epoch).
    pub time_ns: u64,
    /// The same, RFC 3339.
    pub time: String,
    /// The sequence number concerned, if any.
    pub seq: Option<u64>,
    /// Details (a JSON object whose keys depend on the kind).
    pub detail: serde_json::Value,
}

/// `GET /v1/alerts`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertsPage {
    /// Alerts, oldest first.
    pub alerts: Vec<AlertView>,
    /// The cursor of the next page (pass as `after`); `null` on the last page.
    pub next: Option<i64>,
}

/// One stored record as `GET /v1/events` serves it: an event under `event`, a segment start or checkpoint
/// under `record`, or why the stored payload did not decode under `error`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordView {
    /// Record id (ingest order; the paging cursor).
    pub id: i64,
    /// Host.
    pub host: String,
    /// Sequence number.
    pub seq: u64,
    /// When it was stored (ns since the Unix epoch).
    pub stored_ns: u64,
    /// Kind (`exec`, …, `segment_start`, `checkpoint`).
    pub kind: String,
    /// The event, for event records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
    /// A segment start or checkpoint, as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<serde_json::Value>,
    /// Why the stored payload did not decode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /v1/events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventsPage {
    /// Records, in ingest order.
    pub events: Vec<RecordView>,
    /// The cursor of the next page (pass as `after`); `null` on the last page.
    pub next: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for kind in AlertKind::all() {
            assert_eq!(AlertKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!(AlertKind::parse("nope"), None);
        assert_eq!(HostStatus::AnchoredTofu.as_str(), "anchored_tofu");
        assert_eq!(batches_path("web-1"), "/v1/hosts/web-1/batches");
    }

    #[test]
    fn error_bodies_carry_only_their_fields() {
        let gap = ErrorBody {
            error: "gap".into(),
            expected_seq: Some(7),
            ..ErrorBody::default()
        };
        assert_eq!(
            serde_json::to_value(&gap).unwrap(),
            serde_json::json!({"error": "gap", "expected_seq": 7})
        );
        let back: ErrorBody = serde_json::from_str(r#"{"error":"x"}"#).unwrap();
        assert_eq!(back.expected_seq, None);
    }
}
