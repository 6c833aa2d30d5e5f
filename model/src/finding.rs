//! Findings: rule alerts, the actions carried out for them, and holds (a process stopped until a person or
//! a timeout decides).

use auditloop_model_derive::Fields;
use serde::{Deserialize, Serialize};

use crate::vocab::{ActionKind, HoldDecision, HoldState, HoldStopper, Severity};

/// A rule matched an event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "alert", kind = Alert)]
pub struct Alert {
    /// Rule name.
    pub rule: String,
    /// Severity.
    pub severity: Severity,
    /// The rule's rendered output.
    pub output: String,
    /// The rule's tags (e.g. ATT&CK ids).
    pub tags: Vec<String>,
    /// Journal sequence number of the triggering event.
    pub trigger_seq: u64,
}

/// An action carried out for a rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "action", kind = Action)]
pub struct ActionTaken {
    /// Which action.
    pub action: ActionKind,
    /// Rule name.
    pub rule: String,
    /// Journal sequence number of the triggering event.
    pub trigger_seq: u64,
    /// Target process (kill actions).
    pub target_pid: Option<u32>,
    /// Target file (rollback).
    pub path: Option<String>,
    /// SHA-256 before (rollback: the unwanted content).
    pub before_sha256: Option<String>,
    /// SHA-256 after (rollback: the restored content).
    pub after_sha256: Option<String>,
    /// Whether it succeeded.
    pub ok: bool,
    /// Details or the error.
    pub detail: String,
}

/// A hold: a process stopped for a rule until someone decides (or its timeout applies the rule's
/// default). One hold per triggering event; each hold is journaled when requested and again with its
/// outcome, both with the same `id`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "hold", kind = Hold)]
pub struct Hold {
    /// Rule name.
    pub rule: String,
    /// The hold's id: the journal sequence number of the triggering event.
    pub id: u64,
    /// The held process.
    pub target_pid: u32,
    /// `requested` (stopped, waiting), then one of `approved`, `denied`, `timed_out`, `gone`, `failed`.
    pub state: HoldState,
    /// What stopped it: `kernel` (SIGSTOP at exec, before the new program ran) or `pidfd`.
    pub stopped_by: HoldStopper,
    /// How long the hold waits for a decision, milliseconds.
    pub timeout_ms: u64,
    /// What the timeout applies: `approve` or `deny`.
    pub default: HoldDecision,
    /// What was applied (outcome events of `approved`, `denied` and `timed_out`).
    pub decision: Option<HoldDecision>,
    /// Who decided: `local:uid<N>` (`auditloop holds`), `collector:<who>`, `timeout`, or `shutdown` (the
    /// agent stopped and applied the default); empty while requested.
    #[field(absent_if_empty)]
    pub decided_by: String,
    /// The decider's comment.
    #[field(absent_if_empty)]
    pub comment: String,
    /// Microseconds from the request (the process stopped) to the decision applied; 0 while requested.
    pub latency_us: u64,
    /// Held process's task name.
    #[field(absent_if_empty)]
    pub comm: String,
    /// Held process's executable; for a hold at exec, the file as executed (a script's path, where
    /// `exec.filename` names its interpreter).
    #[field(absent_if_empty)]
    pub exe: String,
    /// Whether the step this event records succeeded (the stop, or the decision's signal).
    pub ok: bool,
    /// Details or the error.
    pub detail: String,
}
