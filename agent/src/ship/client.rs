//! The collector's HTTP API as the shipper sees it: POST a batch, and what each answer means.

use std::path::Path;
use std::time::Duration;

use auditloop_protocol::batch::CONTENT_TYPE_BINARY;

/// What the collector made of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 200: stored (or already stored); everything up to the batch's last record is acknowledged.
    Stored,
    /// 409: the collector expects another sequence number next.
    Gap {
        /// Where to resume.
        expected_seq: u64,
    },
    /// 413: the batch is too large for the collector.
    TooLarge,
    /// 429, 5xx or a network error: try again later.
    Retry {
        /// The collector's `Retry-After`, if it sent one.
        after: Option<Duration>,
        /// What happened.
        why: String,
    },
    /// 400, 401, 403, 422 or another status: the same request would fail again.
    Rejected {
        /// HTTP status.
        status: u16,
        /// The collector's reason.
        why: String,
    },
}

/// A client for one collector and host.
#[derive(Debug)]
pub struct CollectorClient {
    http: reqwest::Client,
    url: String,
    token: String,
}

/// TLS and timeout settings.
#[derive(Clone, Debug, Default)]
pub struct ClientTls<'a> {
    /// Extra CA certificate (PEM) to trust.
    pub ca_file: Option<&'a Path>,
    /// Client certificate and private key (PEM, both in one file) for mutual TLS.
    pub client_cert: Option<&'a Path>,
}

impl CollectorClient {
    /// A client posting to `<collector>/v1/hosts/<host>/batches` with `token`.
    pub fn new(
        collector: &str,
        host: &str,
        token: String,
        tls: &ClientTls<'_>,
        timeout: Duration,
    ) -> Result<CollectorClient, String> {
        if !(collector.starts_with("http://") || collector.starts_with("https://")) {
            return Err(format!("collector `{collector}` is not an http(s) URL"));
        }
        // Installing twice is harmless: the second attempt reports the first provider is in place.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder().timeout(timeout);
        if let Some(path) = tls.ca_file {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| format!("{}: not a PEM certificate: {e}", path.display()))?;
            builder = builder.add_root_certificate(cert);
        }
        if let Some(path) = tls.client_cert {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                format!(
                    "{}: not a PEM certificate and private key: {e}",
                    path.display()
                )
            })?;
            builder = builder.identity(identity);
        }
        let http = builder
            .build()
            .map_err(|e| format!("collector client: {e}"))?;
        Ok(CollectorClient {
            http,
            url: format!(
                "{}/v1/hosts/{host}/batches",
                collector.trim_end_matches('/')
            ),
            token,
        })
    }

    /// Replaces the bearer token (after the token file changed).
    pub fn set_token(&mut self, token: String) {
        self.token = token;
    }

    /// POSTs one encoded batch.
    pub async fn send(&self, body: Vec<u8>) -> Outcome {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE_BINARY)
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Retry {
                    after: None,
                    why: error_chain(&e),
                };
            }
        };
        let status = response.status().as_u16();
        let after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, std::time::SystemTime::now()));
        let text = response.text().await.unwrap_or_default();
        classify(status, after, &text)
    }
}

/// Longest `Retry-After` honoured; a longer one is shortened to this (the collector may be misconfigured,
/// and records keep spooling meanwhile).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The delay a `Retry-After` value asks for at `now`: delay-seconds or an HTTP date (RFC 9110), at most
/// [`MAX_RETRY_AFTER`]; `None` when it is neither.
pub fn retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// What a status and body mean for the shipper.
pub fn classify(status: u16, after: Option<Duration>, body: &str) -> Outcome {
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let why = json
        .get("error")
        .and_then(|e| e.as_str())
        .map_or_else(|| body.chars().take(300).collect(), str::to_owned);
    match status {
        200..=299 => Outcome::Stored,
        409 => match json.get("expected_seq").and_then(serde_json::Value::as_u64) {
            Some(expected_seq) => Outcome::Gap { expected_seq },
            None => Outcome::Rejected {
                status,
                why: format!("409 without expected_seq: {why}"),
            },
        },
        413 => Outcome::TooLarge,
        429 | 500..=599 => Outcome::Retry {
            after,
            why: format!("HTTP {status}: {why}"),
        },
        _ => Outcome::Rejected { status, why },
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:42 GMT", now),
            Some(Duration::from_secs(42))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(retry_after("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-5", now), None);
    }

    #[test]
    fn statuses_map_to_what_the_shipper_does() {
        assert_eq!(classify(200, None, "{}"), Outcome::Stored);
        assert_eq!(
            classify(409, None, r#"{"error":"gap","expected_seq":17}"#),
            Outcome::Gap { expected_seq: 17 }
        );
        assert_eq!(classify(413, None, ""), Outcome::TooLarge);
        let five = Some(Duration::from_secs(5));
        assert!(matches!(classify(429, five, ""), Outcome::Retry { after, .. } if after == five));
        assert!(matches!(classify(503, None, ""), Outcome::Retry { .. }));
        for status in [400, 401, 403, 422] {
            assert!(matches!(
                classify(status, None, r#"{"error":"bad token"}"#),
                Outcome::Rejected { why, .. } if why == "bad token"
            ));
        }
    }
}
