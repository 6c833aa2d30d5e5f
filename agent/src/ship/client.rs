//! The collector's HTTP API as the shipper sees it: POST a batch, and what each answer means.

use std::path::{Path, PathBuf};
use std::time::Duration;

use auditloop_protocol::api::{ErrorBody, batches_path};
use auditloop_protocol::batch::CONTENT_TYPE_BINARY;

use super::failover::status_fails_over;
use super::transport::{self, TransportError};

/// Why a collector client could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The collector address is not usable (not http(s), or plain HTTP off loopback).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A certificate file could not be read.
    #[error("{path}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A certificate file does not hold what it should.
    #[error("{path}: not a PEM {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// `certificate` or `certificate and private key`.
        what: &'static str,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The HTTP client could not be built.
    #[error("collector client")]
    Build(#[source] reqwest::Error),
}

/// What the collector made of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 200 with a receipt: stored (or already stored) up to `next_seq - 1`.
    Stored {
        /// The sequence number the collector expects next.
        next_seq: u64,
        /// The last sequence number the collector holds as verified (covered by a signed checkpoint);
        /// `None` from a collector that does not say.
        verified_through: Option<u64>,
    },
    /// A 2xx whose body is not a receipt: nothing is acknowledged.
    BadReceipt {
        /// HTTP status.
        status: u16,
        /// What was wrong with the body.
        why: String,
    },
    /// 409: the collector expects another sequence number next.
    Gap {
        /// Where to resume.
        expected_seq: u64,
    },
    /// 413: the batch is too large for the collector.
    TooLarge,
    /// 429, 5xx or a network error: try another collector, or again later.
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

impl Outcome {
    /// Whether another replica of the collector may answer differently: a network error, 429, 5xx
    /// ([`Outcome::Retry`]) or a 2xx that is not a receipt (something other than a working collector
    /// answered). Every other answer comes from the shared chain state, the same at every replica.
    pub fn fails_over(&self) -> bool {
        matches!(self, Outcome::Retry { .. } | Outcome::BadReceipt { .. })
    }
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
    /// Allow plain HTTP to a collector that is not on loopback.
    pub insecure_http: bool,
}

impl CollectorClient {
    /// A client posting to `<collector>/v1/hosts/<host>/batches` with `token`.
    pub fn new(
        collector: &str,
        host: &str,
        token: String,
        tls: &ClientTls<'_>,
        timeout: Duration,
    ) -> Result<CollectorClient, ClientError> {
        let http = http_client(collector, tls, timeout)?;
        Ok(CollectorClient {
            http,
            url: format!("{}{}", collector.trim_end_matches('/'), batches_path(host)),
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
                    why: super::error_chain(&e),
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

/// An HTTP client for `collector` with `tls` and `timeout`: no redirects, https only for an https URL,
/// plain HTTP only as [`transport::check`] allows.
pub fn http_client(
    collector: &str,
    tls: &ClientTls<'_>,
    timeout: Duration,
) -> Result<reqwest::Client, ClientError> {
    transport::check(collector, tls.insecure_http)?;
    // Installing twice is harmless: the second attempt reports the first provider is in place.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // No redirects: a redirect could carry the token (and the batch) to another address or from
    // https to http.
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .https_only(collector.starts_with("https://"));
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| ClientError::File {
            path: path.to_owned(),
            source,
        })
    };
    if let Some(path) = tls.ca_file {
        let cert =
            reqwest::Certificate::from_pem(&read(path)?).map_err(|source| ClientError::Pem {
                path: path.to_owned(),
                what: "certificate",
                source,
            })?;
        builder = builder.add_root_certificate(cert);
    }
    if let Some(path) = tls.client_cert {
        let identity =
            reqwest::Identity::from_pem(&read(path)?).map_err(|source| ClientError::Pem {
                path: path.to_owned(),
                what: "certificate and private key",
                source,
            })?;
        builder = builder.identity(identity);
    }
    builder.build().map_err(ClientError::Build)
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

/// The part of a `BatchReceipt` the shipper acts on.
#[derive(serde::Deserialize)]
struct Receipt {
    next_seq: u64,
    #[serde(default)]
    verified_through: Option<u64>,
}

/// What a status and body mean for the shipper.
pub fn classify(status: u16, after: Option<Duration>, body: &str) -> Outcome {
    let answer: Option<ErrorBody> = serde_json::from_str(body).ok();
    let why = answer
        .as_ref()
        .map_or_else(|| body.chars().take(300).collect(), |a| a.error.clone());
    match status {
        200..=299 => match serde_json::from_str::<Receipt>(body) {
            Ok(receipt) => Outcome::Stored {
                next_seq: receipt.next_seq,
                verified_through: receipt.verified_through,
            },
            Err(e) => Outcome::BadReceipt {
                status,
                why: format!(
                    "not a batch receipt ({e}): {}",
                    body.chars().take(200).collect::<String>()
                ),
            },
        },
        409 => match answer.and_then(|a| a.expected_seq) {
            Some(expected_seq) => Outcome::Gap { expected_seq },
            None => Outcome::Rejected {
                status,
                why: format!("409 without expected_seq: {why}"),
            },
        },
        413 => Outcome::TooLarge,
        status if status_fails_over(status) => Outcome::Retry {
            after,
            why: format!("HTTP {status}: {why}"),
        },
        _ => Outcome::Rejected { status, why },
    }
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
        assert_eq!(
            classify(200, None, r#"{"stored":2,"duplicates":0,"next_seq":9}"#),
            Outcome::Stored {
                next_seq: 9,
                verified_through: None
            }
        );
        assert_eq!(
            classify(
                200,
                None,
                r#"{"next_seq":9,"verified_through":4,"pending":4}"#
            ),
            Outcome::Stored {
                next_seq: 9,
                verified_through: Some(4)
            }
        );
        for body in ["{}", "", "ok", r#"{"next_seq":"9"}"#] {
            assert!(
                matches!(
                    classify(200, None, body),
                    Outcome::BadReceipt { status: 200, .. }
                ),
                "{body:?}"
            );
        }
        assert_eq!(
            classify(409, None, r#"{"error":"gap","expected_seq":17}"#),
            Outcome::Gap { expected_seq: 17 }
        );
        assert_eq!(classify(413, None, ""), Outcome::TooLarge);
        let five = Some(Duration::from_secs(5));
        assert!(matches!(classify(429, five, ""), Outcome::Retry { after, .. } if after == five));
        assert!(matches!(classify(503, None, ""), Outcome::Retry { .. }));
        assert!(classify(502, None, "").fails_over());
        assert!(classify(200, None, "<html>").fails_over(), "not a receipt");
        for status in [400, 401, 403, 409, 413, 422] {
            assert!(!classify(status, None, "").fails_over(), "{status}");
        }
        for status in [400, 401, 403, 422] {
            assert!(matches!(
                classify(status, None, r#"{"error":"bad token"}"#),
                Outcome::Rejected { why, .. } if why == "bad token"
            ));
        }
    }
}
