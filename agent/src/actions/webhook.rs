//! Alert delivery to a webhook: each alert is POSTed as JSON (`{"alert": …, "event": …}`) by one delivery
//! task, retried a few times with backoff. Alerts reach it through a bounded queue: when the queue is full
//! the delivery is dropped and counted (the consumer journals the count as a `loss` with stage `webhook`),
//! so a slow or dead endpoint never blocks the event path nor grows memory. The alert itself is already in
//! the journal before delivery is attempted. Each alert's outcome (delivered, or failed after every attempt)
//! is recorded in [`Deliveries`] under its triggering event's seq, for the status file.
//!
//! The URL may carry a secret (a token in its path or query, user info): logs name only its scheme, host
//! and port, and errors are logged without the URL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::actions::deliveries::Deliveries;

/// Delivery attempts per alert.
const ATTEMPTS: u32 = 3;

/// Alerts waiting for delivery; more are dropped and counted.
pub const QUEUE: usize = 1024;

/// Why a webhook could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The URL is not an http(s) URL.
    #[error("webhook URL is not an http(s) URL")]
    NotHttp,
    /// The HTTP client could not be built.
    #[error("webhook client")]
    Build(#[source] reqwest::Error),
}

/// A webhook endpoint: the sending side of its delivery queue.
#[derive(Clone, Debug)]
pub struct Webhook {
    queue: mpsc::Sender<serde_json::Value>,
    dropped: Arc<AtomicU64>,
    deliveries: Deliveries,
}

/// What logs may say about a URL: scheme, host and port, nothing that could be a secret.
pub fn redacted_url(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

impl Webhook {
    /// Starts delivery to `url` (http or https; TLS by rustls with the ring provider and the system's CA
    /// store). Must be called inside the tokio runtime.
    pub fn new(url: &str, timeout: Duration) -> Result<Webhook, WebhookError> {
        let url = reqwest::Url::parse(url).map_err(|_| WebhookError::NotHttp)?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(WebhookError::NotHttp);
        }
        // Installing twice is harmless: the second attempt reports the first provider is in place.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(WebhookError::Build)?;
        let (queue, rx) = mpsc::channel(QUEUE);
        let deliveries = Deliveries::new(redacted_url(&url));
        tokio::spawn(deliver(client, url, rx, deliveries.clone()));
        Ok(Webhook {
            queue,
            dropped: Arc::new(AtomicU64::new(0)),
            deliveries,
        })
    }

    /// The record of what became of the alerts sent (it does not keep the delivery task running).
    pub fn deliveries(&self) -> Deliveries {
        self.deliveries.clone()
    }

    /// Queues `payload` for delivery; when the queue is full it is dropped and counted.
    pub fn send(&self, payload: serde_json::Value) {
        if self.queue.try_send(payload).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Deliveries dropped since the last call.
    pub fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }
}

/// Delivers queued alerts one after another until every sender is gone, recording each outcome in
/// `deliveries` under the payload's `event.seq`.
async fn deliver(
    client: reqwest::Client,
    url: reqwest::Url,
    mut queue: mpsc::Receiver<serde_json::Value>,
    deliveries: Deliveries,
) {
    let shown = redacted_url(&url);
    while let Some(payload) = queue.recv().await {
        let seq = payload
            .pointer("/event/seq")
            .and_then(serde_json::Value::as_u64);
        let mut delay = Duration::from_millis(200);
        let mut failure = String::new();
        for attempt in 1..=ATTEMPTS {
            match client.post(url.clone()).json(&payload).send().await {
                Ok(resp) if resp.status().is_success() => {
                    failure.clear();
                    break;
                }
                Ok(resp) => {
                    tracing::warn!(webhook = %shown, status = %resp.status(), attempt, "webhook refused the alert");
                    failure = format!("the webhook answered {}", resp.status());
                }
                Err(err) => {
                    let err = err.without_url();
                    tracing::warn!(webhook = %shown, attempt, "webhook delivery failed: {err}");
                    failure = crate::errtext::error_chain(&err);
                }
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        if failure.is_empty() {
            deliveries.delivered(seq);
        } else {
            tracing::error!(webhook = %shown, "alert not delivered to the webhook after {ATTEMPTS} attempts (it is in the journal)");
            deliveries.failed(seq, format!("after {ATTEMPTS} attempts: {failure}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_never_show_a_urls_secret_parts() {
        let url =
            reqwest::Url::parse("https://user:pw@hooks.example:8443/T0K3N/x?key=S3CR3T").unwrap();
        let shown = redacted_url(&url);
        assert_eq!(shown, "https://hooks.example:8443");
        let url = reqwest::Url::parse("http://hooks.example/abc").unwrap();
        assert_eq!(redacted_url(&url), "http://hooks.example");
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        // Nothing listens on port 9 of localhost: every delivery fails slowly enough to fill the queue.
        let hook = Webhook::new("http://127.0.0.1:9/secret", Duration::from_secs(5)).unwrap();
        for i in 0..QUEUE + 50 {
            hook.send(serde_json::json!({ "i": i }));
        }
        let dropped = hook.take_dropped();
        // The delivery task has not run yet (nothing awaited): exactly the overflow is dropped.
        assert_eq!(dropped, 50);
        assert_eq!(hook.take_dropped(), 0);
    }

    #[tokio::test]
    async fn an_undeliverable_alert_is_recorded_as_failed_without_the_secret() {
        let hook = Webhook::new(
            "http://127.0.0.1:9/T0K3N?key=S3CR3T",
            Duration::from_secs(2),
        )
        .unwrap();
        let deliveries = hook.deliveries();
        hook.send(serde_json::json!({ "alert": {}, "event": { "seq": 42 } }));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while deliveries.snapshot().failed == 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let s = deliveries.snapshot();
        assert_eq!((s.delivered, s.failed), (0, 1));
        assert_eq!(s.failed_seqs, [42]);
        assert_eq!(s.url, "http://127.0.0.1:9");
        let text = serde_json::to_string(&s).unwrap();
        assert!(
            !text.contains("T0K3N") && !text.contains("S3CR3T"),
            "{text}"
        );
        assert!(
            s.last_error
                .is_some_and(|e| e.starts_with("after 3 attempts"))
        );
    }

    #[test]
    fn refuses_what_is_not_http() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for bad in ["ftp://x/", "not a url", "file:///etc/passwd", "http://"] {
                assert!(
                    matches!(
                        Webhook::new(bad, Duration::from_secs(1)),
                        Err(WebhookError::NotHttp)
                    ),
                    "{bad}"
                );
            }
        });
    }
}
