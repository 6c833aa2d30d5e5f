//! The collector's HTTP API: routes, answers and error bodies, shared by the collector (which builds them)
//! and the agent and tests (which read them). The routes and their semantics are documented in
//! `docs/collector.md`; the answer of [`LINEAGE`] is in [`lineage`], rule tuning across the fleet in
//! [`rules`].

pub mod fleet;
pub mod holds;
pub mod lineage;
pub mod rules;

use auditloop_model::Event;
use fleet::{AlertSource, AlertState};
use holds::Decision;
use serde::{Deserialize, Serialize};
use strum::{EnumIter, EnumString, IntoStaticStr, VariantNames};

/// `GET /healthz`: answers `ok` while the collector runs.
pub const HEALTHZ: &str = "/healthz";
/// `POST`: one batch from an agent, authorized only by the token of the host in the path.
pub const BATCHES: &str = "/v1/hosts/{host}/batches";
/// `GET`: every host ([`HostsPage`]). `POST` [`HostRegistration`] (admin token): registers or re-enrolls a
/// host, answering [`EnrollResponse`] (201).
pub const HOSTS: &str = "/v1/hosts";
/// `GET`: one host ([`HostSummary`]).
pub const HOST: &str = "/v1/hosts/{host}";
/// `GET`: stored records ([`EventsPage`]): verified records only, unless `pending=true`.
pub const EVENTS: &str = "/v1/events";
/// `GET`: alerts ([`AlertsPage`]).
pub const ALERTS: &str = "/v1/alerts";
/// `GET ?host=&seq=&pending=`: the lineage of one stored event across hosts
/// ([`lineage::LineageAnswer`]): verified records only, unless `pending=true`.
pub const LINEAGE: &str = "/v1/lineage";
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
    /// The sequence number the host's next batch must start at (or before): the one after the batch's last
    /// record (never more, even when the collector holds records beyond a replayed batch).
    pub next_seq: u64,
    /// The highest sequence number covered by a checkpoint verified along the host's key chain (0 if
    /// none): every stored record up to it is verified.
    #[serde(default)]
    pub verified_through: u64,
    /// Records of the host stored but not yet covered by a verified checkpoint.
    #[serde(default)]
    pub pending: u64,
}

/// The body of every error answer: a human-readable `error`, plus the fields its status adds. It never
/// carries stored hashes, payloads or other stored values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Why the request failed (`refused` for a batch that does not verify, `host_exists` for an enrollment
    /// of a known id).
    pub error: String,
    /// 409 to a batch: the sequence number the collector expects next from the authenticated host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_seq: Option<u64>,
    /// 422: the kind of damage (`hash_mismatch`, `broken_link`, …, `chain_fork` or `wrong_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damage: Option<String>,
}

/// What `damage` says for a replayed record that differs from the stored one.
pub const DAMAGE_CHAIN_FORK: &str = "chain_fork";
/// What `damage` says for a host's first batch whose chain does not start from its enrolled genesis key.
pub const DAMAGE_WRONG_KEY: &str = "wrong_key";
/// The `error` of a 422 answer to a batch.
pub const ERROR_REFUSED: &str = "refused";
/// The `error` of a 409 answer to an enrollment.
pub const ERROR_HOST_EXISTS: &str = "host_exists";

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
    /// Registered with its genesis key; nothing shipped yet.
    Enrolled,
    /// Every stored record chained to the host's enrolled genesis key (from its genesis record, or from an
    /// anchor whose key ladder leads back to that key).
    Verified,
    /// Every stored record verified from an anchor trusted on first use, before the host was enrolled
    /// (hosts first stored by collectors that had no enrollment).
    AnchoredTofu,
    /// Set by collectors before enrollment when a batch refused replayed records that differ from stored
    /// ones; the next stored batch clears it. Refusals no longer change a host's status.
    Forked,
    /// Set by collectors before enrollment when a refused batch failed verification; the next stored batch
    /// clears it.
    Tampered,
    /// An earlier enrollment of a host id that was re-enrolled with a new key: the chain stored under the
    /// old key, kept under the name `<host>@replaced-<ns>`.
    Replaced,
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
    /// Raised by collectors before enrollment when a replayed record differed from the stored one (now a
    /// [`AlertKind::Forgery`]).
    ChainFork,
    /// A batch started after the next expected sequence number (answered with 409).
    Gap,
    /// Raised by collectors before enrollment when a record failed verification (now a
    /// [`AlertKind::Forgery`]).
    Tamper,
    /// An agent generation began without the previous one ending in `agent_stop`, or generations were
    /// skipped.
    UnexpectedRestart,
    /// A host that shipped before has not shipped for the silence period.
    Silence,
    /// The agent's spool overflowed (a `loss` event of stage `spool_overflow`).
    SpoolOverflow,
    /// A batch for an enrolled host was refused: sent with a token that is not the host's own, or not
    /// verifying against the host's stored chain and enrolled key. Names the token's identity and the peer.
    Forgery,
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
named!(HostStatus, AlertKind, AlertSource, AlertState, Decision);

/// One host, as `GET /v1/hosts` lists it and `GET /v1/hosts/{host}` serves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSummary {
    /// Host name.
    pub host: String,
    /// Chain status.
    pub status: HostStatus,
    /// First stored sequence number (0 before the first batch).
    pub first_seq: u64,
    /// Last stored sequence number (0 before the first batch).
    pub last_seq: u64,
    /// Sequence number the next batch must continue from.
    pub next_seq: u64,
    /// Hash (hex) of the last stored record, which the host's journal `HEAD` names too once it is shipped
    /// (`null` before the first batch).
    pub last_hash: Option<String>,
    /// Records stored (events, segment starts, checkpoints): `last_seq - first_seq + 1`.
    pub records: u64,
    /// Records stored but not yet covered by a verified checkpoint (not served as verified).
    pub pending: u64,
    /// Highest sequence number covered by a verified checkpoint (`null` before the first).
    pub last_verified_seq: Option<u64>,
    /// Event records stored.
    pub events: u64,
    /// Replayed records received and not stored again.
    pub duplicates: u64,
    /// Batches stored.
    pub batches: u64,
    /// When the collector last stored newly verified records or a newer checkpoint of the host (an idle
    /// agent's heartbeat checkpoint), ns since the Unix epoch; `null` before the first. Replays and refused
    /// batches do not move it.
    pub last_seen_ns: Option<u64>,
    /// The same, RFC 3339.
    pub last_seen: Option<String>,
    /// Sequence number of the last verified checkpoint (`null` before the first).
    pub last_checkpoint_seq: Option<u64>,
    /// When it was stored (ns since the Unix epoch).
    pub last_checkpoint_ns: Option<u64>,
    /// Key epoch the next checkpoint must name.
    pub epoch: u64,
    /// The genesis public key (hex) the host is enrolled with: the root of trust of its chain.
    pub enrolled_key: Option<String>,
    /// The host's genesis public key (hex), once its first segment start is stored.
    pub genesis_key: Option<String>,
    /// The public key of the anchor the host's first stored batch started from (hex), for hosts first seen
    /// after their genesis.
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
    /// When it was first raised (ns since the Unix epoch).
    pub time_ns: u64,
    /// The same, RFC 3339.
    pub time: String,
    /// How many times it was raised: repeats of one kind for one host collapse into this one alert.
    pub count: u64,
    /// When it was last raised (ns since the Unix epoch).
    pub last_time_ns: u64,
    /// The same, RFC 3339.
    pub last_time: String,
    /// The sequence number concerned, if any (of the last time it was raised).
    pub seq: Option<u64>,
    /// Details of the last time it was raised (a JSON object whose keys depend on the kind).
    pub detail: serde_json::Value,
}

/// `GET /v1/alerts`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertsPage {
    /// Alerts, least recently raised first (a repeat moves an alert to the end, with a new id).
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
    /// Whether a checkpoint verified along the host's key chain covers it (otherwise it is pending, and
    /// served only with `pending=true`).
    pub verified: bool,
    /// When the checkpoint that first covered it was stored (ns since the Unix epoch): the record's
    /// event→verified latency is this minus the event's time. `null` while pending (and for records of
    /// databases older than the checkpoints table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_ns: Option<u64>,
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
        assert_eq!(HostStatus::parse("enrolled"), Some(HostStatus::Enrolled));
        assert_eq!(AlertKind::Forgery.as_str(), "forgery");
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
        let refused = ErrorBody {
            error: ERROR_REFUSED.into(),
            damage: Some(DAMAGE_WRONG_KEY.into()),
            ..ErrorBody::default()
        };
        assert_eq!(
            serde_json::to_value(&refused).unwrap(),
            serde_json::json!({"error": "refused", "damage": "wrong_key"})
        );
    }

    #[test]
    fn receipts_from_older_collectors_read_with_zero_coverage() {
        let old: BatchReceipt =
            serde_json::from_str(r#"{"stored":3,"duplicates":0,"next_seq":4}"#).unwrap();
        assert_eq!((old.verified_through, old.pending), (0, 0));
    }
}
