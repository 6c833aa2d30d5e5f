//! Holds as the collector keeps them: what hosts reported of their held processes (from shipped `hold`
//! events), and the verdicts people recorded for them, which agents pull.

use auditloop_protocol::api::holds::{Decision, Verdict};

/// What a `hold` event tells the collector (derived at ingest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldReport {
    /// The hold: the sequence number of its triggering event.
    pub hold: u64,
    /// Rule name.
    pub rule: String,
    /// The held process.
    pub pid: u32,
    /// Its task name.
    pub comm: String,
    /// Its executable.
    pub exe: String,
    /// The state the event reports (`requested`, `approved`, `denied`, `timed_out`, `gone`, `failed`).
    pub state: String,
    /// How the process was stopped (`kernel` or `pidfd`).
    pub stopped_by: String,
    /// How long the hold waits, in ms.
    pub timeout_ms: u64,
    /// What happens at the timeout (`approve` or `deny`).
    pub default: String,
    /// Who decided (for an outcome).
    pub decided_by: String,
    /// Request to decision applied, in µs (for an outcome).
    pub latency_us: Option<u64>,
    /// Details.
    pub detail: String,
}

/// A stored hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredHold {
    /// Host.
    pub host: String,
    /// The hold's id (its trigger's sequence number).
    pub hold: u64,
    /// Rule name.
    pub rule: String,
    /// The held process.
    pub pid: u32,
    /// Its task name.
    pub comm: String,
    /// Its executable.
    pub exe: String,
    /// Latest state reported by the host (`requested` while it waits).
    pub state: String,
    /// How it was stopped.
    pub stopped_by: String,
    /// When the request was made (event time, ns since the Unix epoch).
    pub requested_ns: u64,
    /// How long it waits, in ms.
    pub timeout_ms: u64,
    /// Default at the timeout.
    pub default: String,
    /// Who decided, once the host reported an outcome.
    pub decided_by: String,
    /// Request to decision applied, in µs.
    pub latency_us: Option<u64>,
    /// Details of the last report.
    pub detail: String,
    /// The verdict recorded at the collector, if any.
    pub verdict: Option<Verdict>,
}

/// Filters over holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HoldQuery {
    /// Only this host.
    pub host: Option<String>,
    /// Only holds still waiting (state `requested`).
    pub waiting: bool,
    /// At most this many, newest request first.
    pub limit: u32,
}

/// A verdict to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewVerdict<'a> {
    /// Host.
    pub host: &'a str,
    /// The hold.
    pub hold: u64,
    /// The decision.
    pub decision: Decision,
    /// Who.
    pub by: &'a str,
    /// Why.
    pub comment: &'a str,
    /// When (ns since the Unix epoch).
    pub now_ns: u64,
}

/// What recording a verdict did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerdictOutcome {
    /// Recorded (and logged in the audit log).
    Recorded(Verdict),
    /// The hold had a verdict already (this one).
    AlreadyDecided(Verdict),
    /// The host reported an outcome already (this state).
    Closed(String),
    /// No such hold.
    Unknown,
}
