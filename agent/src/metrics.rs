//! Prometheus metrics on an opt-in local endpoint (`metrics.listen`): the counters of
//! [`crate::telemetry`], published once a second, plus the process's own memory and CPU. Served by
//! `metrics-exporter-prometheus` at `/metrics`; unauthenticated, so it belongs on loopback.

use std::net::SocketAddr;

use metrics::{counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::PrometheusBuilder;

use crate::telemetry::{Snapshot, now_ms};

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error("metrics.listen {addr}: cannot serve metrics")]
pub struct MetricsError {
    addr: SocketAddr,
    #[source]
    source: metrics_exporter_prometheus::BuildError,
}

/// Starts serving `/metrics` on `addr` (call inside the tokio runtime).
pub fn start(addr: SocketAddr) -> Result<(), MetricsError> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|source| MetricsError { addr, source })?;
    describe();
    Ok(())
}

fn describe() {
    describe_counter!("auditloop_events_total", "Events journaled, by kind.");
    describe_counter!(
        "auditloop_lost_records_total",
        "Records lost, by the stage that lost them (each also journaled as a loss event)."
    );
    describe_counter!("auditloop_rule_hits_total", "Alerts raised, by rule.");
    describe_counter!(
        "auditloop_actions_total",
        "Actions carried out, by kind and result."
    );
    describe_counter!(
        "auditloop_tamper_total",
        "Tamper events (another process acting on the agent), by what was done."
    );
    describe_gauge!("auditloop_journal_bytes", "Journal size on disk.");
    describe_gauge!(
        "auditloop_journal_last_seq",
        "The newest journaled sequence number."
    );
    describe_gauge!(
        "auditloop_checkpoint_age_seconds",
        "Seconds since the last signed checkpoint."
    );
    describe_gauge!(
        "auditloop_journal_impaired",
        "1 while the journal cannot be written (events are counted as lost)."
    );
    describe_gauge!(
        "auditloop_ship_acked_seq",
        "The highest sequence number the collector acknowledged."
    );
    describe_gauge!(
        "auditloop_ship_lag_records",
        "Journaled records the collector has not acknowledged."
    );
    describe_gauge!(
        "auditloop_ship_last_ack_age_seconds",
        "Seconds since the collector last acknowledged a batch."
    );
    describe_counter!(
        "auditloop_ship_batches_total",
        "Batches the collector stored."
    );
    describe_counter!(
        "auditloop_ship_bytes_total",
        "Compressed bytes the collector stored."
    );
    describe_counter!(
        "auditloop_ship_retries_total",
        "Shipping attempts that failed and are retried."
    );
    describe_gauge!(
        "auditloop_ship_collector",
        "1 for the collector URL the shipper uses, 0 for the other configured ones, by url."
    );
    describe_counter!(
        "auditloop_ship_collector_switches_total",
        "Times the shipper moved to another collector URL (failover)."
    );
    describe_gauge!("auditloop_rules", "Rules in force.");
    describe_gauge!(
        "auditloop_tracepoints_attached",
        "Kernel programs attached."
    );
    describe_gauge!(
        "auditloop_ring_buffer_bytes",
        "Size of the kernel ring buffer."
    );
    describe_gauge!(
        "auditloop_ring_buffer_backlog_peak_bytes",
        "Most bytes read from the ring buffer in one catch-up over the last second (its fill as the reader found it)."
    );
    describe_gauge!(
        "process_resident_memory_bytes",
        "Resident memory of the agent."
    );
    describe_counter!(
        "process_cpu_seconds_total",
        "CPU time of the agent (user + system)."
    );
}

/// Publishes `s`.
pub fn publish(s: &Snapshot) {
    for (kind, n) in &s.by_kind {
        counter!("auditloop_events_total", "kind" => kind.clone()).absolute(*n);
    }
    let rare = &s.rare;
    for (stage, n) in &rare.losses {
        counter!("auditloop_lost_records_total", "stage" => stage.clone()).absolute(*n);
    }
    for (rule, n) in &rare.rule_hits {
        counter!("auditloop_rule_hits_total", "rule" => rule.clone()).absolute(*n);
    }
    for (key, n) in &rare.actions {
        let (action, result) = key.split_once('/').unwrap_or((key.as_str(), ""));
        counter!("auditloop_actions_total", "action" => action.to_owned(), "result" => result.to_owned())
            .absolute(*n);
    }
    for (what, n) in &rare.tamper {
        counter!("auditloop_tamper_total", "what" => what.clone()).absolute(*n);
    }
    let now = now_ms();
    gauge!("auditloop_journal_bytes").set(s.journal_bytes as f64);
    gauge!("auditloop_journal_last_seq").set(s.last_seq as f64);
    if s.last_checkpoint_ms != 0 {
        gauge!("auditloop_checkpoint_age_seconds")
            .set(now.saturating_sub(s.last_checkpoint_ms) as f64 / 1000.0);
    }
    gauge!("auditloop_journal_impaired").set(if s.journal_impaired { 1.0 } else { 0.0 });
    if let Some(ship) = &rare.ship {
        gauge!("auditloop_ship_acked_seq").set(ship.acked_seq as f64);
        gauge!("auditloop_ship_lag_records").set(s.last_seq.saturating_sub(ship.acked_seq) as f64);
        if ship.last_ack_ms != 0 {
            gauge!("auditloop_ship_last_ack_age_seconds")
                .set(now.saturating_sub(ship.last_ack_ms) as f64 / 1000.0);
        }
        counter!("auditloop_ship_batches_total").absolute(ship.batches);
        counter!("auditloop_ship_bytes_total").absolute(ship.bytes);
        counter!("auditloop_ship_retries_total").absolute(ship.retries);
        counter!("auditloop_ship_collector_switches_total").absolute(ship.collector_switches);
        for url in &ship.collectors {
            let current = if *url == ship.collector { 1.0 } else { 0.0 };
            gauge!("auditloop_ship_collector", "url" => url.clone()).set(current);
        }
    }
    gauge!("auditloop_rules").set(f64::from(rare.rules.rules));
    gauge!("auditloop_tracepoints_attached").set(f64::from(rare.tracepoints));
    gauge!("auditloop_ring_buffer_bytes").set(f64::from(rare.ring_buffer_bytes));
    gauge!("auditloop_ring_buffer_backlog_peak_bytes").set(s.ring_backlog_peak_bytes as f64);
    if let Some((rss, cpu)) = process_usage() {
        gauge!("process_resident_memory_bytes").set(rss as f64);
        counter!("process_cpu_seconds_total").absolute(cpu);
    }
}

/// Resident bytes and whole CPU seconds of this process, from `/proc/self/stat`.
fn process_usage() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let rss_pages: u64 = fields.get(21)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let ticks = u64::try_from(ticks).ok().filter(|t| *t > 0)?;
    let page = u64::try_from(page).ok()?;
    Some((rss_pages * page, (utime + stime) / ticks))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_its_own_usage() {
        let (rss, _) = super::process_usage().unwrap();
        assert!(rss > 1024 * 1024, "{rss}");
    }
}
