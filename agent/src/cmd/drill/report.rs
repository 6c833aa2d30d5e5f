//! The drill's report: one row per rule, as a table or as JSON.

use serde::Serialize;

/// What happened to one rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The rule's alert was journaled for the drill's stimulus.
    Fired {
        /// From the start of the stimulus to the alert's timestamp.
        latency_ms: u64,
        /// The actions journaled for it (`killed`, `killed in kernel`, `rolled back`).
        actions: Vec<String>,
        /// Effects of the actions the drill checked on the host (restored bytes, a marker never written).
        verified: Vec<String>,
        /// With `alerts.webhook`: `delivered`, `failed` or `unconfirmed`.
        webhook: Option<&'static str>,
        /// Expected actions that were not journaled in time, or failed; a webhook delivery that failed or
        /// was not confirmed.
        problems: Vec<String>,
    },
    /// No alert within the timeout.
    NoAlert {
        /// What may explain it.
        hint: Option<String>,
    },
    /// The drill has no safe stimulus for this rule.
    NotDrillable(String),
    /// The stimulus could not be performed.
    Error(String),
}

/// One line of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Rule name.
    pub rule: String,
    /// The stimulus performed (absent when not drillable).
    pub stimulus: Option<String>,
    /// `fired`, `incomplete` (fired, but an expected action is missing or failed), `no_alert`,
    /// `not_drillable` or `error`.
    pub result: &'static str,
    /// From the start of the stimulus to the alert (fired and incomplete).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Actions journaled for the alert.
    pub actions: Vec<String>,
    /// Effects of the actions the drill checked on the host.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verified: Vec<String>,
    /// With `alerts.webhook`, what became of the alert's delivery: `delivered`, `failed` or
    /// `unconfirmed` (fired and incomplete rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<&'static str>,
    /// Why not drillable, what failed, or a hint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Files the cleanup could not remove.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_behind: Vec<String>,
}

impl Row {
    /// The row for `outcome`.
    pub fn new(rule: &str, stimulus: Option<String>, outcome: Outcome) -> Row {
        let mut checked = Vec::new();
        let mut delivery = None;
        let (result, latency_ms, actions, reason) = match outcome {
            Outcome::Fired {
                latency_ms,
                actions,
                verified,
                webhook,
                problems,
            } => {
                checked = verified;
                delivery = webhook;
                let result = if problems.is_empty() {
                    "fired"
                } else {
                    "incomplete"
                };
                let reason = (!problems.is_empty()).then(|| problems.join("; "));
                (result, Some(latency_ms), actions, reason)
            }
            Outcome::NoAlert { hint } => ("no_alert", None, Vec::new(), hint),
            Outcome::NotDrillable(why) => ("not_drillable", None, Vec::new(), Some(why)),
            Outcome::Error(why) => ("error", None, Vec::new(), Some(why)),
        };
        Row {
            rule: rule.to_owned(),
            stimulus,
            result,
            latency_ms,
            actions,
            verified: checked,
            webhook: delivery,
            reason,
            left_behind: Vec::new(),
        }
    }

    /// Whether this rule was drilled (every result but `not_drillable`).
    pub fn drillable(&self) -> bool {
        self.result != "not_drillable"
    }

    /// The RESULT column.
    pub fn result_text(&self, timeout_secs: u64) -> String {
        let mut text = match self.result {
            "fired" | "incomplete" => {
                let mut t = format!("fired in {} ms", self.latency_ms.unwrap_or(0));
                for action in &self.actions {
                    t.push_str(", ");
                    t.push_str(action);
                }
                if self.webhook == Some("delivered") {
                    t.push_str(", webhook delivered");
                }
                for check in &self.verified {
                    t.push_str("; ");
                    t.push_str(check);
                }
                t
            }
            "no_alert" => format!("no alert within {timeout_secs} s"),
            "not_drillable" => "not drillable".to_owned(),
            other => other.to_owned(),
        };
        if let Some(reason) = &self.reason {
            text.push_str(if self.result == "incomplete" {
                ", but "
            } else {
                ": "
            });
            text.push_str(reason);
        }
        if !self.left_behind.is_empty() {
            text.push_str(&format!(" [left behind: {}]", self.left_behind.join(", ")));
        }
        text
    }
}

/// The whole report, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// The rules drilled.
    pub rules: String,
    /// The journal watched.
    pub journal: String,
    /// The agent process writing it.
    pub agent_pid: u32,
    /// The drill's files and directories are named `auditloop-drill-<nonce>-<rule index>`.
    pub nonce: &'a str,
    /// Seconds waited per rule.
    pub timeout_secs: u64,
    /// Rules drilled (every result but `not_drillable`).
    pub drillable: usize,
    /// Rules whose result is `fired`.
    pub fired: usize,
    /// With `alerts.webhook`: how the drilled alerts' deliveries fared, in sum (each row has its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// One row per rule, in file order.
    pub results: &'a [Row],
}

/// The table's column widths (rule, stimulus).
pub fn widths<'a>(rows: impl Iterator<Item = (&'a str, &'a str)>) -> (usize, usize) {
    rows.fold((4, 8), |(r, s), (rule, stim)| {
        (r.max(rule.chars().count()), s.max(stim.chars().count()))
    })
}

/// One table line.
pub fn line(widths: (usize, usize), rule: &str, stimulus: &str, result: &str) -> String {
    let (r, s) = widths;
    format!("{rule:<r$}  {stimulus:<s$}  {result}")
}
