//! The Prometheus recorder ([`Exporter`]): installed once as the process's `metrics` recorder, rendered
//! in the text exposition format at every scrape.

use std::collections::BTreeSet;
use std::time::SystemTime;

use auditloop_protocol::api::AlertKind;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use super::hosts::{HostHealth, HostTable, TABLE};
use super::{
    ALERTS, BATCHES, BYTES_RECEIVED, BatchResult, HOST_CHAIN_OK, HOST_LAG, HOST_LAST_SEQ, HOSTS,
    INGEST_SECONDS, RECORDS_STORED, REFUSALS, Refusal,
};

/// The buckets of [`INGEST_SECONDS`], in seconds.
pub const INGEST_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Why the metrics recorder could not be installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The recorder could not be built.
    #[error("building the metrics recorder: {0}")]
    Build(#[from] BuildError),
    /// A recorder is installed already.
    #[error("a metrics recorder is installed already")]
    Installed,
}

/// An enrolled host, as the scrape lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnrolledHost<'a> {
    /// Host name.
    pub name: &'a str,
    /// Its last stored sequence number (0 before its first batch).
    pub last_seq: u64,
}

/// The installed Prometheus recorder: renders every metric at a scrape.
#[derive(Clone, Debug)]
pub struct Exporter {
    handle: PrometheusHandle,
}

impl Exporter {
    /// Installs the Prometheus recorder as the process's `metrics` recorder (once per process), describes
    /// every metric and registers every counter at 0, so each label value is scraped before it first moves.
    pub fn install() -> Result<Exporter, MetricsError> {
        let recorder = builder()?.build_recorder();
        let handle = recorder.handle();
        ::metrics::set_global_recorder(recorder).map_err(|_| MetricsError::Installed)?;
        register();
        Ok(Exporter { handle })
    }

    /// The metrics in the Prometheus text format, after setting the per-host gauges of `hosts` (every
    /// enrolled host) and the host count.
    pub fn render(&self, hosts: &[EnrolledHost<'_>]) -> String {
        set_host_gauges(&TABLE, hosts, now_ns());
        self.handle.run_upkeep();
        self.handle.render()
    }
}

/// The recorder's builder: histogram buckets for [`INGEST_SECONDS`] (other histograms would be
/// summaries; there are none).
fn builder() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(INGEST_SECONDS.to_owned()), &INGEST_BUCKETS)
}

/// Describes every metric and registers every counter of a closed label set at 0, and the histogram.
fn register() {
    use ::metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        BATCHES,
        "Batch requests received, by result (stored, refused, failed)."
    );
    describe_counter!(
        RECORDS_STORED,
        "New records stored (events, segment starts, checkpoints)."
    );
    describe_counter!(
        BYTES_RECEIVED,
        Unit::Bytes,
        "Bytes of batch bodies read, as sent."
    );
    describe_counter!(REFUSALS, "Refused batch requests, by reason.");
    describe_gauge!(
        HOST_LAST_SEQ,
        "The last sequence number stored of the host."
    );
    describe_gauge!(
        HOST_LAG,
        Unit::Seconds,
        "Seconds since the newest event time among the records stored for the host since the collector started."
    );
    describe_gauge!(
        HOST_CHAIN_OK,
        "1 while the host's chain verifies; 0 after a refusal for a broken or forged chain, until a batch of it is stored."
    );
    describe_histogram!(
        INGEST_SECONDS,
        Unit::Seconds,
        "Seconds from a batch request's arrival to its commit (stored batches)."
    );
    describe_counter!(ALERTS, "Alerts raised, by kind.");
    describe_gauge!(HOSTS, "Enrolled hosts.");
    for result in BatchResult::ALL {
        counter!(BATCHES, "result" => result.as_str()).absolute(0);
    }
    for reason in Refusal::ALL {
        counter!(REFUSALS, "reason" => reason.as_str()).absolute(0);
    }
    for kind in AlertKind::all() {
        counter!(ALERTS, "kind" => kind.as_str()).absolute(0);
    }
    counter!(RECORDS_STORED).absolute(0);
    counter!(BYTES_RECEIVED).absolute(0);
    // Registered, so the histogram is scraped (count 0) before the first batch is stored.
    let _ = ::metrics::histogram!(INGEST_SECONDS);
}

/// Sets the host count and each enrolled host's gauges at `now_ns`.
fn set_host_gauges(table: &HostTable, hosts: &[EnrolledHost<'_>], now_ns: u64) {
    use ::metrics::gauge;
    let enrolled: BTreeSet<&str> = hosts.iter().map(|h| h.name).collect();
    let health = table.snapshot(&enrolled);
    gauge!(HOSTS).set(enrolled.len() as f64);
    for host in hosts {
        let entry = health.get(host.name).copied().unwrap_or_default();
        let HostHealth {
            newest_event_ns,
            chain_ok,
        } = entry;
        let name = host.name.to_owned();
        gauge!(HOST_LAST_SEQ, "host" => name.clone()).set(host.last_seq as f64);
        gauge!(HOST_CHAIN_OK, "host" => name.clone()).set(if chain_ok { 1.0 } else { 0.0 });
        if let Some(newest) = newest_event_ns {
            let lag = now_ns.saturating_sub(newest) as f64 / 1e9;
            gauge!(HOST_LAG, "host" => name).set(lag);
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
pub(super) mod testing {
    //! A local recorder for unit tests (the global one can be installed once per process).

    use metrics_exporter_prometheus::PrometheusRecorder;

    use super::{EnrolledHost, HostTable, builder, register, set_host_gauges};

    /// A recorder like the installed one, with every metric registered.
    pub fn recorder() -> PrometheusRecorder {
        let recorder = builder().unwrap().build_recorder();
        ::metrics::with_local_recorder(&recorder, register);
        recorder
    }

    /// Renders `recorder` after setting the host gauges from `table` at `now_ns`.
    pub fn render(
        recorder: &PrometheusRecorder,
        table: &HostTable,
        hosts: &[EnrolledHost<'_>],
        now_ns: u64,
    ) -> String {
        ::metrics::with_local_recorder(recorder, || set_host_gauges(table, hosts, now_ns));
        recorder.handle().render()
    }
}
