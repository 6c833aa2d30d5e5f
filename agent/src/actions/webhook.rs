//! Alert delivery to a webhook: each alert is POSTed as JSON (`{"alert": …, "event": …}`) in the background,
//! retried a few times with backoff; failures are logged and never block the event path. The alert itself
//! is already in the journal before delivery is attempted.

use std::time::Duration;

/// Delivery attempts per alert.
const ATTEMPTS: u32 = 3;

/// Why a webhook could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The URL is not http(s).
    #[error("webhook URL is not an http(s) URL")]
    NotHttp,
    /// The HTTP client could not be built.
    #[error("webhook client")]
    Build(#[source] reqwest::Error),
}

/// A webhook endpoint.
#[derive(Clone, Debug)]
pub struct Webhook {
    client: reqwest::Client,
    url: String,
}

impl Webhook {
    /// A client for `url` (http or https; TLS by rustls with the ring provider and the system's CA store).
    pub fn new(url: &str, timeout: Duration) -> Result<Webhook, WebhookError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(WebhookError::NotHttp);
        }
        // Installing twice is harmless: the second attempt reports the first provider is in place.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(WebhookError::Build)?;
        Ok(Webhook {
            client,
            url: url.to_owned(),
        })
    }

    /// Sends `payload` in the background (must be called inside the tokio runtime).
    pub fn send(&self, payload: serde_json::Value) {
        let (client, url) = (self.client.clone(), self.url.clone());
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(200);
            for attempt in 1..=ATTEMPTS {
                match client.post(&url).json(&payload).send().await {
                    Ok(resp) if resp.status().is_success() => return,
                    Ok(resp) => {
                        tracing::warn!(%url, status = %resp.status(), attempt, "webhook refused the alert")
                    }
                    Err(err) => tracing::warn!(%url, attempt, "webhook delivery failed: {err}"),
                }
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            tracing::error!(%url, "alert not delivered to the webhook after {ATTEMPTS} attempts (it is in the journal)");
        });
    }
}
