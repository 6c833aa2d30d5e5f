//! Verdicts on holds from the collector: while holds wait, the agent long-polls
//! [`HOST_VERDICTS`](auditloop_protocol::api::holds::HOST_VERDICTS) with its host token (`after` = the
//! highest verdict id seen, `wait_ms` up to [`MAX_WAIT_MS`]) over the shipper's TLS settings, and hands a
//! verdict to the journal task only when its `hold` is one the agent still has waiting; others are ignored
//! (decided locally or timed out already, or another run's). The host never opens a port.
//!
//! With several collector URLs the pull follows them by the shipper's rule ([`super::failover`]), keeping
//! its own position: a network error, 429, 5xx or a 200 that is not a page moves it to the next URL at once,
//! and only after every URL failed in a row does it wait. Verdict ids come from the shared database, so the
//! `after` cursor holds at every replica.
//!
//! [`HoldLink`] also carries the shipper's flush request: a new hold is shipped at once rather than at the
//! end of the batch interval, so the people who decide see it promptly.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use auditloop_model::HoldDecision;
use auditloop_protocol::api::holds::{Decision, HOST_VERDICTS, MAX_WAIT_MS, Verdict, VerdictsPage};
use tokio::sync::{mpsc, watch};

use super::client::{ClientError, ClientTls, http_client};
use super::failover::{Collectors, Failover, status_fails_over};
use super::{ShipSettings, StopSignal, read_token};
use crate::holdctl::HoldCommand;

/// How long a failed pull waits before the next.
const RETRY: Duration = Duration::from_secs(2);

/// What the journal task shares with the shipper about holds.
#[derive(Clone, Debug)]
pub struct HoldLink {
    /// Until when (monotonic ms) the shipper sends whatever is durable at once; set when a hold is
    /// requested or decided.
    pub flush_until_ms: Arc<AtomicU64>,
    /// The ids of the waiting holds.
    pub waiting: watch::Receiver<Vec<u64>>,
    /// Where verdicts go (the journal task, which owns the holds).
    pub commands: mpsc::Sender<HoldCommand>,
}

impl HoldLink {
    /// Asks the shipper to send what is durable at once for the next second.
    pub fn flush_soon(&self) {
        let until = crate::clock::monotonic_ns() / 1_000_000 + 1_000;
        self.flush_until_ms.store(until, Ordering::Relaxed);
    }

    /// Whether the shipper should send now.
    pub fn flushing(&self) -> bool {
        crate::clock::monotonic_ns() / 1_000_000 <= self.flush_until_ms.load(Ordering::Relaxed)
    }
}

/// Why a page of verdicts was not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerdictsError {
    /// The request failed (network, timeout).
    #[error("pulling verdicts")]
    Http(#[source] reqwest::Error),
    /// The collector answered with an error status.
    #[error("pulling verdicts: HTTP {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The start of its body.
        body: String,
    },
    /// A 200 whose body is not a page of verdicts.
    #[error("pulling verdicts: not a verdicts page")]
    Body(#[source] serde_json::Error),
    /// The client could not be set up.
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl VerdictsError {
    /// Whether another replica of the collector may answer differently (see [`super::failover`]).
    pub fn fails_over(&self) -> bool {
        match self {
            VerdictsError::Http(_) | VerdictsError::Body(_) => true,
            VerdictsError::Status { status, .. } => status_fails_over(*status),
            VerdictsError::Client(_) => false,
        }
    }
}

/// Reads a [`HOST_VERDICTS`] answer.
pub fn parse_page(status: u16, body: &str) -> Result<VerdictsPage, VerdictsError> {
    if status != 200 {
        return Err(VerdictsError::Status {
            status,
            body: body.chars().take(300).collect(),
        });
    }
    serde_json::from_str(body).map_err(VerdictsError::Body)
}

/// The verdicts of `page` to apply: those above `after` whose hold waits, in id order. Returns them and
/// the new cursor (the highest id seen, applied or not).
pub fn to_apply(page: &VerdictsPage, after: i64, waiting: &[u64]) -> (Vec<Verdict>, i64) {
    let mut cursor = after;
    let mut apply: Vec<Verdict> = Vec::new();
    let mut sorted: Vec<&Verdict> = page.verdicts.iter().filter(|v| v.id > after).collect();
    sorted.sort_by_key(|v| v.id);
    for v in sorted {
        cursor = cursor.max(v.id);
        // One decision per hold: the first verdict recorded wins.
        if waiting.contains(&v.hold) && !apply.iter().any(|a| a.hold == v.hold) {
            apply.push(v.clone());
        }
    }
    (apply, cursor)
}

/// The model's decision for a wire decision.
pub fn decision(d: Decision) -> HoldDecision {
    match d {
        Decision::Approve => HoldDecision::Approve,
        Decision::Deny => HoldDecision::Deny,
    }
}

/// Pulls verdicts while holds wait, until `stop` says stop. Runs on the shipper's runtime.
pub async fn pull(settings: ShipSettings, mut link: HoldLink, mut stop: StopSignal) {
    let tls = ClientTls {
        ca_file: settings.ca_file.as_deref(),
        client_cert: settings.client_cert.as_deref(),
        insecure_http: settings.insecure_http,
    };
    // The long poll may take MAX_WAIT_MS on top of the usual answer time.
    let timeout = settings.timeout + Duration::from_millis(MAX_WAIT_MS);
    let path = HOST_VERDICTS.replace("{host}", &settings.host_id);
    let mut endpoints = Vec::with_capacity(settings.collectors.len());
    for collector in &settings.collectors {
        match http_client(collector, &tls, timeout) {
            Ok(http) => {
                endpoints.push((http, format!("{}{path}", collector.trim_end_matches('/'))))
            }
            Err(err) => {
                tracing::error!("verdicts from the collector disabled: {err}");
                return;
            }
        }
    }
    let mut collectors = Collectors::new("verdicts", &settings.collectors);
    let mut after: i64 = 0;
    loop {
        if stop.borrow().is_some() {
            return;
        }
        let waiting = link.waiting.borrow_and_update().clone();
        if waiting.is_empty() {
            tokio::select! {
                _ = link.waiting.changed() => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let token = match read_token(&settings.token_file) {
            Ok(token) => token,
            Err(err) => {
                tracing::warn!("verdicts: {err}");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let Some((http, url)) = endpoints.get(collectors.index()) else {
            return;
        };
        let request = http
            .get(format!("{url}?after={after}&wait_ms={MAX_WAIT_MS}"))
            .bearer_auth(token)
            .send();
        let answer = tokio::select! {
            answer = request => answer,
            _ = stop.changed() => return,
        };
        let page = match answer {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                parse_page(status, &body)
            }
            Err(err) => Err(VerdictsError::Http(err)),
        };
        let page = match page {
            Ok(page) => {
                collectors.answered();
                page
            }
            Err(err) => {
                let why = super::error_chain(&err);
                if err.fails_over() {
                    if collectors.failed(&why) == Failover::TryNext {
                        continue;
                    }
                } else {
                    collectors.answered();
                }
                tracing::warn!(error = %why, "verdicts: retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let waiting = link.waiting.borrow().clone();
        let (apply, cursor) = to_apply(&page, after, &waiting);
        after = cursor;
        for v in apply {
            let command = HoldCommand::Decide {
                id: v.hold,
                decision: decision(v.decision),
                by: format!("collector:{}", v.by),
                comment: v.comment,
                reply: None,
            };
            if link.commands.send(command).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(id: i64, hold: u64, decision: Decision, by: &str) -> Verdict {
        Verdict {
            id,
            host: "h1".into(),
            hold,
            decision,
            by: by.into(),
            comment: String::new(),
            time_ns: 1,
        }
    }

    #[test]
    fn pages_parse_and_errors_are_typed() {
        let body = r#"{"verdicts":[{"id":3,"host":"h1","hold":41,"decision":"deny","by":"alice","comment":"no","time_ns":5}]}"#;
        let page = parse_page(200, body).unwrap();
        assert_eq!(page.verdicts.len(), 1);
        assert_eq!(
            (
                page.verdicts[0].hold,
                page.verdicts[0].decision,
                page.verdicts[0].by.as_str()
            ),
            (41, Decision::Deny, "alice")
        );
        assert_eq!(
            parse_page(200, r#"{"verdicts":[]}"#).unwrap(),
            VerdictsPage::default()
        );
        assert!(matches!(parse_page(200, "{}"), Err(VerdictsError::Body(_))));
        assert!(matches!(
            parse_page(
                200,
                r#"{"verdicts":[{"id":1,"hold":2,"decision":"maybe"}]}"#
            ),
            Err(VerdictsError::Body(_))
        ));
        let refused = parse_page(401, r#"{"error":"bad token"}"#);
        assert!(matches!(
            refused,
            Err(VerdictsError::Status { status: 401, .. })
        ));
        assert!(
            !refused.is_err_and(|e| e.fails_over()),
            "every replica says 401"
        );
        assert!(parse_page(503, "").is_err_and(|e| e.fails_over()));
        assert!(parse_page(429, "").is_err_and(|e| e.fails_over()));
        assert!(parse_page(200, "<html>").is_err_and(|e| e.fails_over()));
    }

    #[test]
    fn only_verdicts_for_waiting_holds_apply_and_the_cursor_moves_past_all() {
        let page = VerdictsPage {
            verdicts: vec![
                verdict(7, 100, Decision::Approve, "bob"),
                verdict(5, 99, Decision::Deny, "alice"),
                verdict(6, 12, Decision::Deny, "alice"),
                verdict(8, 100, Decision::Deny, "carol"),
                verdict(2, 99, Decision::Approve, "old"),
            ],
        };
        let (apply, cursor) = to_apply(&page, 4, &[99, 100]);
        assert_eq!(cursor, 8);
        let got: Vec<(u64, Decision, &str)> = apply
            .iter()
            .map(|v| (v.hold, v.decision, v.by.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (99, Decision::Deny, "alice"),
                (100, Decision::Approve, "bob")
            ],
            "the first verdict per hold, none at or below the cursor, none for other holds"
        );
        assert_eq!(
            to_apply(&VerdictsPage::default(), 4, &[99]),
            (Vec::new(), 4)
        );
        assert_eq!(decision(Decision::Approve), HoldDecision::Approve);
    }
}
