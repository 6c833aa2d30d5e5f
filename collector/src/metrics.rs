//! Prometheus metrics of ingest and alerts: what the collector counts, under which names and labels.
//!
//! Ingest, the HTTP layer and the alert log call the recording functions here ([`stored`], [`refused`],
//! [`host_refused`], [`failed`], [`bytes_received`], [`ingest_time`], [`alert_raised`]); they go to the
//! `metrics` crate's global recorder, so they cost next to nothing and record nothing until an
//! [`Exporter`] is installed (`--metrics-listen`). Per-host gauges are set when the endpoint is scraped,
//! from the enrolled hosts the caller lists ([`Exporter::render`]): the label set is bounded by
//! enrollment, and a host id that nobody enrolled never becomes a label. Every other label takes its value
//! from a closed set ([`Refusal`], [`BatchResult`], the alert kinds), never from request data.
//!
//! This module only counts: it never serves, stores or decides anything, and imports nothing else of the
//! collector (the metrics endpoint is [`crate::scrape`]'s).

mod exporter;
mod hosts;
#[cfg(test)]
mod tests;

use std::time::Duration;

use auditloop_protocol::api::AlertKind;

pub use exporter::{EnrolledHost, Exporter, INGEST_BUCKETS, MetricsError};

/// Batches received, by result (`result`: [`BatchResult`]).
pub const BATCHES: &str = "auditloop_collector_batches_total";
/// Records stored (new records of stored batches: events, segment starts, checkpoints).
pub const RECORDS_STORED: &str = "auditloop_collector_records_stored_total";
/// Bytes of batch bodies read (as sent, compressed).
pub const BYTES_RECEIVED: &str = "auditloop_collector_bytes_received_total";
/// Refused batches, by reason (`reason`: [`Refusal`]).
pub const REFUSALS: &str = "auditloop_collector_refusals_total";
/// The last sequence number stored of each enrolled host (`host`).
pub const HOST_LAST_SEQ: &str = "auditloop_collector_host_last_seq";
/// Seconds since the newest event time among the records stored for the host (`host`).
pub const HOST_LAG: &str = "auditloop_collector_host_lag_seconds";
/// 1 while the host's chain verifies, 0 after a refusal for a broken or forged chain (`host`).
pub const HOST_CHAIN_OK: &str = "auditloop_collector_host_chain_ok";
/// Seconds from a batch request's arrival to its commit (stored batches).
pub const INGEST_SECONDS: &str = "auditloop_collector_ingest_seconds";
/// Alerts raised, by kind (`kind`).
pub const ALERTS: &str = "auditloop_collector_alerts_total";
/// Enrolled hosts (replaced enrollments not counted).
pub const HOSTS: &str = "auditloop_collector_hosts";

/// What became of a batch request (the `result` label of [`BATCHES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchResult {
    /// Verified and stored.
    Stored,
    /// Refused (any 4xx answer).
    Refused,
    /// The collector failed (500).
    Failed,
}

impl BatchResult {
    /// Every value.
    pub const ALL: [BatchResult; 3] = [
        BatchResult::Stored,
        BatchResult::Refused,
        BatchResult::Failed,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchResult::Stored => "stored",
            BatchResult::Refused => "refused",
            BatchResult::Failed => "failed",
        }
    }
}

/// Why a batch request was refused (the `reason` label of [`REFUSALS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no token, or one the collector does not know.
    Unauthorized,
    /// 403: another identity's token (the admin's, the enrollment token, another host's).
    ForeignToken,
    /// 403: the host is not enrolled (any more).
    NotEnrolled,
    /// 400: the request (host name, body stream) is not usable.
    BadRequest,
    /// 413: the body exceeds `--max-body-bytes`.
    TooLarge,
    /// 429: `--max-concurrent-batches` batches were in progress.
    RateLimited,
    /// 400: the body is not a batch, or its header does not describe its frames.
    Malformed,
    /// 409: the batch starts after the next expected sequence number.
    Gap,
    /// 422: a replayed record differs from the stored one.
    ChainFork,
    /// 422: a record breaks the chain rules (hash, link, signature, segment or key ladder).
    BadChain,
    /// 422: the host's first batch does not start from its enrolled key.
    WrongKey,
    /// 409: replayed records differ from the host's pending (unsigned) records.
    PendingFork,
}

impl Refusal {
    /// Every value.
    pub const ALL: [Refusal; 12] = [
        Refusal::Unauthorized,
        Refusal::ForeignToken,
        Refusal::NotEnrolled,
        Refusal::BadRequest,
        Refusal::TooLarge,
        Refusal::RateLimited,
        Refusal::Malformed,
        Refusal::Gap,
        Refusal::ChainFork,
        Refusal::BadChain,
        Refusal::WrongKey,
        Refusal::PendingFork,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unauthorized => "unauthorized",
            Refusal::ForeignToken => "foreign_token",
            Refusal::NotEnrolled => "not_enrolled",
            Refusal::BadRequest => "bad_request",
            Refusal::TooLarge => "too_large",
            Refusal::RateLimited => "rate_limited",
            Refusal::Malformed => "malformed",
            Refusal::Gap => "gap",
            Refusal::ChainFork => "chain_fork",
            Refusal::BadChain => "bad_chain",
            Refusal::WrongKey => "wrong_key",
            Refusal::PendingFork => "pending_fork",
        }
    }

    /// Whether the refusal means the host's own token shipped a chain that does not verify: it sets the
    /// host's [`HOST_CHAIN_OK`] to 0 until a batch of the host is stored.
    pub fn breaks_chain(self) -> bool {
        match self {
            Refusal::ChainFork | Refusal::BadChain | Refusal::WrongKey | Refusal::PendingFork => {
                true
            }
            Refusal::Unauthorized
            | Refusal::ForeignToken
            | Refusal::NotEnrolled
            | Refusal::BadRequest
            | Refusal::TooLarge
            | Refusal::RateLimited
            | Refusal::Malformed
            | Refusal::Gap => false,
        }
    }
}

/// A batch of a host that was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredBatch {
    /// New records stored (replayed duplicates not counted).
    pub records: u64,
    /// The newest event time among them (ns since the Unix epoch), if any has one.
    pub newest_event_ns: Option<u64>,
}

/// Counts a stored batch of `host` (enrolled: its own token passed) and marks its chain as verifying.
pub fn stored(host: &str, batch: StoredBatch) {
    ::metrics::counter!(BATCHES, "result" => BatchResult::Stored.as_str()).increment(1);
    ::metrics::counter!(RECORDS_STORED).increment(batch.records);
    hosts::TABLE.stored(host, batch.newest_event_ns);
}

/// Counts a refused batch request.
pub fn refused(reason: Refusal) {
    ::metrics::counter!(BATCHES, "result" => BatchResult::Refused.as_str()).increment(1);
    ::metrics::counter!(REFUSALS, "reason" => reason.as_str()).increment(1);
}

/// Counts a refused batch sent with `host`'s own token (so `host` is enrolled); a refusal that
/// [breaks the chain](Refusal::breaks_chain) sets the host's chain gauge to 0.
pub fn host_refused(host: &str, reason: Refusal) {
    refused(reason);
    if reason.breaks_chain() {
        hosts::TABLE.chain_broken(host);
    }
}

/// Counts a batch the collector failed to handle (answered 500).
pub fn failed() {
    ::metrics::counter!(BATCHES, "result" => BatchResult::Failed.as_str()).increment(1);
}

/// Counts the bytes of a batch body read.
pub fn bytes_received(bytes: usize) {
    ::metrics::counter!(BYTES_RECEIVED).increment(u64::try_from(bytes).unwrap_or(u64::MAX));
}

/// Records how long a stored batch took from its request's arrival to its commit.
pub fn ingest_time(elapsed: Duration) {
    ::metrics::histogram!(INGEST_SECONDS).record(elapsed.as_secs_f64());
}

/// Counts a raised alert.
pub fn alert_raised(kind: AlertKind) {
    ::metrics::counter!(ALERTS, "kind" => kind.as_str()).increment(1);
}
