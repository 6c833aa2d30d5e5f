use std::collections::BTreeSet;
use std::time::Duration;

use auditloop_protocol::api::AlertKind;

use super::exporter::testing::{recorder, render};
use super::hosts::TABLE;
use super::{
    BatchResult, EnrolledHost, Refusal, StoredBatch, alert_raised, bytes_received, failed,
    host_refused, ingest_time, refused, stored,
};

/// The value of the sample line `series` (name and labels exactly as rendered), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

#[test]
fn label_values_are_a_closed_set_of_distinct_names() {
    let reasons: BTreeSet<_> = Refusal::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(reasons.len(), Refusal::ALL.len());
    let results: BTreeSet<_> = BatchResult::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(results, BTreeSet::from(["stored", "refused", "failed"]));
    for name in reasons.iter().chain(&results) {
        assert!(
            name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{name}"
        );
    }
    let breaking: Vec<_> = Refusal::ALL
        .iter()
        .filter(|r| r.breaks_chain())
        .map(|r| r.as_str())
        .collect();
    assert_eq!(
        breaking,
        ["chain_fork", "bad_chain", "wrong_key", "pending_fork"]
    );
}

#[test]
fn every_counter_is_scraped_at_zero_before_it_moves() {
    let recorder = recorder();
    let text = render(&recorder, &super::hosts::HostTable::new(), &[], 0);
    for reason in Refusal::ALL {
        let series = format!(
            "auditloop_collector_refusals_total{{reason=\"{}\"}}",
            reason.as_str()
        );
        assert_eq!(sample(&text, &series), Some(0.0), "{series}\n{text}");
    }
    for kind in AlertKind::all() {
        let series = format!(
            "auditloop_collector_alerts_total{{kind=\"{}\"}}",
            kind.as_str()
        );
        assert_eq!(sample(&text, &series), Some(0.0), "{series}\n{text}");
    }
    assert_eq!(
        sample(
            &text,
            "auditloop_collector_batches_total{result=\"stored\"}"
        ),
        Some(0.0)
    );
    assert_eq!(sample(&text, "auditloop_collector_hosts"), Some(0.0));
    assert!(
        text.contains("# TYPE auditloop_collector_ingest_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains("auditloop_collector_ingest_seconds_count 0"),
        "{text}"
    );
    assert!(text.contains("# HELP auditloop_collector_hosts "), "{text}");
}

#[test]
fn batches_refusals_and_alerts_are_counted() {
    let recorder = recorder();
    ::metrics::with_local_recorder(&recorder, || {
        stored(
            "unit-web-1",
            StoredBatch {
                records: 7,
                newest_event_ns: Some(1_000_000_000),
            },
        );
        stored(
            "unit-web-1",
            StoredBatch {
                records: 3,
                newest_event_ns: Some(4_000_000_000),
            },
        );
        bytes_received(1500);
        ingest_time(Duration::from_millis(3));
        refused(Refusal::RateLimited);
        host_refused("unit-web-2", Refusal::BadChain);
        host_refused("unit-web-1", Refusal::Gap);
        failed();
        alert_raised(AlertKind::Forgery);
        alert_raised(AlertKind::Forgery);
    });
    let hosts = [
        EnrolledHost {
            name: "unit-web-1",
            last_seq: 42,
        },
        EnrolledHost {
            name: "unit-web-2",
            last_seq: 0,
        },
    ];
    let text = render(&recorder, &TABLE, &hosts, 6_500_000_000);
    let value = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series}\n{text}"));
    assert_eq!(
        value("auditloop_collector_batches_total{result=\"stored\"}"),
        2.0
    );
    assert_eq!(
        value("auditloop_collector_batches_total{result=\"refused\"}"),
        3.0
    );
    assert_eq!(
        value("auditloop_collector_batches_total{result=\"failed\"}"),
        1.0
    );
    assert_eq!(value("auditloop_collector_records_stored_total"), 10.0);
    assert_eq!(value("auditloop_collector_bytes_received_total"), 1500.0);
    assert_eq!(
        value("auditloop_collector_refusals_total{reason=\"rate_limited\"}"),
        1.0
    );
    assert_eq!(
        value("auditloop_collector_refusals_total{reason=\"bad_chain\"}"),
        1.0
    );
    assert_eq!(
        value("auditloop_collector_refusals_total{reason=\"gap\"}"),
        1.0
    );
    assert_eq!(
        value("auditloop_collector_alerts_total{kind=\"forgery\"}"),
        2.0
    );
    assert_eq!(value("auditloop_collector_ingest_seconds_count"), 1.0);
    assert_eq!(
        value("auditloop_collector_ingest_seconds_bucket{le=\"0.005\"}"),
        1.0
    );
    assert_eq!(
        value("auditloop_collector_ingest_seconds_bucket{le=\"0.0025\"}"),
        0.0
    );
    assert_eq!(value("auditloop_collector_hosts"), 2.0);
    assert_eq!(
        value("auditloop_collector_host_last_seq{host=\"unit-web-1\"}"),
        42.0
    );
    // A gap does not break the chain; a bad chain does, until a batch is stored.
    assert_eq!(
        value("auditloop_collector_host_chain_ok{host=\"unit-web-1\"}"),
        1.0
    );
    assert_eq!(
        value("auditloop_collector_host_chain_ok{host=\"unit-web-2\"}"),
        0.0
    );
    // The lag is from the newest event time stored: 6.5 s - 4 s.
    assert_eq!(
        value("auditloop_collector_host_lag_seconds{host=\"unit-web-1\"}"),
        2.5
    );
    assert!(
        sample(
            &text,
            "auditloop_collector_host_lag_seconds{host=\"unit-web-2\"}"
        )
        .is_none(),
        "no event stored, no lag: {text}"
    );
}

#[test]
fn a_host_that_is_not_enrolled_is_never_a_label() {
    let recorder = recorder();
    let table = super::hosts::HostTable::new();
    table.stored("unit-departed", Some(1));
    let text = render(&recorder, &table, &[], 10);
    assert!(!text.contains("unit-departed"), "{text}");
}
