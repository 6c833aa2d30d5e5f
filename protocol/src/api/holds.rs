//! Human-in-the-loop holds on the wire: a person's verdict on a held process, and how it reaches the host.
//!
//! A hold is named by its host and its id, the journal sequence number of the event that triggered it (one
//! hold per triggering event). The agent journals and ships the hold's request and outcome as `hold`
//! events; the collector lists the holds it learned of ([`HOLDS`]) and records verdicts ([`HOLD_VERDICT`],
//! admin or approver). The agent pulls the verdicts meant for it over its outbound connection
//! ([`HOST_VERDICTS`], with its own host token), so a host never opens a port; it applies a verdict only to a
//! hold it still has waiting and journals what it did.

use serde::{Deserialize, Serialize};
use strum::{EnumIter, EnumString, IntoStaticStr, VariantNames};

/// `GET ?after=&wait_ms=` with the host's token: the verdicts recorded for the host's holds
/// ([`VerdictsPage`]), those with an id above `after` only; with `wait_ms`, answers as soon as one is
/// recorded or when the wait (at most [`MAX_WAIT_MS`]) ends, whichever comes first.
pub const HOST_VERDICTS: &str = "/v1/hosts/{host}/verdicts";
/// `GET ?host=&state=` (any console role): the holds the collector learned of from shipped `hold` events.
pub const HOLDS: &str = "/v1/holds";
/// `POST` [`VerdictRequest`] (admin or approver): decides the hold `{id}` of `{host}`; answers the
/// recorded [`Verdict`] (201), or 409 when the hold has a verdict or an outcome already.
pub const HOLD_VERDICT: &str = "/v1/holds/{host}/{id}/verdict";

/// Longest long-poll wait of [`HOST_VERDICTS`], in milliseconds.
pub const MAX_WAIT_MS: u64 = 30_000;

/// What a person decided for a held process.
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
pub enum Decision {
    /// Let it run on (SIGCONT).
    Approve,
    /// Kill it (SIGKILL) before it runs another instruction.
    Deny,
}

/// The body of a [`HOLD_VERDICT`] request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictRequest {
    /// The decision.
    pub decision: Decision,
    /// Why (kept with the verdict).
    #[serde(default)]
    pub comment: String,
}

/// A recorded verdict on one hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Verdict id: increases as verdicts are recorded (the `after` cursor of [`HOST_VERDICTS`]).
    pub id: i64,
    /// Host.
    pub host: String,
    /// The hold: the sequence number of its triggering event.
    pub hold: u64,
    /// The decision.
    pub decision: Decision,
    /// Who decided (the console user or token role, e.g. `approver`).
    pub by: String,
    /// Why.
    pub comment: String,
    /// When it was recorded (ns since the Unix epoch).
    pub time_ns: u64,
}

/// `GET` [`HOST_VERDICTS`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictsPage {
    /// Verdicts by id.
    pub verdicts: Vec<Verdict>,
}
