//! The rules page: hits per rule over the last day and per host, noisiest first, the rules hosts loaded
//! that never fired, and each rule's triggering events as JSON lines (`auditloop rules test --events`).

use std::collections::{BTreeMap, BTreeSet};

use auditloop_journal::record::{Payload, decode_payload};
use auditloop_protocol::api::fleet::AlertSource;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use maud::html;

use crate::console::ConsoleUser;
use crate::console::page::{page, sparkline, time, urlencode};
use crate::http::AppState;
use crate::http::blocking::blocking;
use crate::store::{FleetQuery, Store, StoreError};

/// Alerts read at most for the statistics.
const READ: u32 = 100_000;
/// Hours in each rule's sparkline.
const HOURS: u64 = 24;

/// One rule's row: name, hits, hits per host (most first), hourly hits of the last day, last hit.
pub type RuleHits = (String, u64, Vec<(String, u64)>, Vec<u64>, u64);

/// Hits of one rule.
#[derive(Default)]
struct Hits {
    total: u64,
    hosts: BTreeMap<String, u64>,
    hourly: Vec<u64>,
    last_ns: u64,
}

/// Rule statistics over the stored rule alerts: hits per rule (noisiest first) and the loaded rules with
/// none.
pub fn statistics(
    store: &dyn Store,
    now_ns: u64,
) -> Result<(Vec<RuleHits>, Vec<String>), StoreError> {
    let alerts = store.fleet_alerts(&FleetQuery {
        source: Some(AlertSource::Rule),
        limit: READ,
        ..FleetQuery::default()
    })?;
    let mut hits: BTreeMap<String, Hits> = BTreeMap::new();
    let since = now_ns.saturating_sub(HOURS * 3_600_000_000_000);
    for a in alerts {
        let h = hits.entry(a.rule.clone()).or_insert_with(|| Hits {
            hourly: vec![0; HOURS as usize],
            ..Hits::default()
        });
        h.total += 1;
        *h.hosts.entry(a.host.clone()).or_default() += 1;
        h.last_ns = h.last_ns.max(a.time_ns);
        if a.time_ns >= since {
            let hour = ((a.time_ns - since) / 3_600_000_000_000) as usize;
            if let Some(slot) = h.hourly.get_mut(hour) {
                *slot += 1;
            }
        }
    }
    let loaded: BTreeSet<String> = store.loaded_rules()?.into_iter().collect();
    let never: Vec<String> = loaded
        .into_iter()
        .filter(|r| !hits.contains_key(r))
        .collect();
    let mut rows: Vec<_> = hits
        .into_iter()
        .map(|(rule, h)| {
            let mut hosts: Vec<_> = h.hosts.into_iter().collect();
            hosts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            (rule, h.total, hosts, h.hourly, h.last_ns)
        })
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok((rows, never))
}

/// `GET /rules`.
pub(super) async fn rules(
    ConsoleUser(_, viewer): ConsoleUser,
    State(state): State<AppState>,
) -> Response {
    let now = auditloop_model::WallTime::now().0;
    let (rows, never) = match blocking(state.store(), move |s| statistics(s, now)).await {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    page(
        "Rules",
        "Rules",
        Some(&viewer),
        html! {
            h1 { "Rules" }
            h2 { "Hits, noisiest first" }
            table #rule-hits {
                thead { tr { th { "Rule" } th.num { "Hits" } th { "Last 24 h" } th { "Hosts" } th { "Last" } th { "" } } }
                tbody { @for (rule, total, hosts, hourly, last) in &rows { tr data-rule=(rule) {
                    td { a href=(format!("/alerts?rule={}", urlencode(rule))) { (rule) } }
                    td.num { (total) }
                    td { (sparkline(hourly)) }
                    td { @for (h, n) in hosts { (h) " (" (n) ") " } }
                    td { (time(Some(*last))) }
                    td { a href=(format!("/rules/{}/events.jsonl", urlencode(rule))) { "events.jsonl" } }
                } } }
            }
            h2 { "Loaded and never fired" }
            @if never.is_empty() { p.mute { "None (or no host has reported its rule names yet)." } }
            ul #never-fired { @for r in &never { li { (r) } } }
        },
    )
    .into_response()
}

/// `GET /rules/{rule}/events.jsonl`: the triggering events of the rule's alerts, one JSON event per line,
/// oldest first: the input of `auditloop rules test RULES --events FILE`.
pub(super) async fn download(
    ConsoleUser(..): ConsoleUser,
    State(state): State<AppState>,
    Path(rule): Path<String>,
) -> Response {
    let name = rule.clone();
    let lines = blocking(state.store(), move |s| {
        let mut alerts = s.fleet_alerts(&FleetQuery {
            source: Some(AlertSource::Rule),
            rule: Some(name),
            limit: READ,
            ..FleetQuery::default()
        })?;
        alerts.reverse();
        let mut out = String::new();
        for a in alerts {
            let Some(trigger) = a.trigger_seq else {
                continue;
            };
            let Some(r) = s.record(&a.host, trigger)? else {
                continue;
            };
            if let Ok(Payload::Event(e)) = decode_payload(&r.payload)
                && let Ok(line) = serde_json::to_string(&e)
            {
                out.push_str(&line);
                out.push('\n');
            }
        }
        Ok(out)
    })
    .await;
    match lines {
        Ok(body) => (
            [
                (CONTENT_TYPE, "application/x-ndjson".to_owned()),
                (
                    CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}.jsonl\"", urlencode(&rule)),
                ),
            ],
            body,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}
