//! Findings: rule alerts and the actions carried out for them.

use auditloop_model_derive::Fields;
use serde::{Deserialize, Serialize};

use crate::vocab::{ActionKind, Severity};

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
