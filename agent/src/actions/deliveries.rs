//! What became of the alerts sent to `alerts.webhook`: how many were delivered (a 2xx answer) and how many
//! failed after every attempt, and the triggering event's sequence number of the most recent ones of each
//! (a bounded ring, [`RECENT`] each). The delivery task records here; the status file shows it, so
//! `auditloop status` can tell a failing webhook and `auditloop drill` can check that a drilled alert was
//! delivered. It never holds the URL, only its redacted form, nor any part of a payload but its seq.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::telemetry::now_ms;

/// Sequence numbers kept per outcome: the newest this many deliveries, and failures.
pub const RECENT: usize = 256;

/// The webhook's deliveries at one moment, as the status file holds them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookStatus {
    /// The endpoint: scheme, host and port only (no path, query or user info, which may hold a secret).
    pub url: String,
    /// Alerts delivered this run.
    pub delivered: u64,
    /// Alerts not delivered after every attempt this run (each is still in the journal).
    pub failed: u64,
    /// When the last alert was delivered (Unix ms; 0: none this run).
    pub last_delivered_ms: u64,
    /// When the last alert failed (Unix ms; 0: none this run).
    pub last_failed_ms: u64,
    /// Why the last failure failed: the HTTP status or the connection error, never the URL.
    pub last_error: Option<String>,
    /// The triggering event's seq (`event.seq` of the payload) of the newest delivered alerts, oldest first.
    pub delivered_seqs: VecDeque<u64>,
    /// The same for the newest failed alerts.
    pub failed_seqs: VecDeque<u64>,
}

/// What became of the alerts of one triggering event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Delivered.
    Delivered,
    /// Not delivered after every attempt (this wins when alerts of the same event fared differently).
    Failed,
}

impl WebhookStatus {
    /// What became of the alert(s) triggered by event `seq`, if it is still among the recent ones.
    pub fn outcome(&self, seq: u64) -> Option<Delivery> {
        if self.failed_seqs.contains(&seq) {
            Some(Delivery::Failed)
        } else if self.delivered_seqs.contains(&seq) {
            Some(Delivery::Delivered)
        } else {
            None
        }
    }
}

/// The shared record of deliveries; cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct Deliveries {
    inner: Arc<Mutex<WebhookStatus>>,
}

/// Adds `seq` to `ring`, dropping the oldest beyond [`RECENT`].
fn remember(ring: &mut VecDeque<u64>, seq: Option<u64>) {
    let Some(seq) = seq else { return };
    if ring.len() >= RECENT {
        ring.pop_front();
    }
    ring.push_back(seq);
}

impl Deliveries {
    /// An empty record for the endpoint shown as `redacted_url`.
    pub fn new(redacted_url: String) -> Deliveries {
        Deliveries {
            inner: Arc::new(Mutex::new(WebhookStatus {
                url: redacted_url,
                ..WebhookStatus::default()
            })),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut WebhookStatus) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The alert triggered by event `seq` (when the payload names it) was delivered.
    pub fn delivered(&self, seq: Option<u64>) {
        self.with(|s| {
            s.delivered += 1;
            s.last_delivered_ms = now_ms();
            remember(&mut s.delivered_seqs, seq);
        });
    }

    /// The alert triggered by event `seq` was not delivered after every attempt, the last for `why`.
    pub fn failed(&self, seq: Option<u64>, why: String) {
        self.with(|s| {
            s.failed += 1;
            s.last_failed_ms = now_ms();
            s.last_error = Some(why);
            remember(&mut s.failed_seqs, seq);
        });
    }

    /// A copy of the record.
    pub fn snapshot(&self) -> WebhookStatus {
        self.with(|s| s.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_outcome_and_keeps_only_the_newest_seqs() {
        let d = Deliveries::new("http://127.0.0.1:1".into());
        for seq in 0..(RECENT as u64 + 10) {
            d.delivered(Some(seq));
        }
        d.delivered(None);
        d.failed(Some(7), "connection refused".into());
        let s = d.snapshot();
        assert_eq!((s.delivered, s.failed), (RECENT as u64 + 11, 1));
        assert_eq!(s.delivered_seqs.len(), RECENT);
        assert_eq!(s.delivered_seqs.front(), Some(&10));
        assert_eq!(s.delivered_seqs.back(), Some(&(RECENT as u64 + 9)));
        assert_eq!(s.failed_seqs, [7]);
        assert_eq!(s.last_error.as_deref(), Some("connection refused"));
        assert!(s.last_delivered_ms > 0 && s.last_failed_ms > 0);
        assert_eq!(s.outcome(9), None, "fell out of the ring");
        assert_eq!(s.outcome(10), Some(Delivery::Delivered));
        assert_eq!(s.outcome(7), Some(Delivery::Failed));
        assert_eq!(s.outcome(RECENT as u64 + 10), None, "never sent");
    }

    #[test]
    fn a_failure_wins_over_a_delivery_of_the_same_event() {
        let d = Deliveries::new("http://h".into());
        d.delivered(Some(5));
        d.failed(Some(5), "HTTP 500".into());
        assert_eq!(d.snapshot().outcome(5), Some(Delivery::Failed));
    }

    #[test]
    fn the_status_form_round_trips() {
        let d = Deliveries::new("https://hooks.example:8443".into());
        d.delivered(Some(3));
        let s = d.snapshot();
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains(r#""delivered_seqs":[3]"#), "{text}");
        assert_eq!(serde_json::from_str::<WebhookStatus>(&text).unwrap(), s);
    }
}
