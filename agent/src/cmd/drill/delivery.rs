//! Checking that a drilled alert reached `alerts.webhook`. The agent records what became of every alert
//! it sent, by the triggering event's seq ([`crate::actions::deliveries`]), in its status file, which it
//! rewrites once a second; the drill reads that file until the alert's seq shows up as delivered or as
//! failed (after the agent's retries), or the rule's time is up. The drill never talks to the receiver.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::actions::deliveries::{Delivery, WebhookStatus};
use crate::status::Report;

/// The status file is read at most this often.
const READ_EVERY: Duration = Duration::from_millis(100);

/// What the drill found about the delivery of one rule's alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookCheck {
    /// The agent recorded it as delivered.
    Delivered,
    /// The agent recorded it as not delivered after every attempt, with its last error.
    Failed(String),
    /// Neither within the rule's time, and why the drill could not tell.
    Unconfirmed(String),
}

impl WebhookCheck {
    /// The report's word for it: `delivered`, `failed` or `unconfirmed`.
    pub fn word(&self) -> &'static str {
        match self {
            WebhookCheck::Delivered => "delivered",
            WebhookCheck::Failed(_) => "failed",
            WebhookCheck::Unconfirmed(_) => "unconfirmed",
        }
    }

    /// What makes the rule `incomplete`, if anything.
    pub fn problem(&self) -> Option<String> {
        match self {
            WebhookCheck::Delivered => None,
            WebhookCheck::Failed(why) => Some(format!("webhook delivery failed ({why})")),
            WebhookCheck::Unconfirmed(why) => {
                Some(format!("webhook delivery not confirmed: {why}"))
            }
        }
    }
}

/// The agent's status file, read for webhook outcomes.
#[derive(Debug)]
pub struct StatusFile {
    path: PathBuf,
    read_at: Option<Instant>,
    last: Result<Option<WebhookStatus>, String>,
}

impl StatusFile {
    /// Reads the status file at `path` when asked.
    pub fn new(path: PathBuf) -> StatusFile {
        StatusFile {
            path,
            read_at: None,
            last: Ok(None),
        }
    }

    fn refresh(&mut self, force: bool) {
        if !force && self.read_at.is_some_and(|at| at.elapsed() < READ_EVERY) {
            return;
        }
        self.read_at = Some(Instant::now());
        self.last = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("reading {}: {e}", self.path.display()))
            .and_then(|text| {
                serde_json::from_str::<Report>(&text)
                    .map_err(|e| format!("{}: not a status file: {e}", self.path.display()))
            })
            .map(|report| report.webhook);
    }

    /// What became of the alert triggered by event `seq`, once the agent recorded it.
    pub fn outcome(&mut self, seq: u64) -> Option<Delivery> {
        self.refresh(false);
        self.last.as_ref().ok()?.as_ref()?.outcome(seq)
    }

    /// The final word on the alert triggered by event `seq`, after waiting `waited`.
    pub fn verdict(&mut self, seq: u64, waited: Duration) -> WebhookCheck {
        self.refresh(true);
        match &self.last {
            Err(why) => WebhookCheck::Unconfirmed(why.clone()),
            Ok(None) => WebhookCheck::Unconfirmed(format!(
                "the agent's status file {} shows no webhook (is the agent running with this config, \
                 and a version that records deliveries?)",
                self.path.display()
            )),
            Ok(Some(hook)) => judge(hook, seq, waited),
        }
    }
}

/// The verdict on the alert triggered by event `seq` from the agent's record `hook`.
fn judge(hook: &WebhookStatus, seq: u64, waited: Duration) -> WebhookCheck {
    match hook.outcome(seq) {
        Some(Delivery::Delivered) => WebhookCheck::Delivered,
        Some(Delivery::Failed) => WebhookCheck::Failed(format!(
            "{}: {}",
            hook.url,
            hook.last_error.as_deref().unwrap_or("no reason recorded")
        )),
        None => WebhookCheck::Unconfirmed(format!(
            "the agent recorded no outcome for event seq {seq} within {} s ({} delivered, {} failed \
             this run; a slow endpoint takes up to 3 attempts of 5 s each)",
            waited.as_secs(),
            hook.delivered,
            hook.failed
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::deliveries::Deliveries;

    #[test]
    fn the_agents_record_decides() {
        let d = Deliveries::new("http://127.0.0.1:9".into());
        d.delivered(Some(4));
        d.failed(Some(5), "after 3 attempts: connection refused".into());
        let s = d.snapshot();
        let wait = Duration::from_secs(5);
        assert_eq!(judge(&s, 4, wait), WebhookCheck::Delivered);
        let failed = judge(&s, 5, wait);
        assert_eq!(failed.word(), "failed");
        assert_eq!(
            failed.problem().as_deref(),
            Some(
                "webhook delivery failed (http://127.0.0.1:9: after 3 attempts: connection refused)"
            )
        );
        let unknown = judge(&s, 6, wait);
        assert_eq!(unknown.word(), "unconfirmed");
        assert!(
            unknown
                .problem()
                .is_some_and(|p| p.contains("seq 6 within 5 s")),
            "{unknown:?}"
        );
    }

    #[test]
    fn a_missing_or_webhookless_status_file_confirms_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let mut file = StatusFile::new(path.clone());
        assert_eq!(file.outcome(1), None);
        assert!(matches!(
            file.verdict(1, Duration::from_secs(1)),
            WebhookCheck::Unconfirmed(why) if why.starts_with("reading")
        ));
        std::fs::write(&path, serde_json::to_string(&Report::default()).unwrap()).unwrap();
        assert!(matches!(
            file.verdict(1, Duration::from_secs(1)),
            WebhookCheck::Unconfirmed(why) if why.contains("shows no webhook")
        ));
        let d = Deliveries::new("http://h".into());
        d.delivered(Some(1));
        let report = Report {
            webhook: Some(d.snapshot()),
            ..Report::default()
        };
        std::fs::write(&path, serde_json::to_string(&report).unwrap()).unwrap();
        assert_eq!(
            file.verdict(1, Duration::from_secs(1)),
            WebhookCheck::Delivered
        );
    }
}
