//! The fleet page: every host's last contact, shipping lag, the age of its last verified checkpoint, its
//! chain status as a badge and an events-per-minute sparkline of the last half hour.

use std::collections::HashMap;

use auditloop_protocol::api::HostStatus;
use auditloop_protocol::api::fleet::{AlertSource, AlertState};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;

use crate::console::ConsoleUser;
use crate::console::page::{ago, badge, page, sparkline, time, urlencode};
use crate::http::AppState;
use crate::http::blocking::blocking;
use crate::store::{EventQuery, FleetQuery, StoredHost};

/// Minutes in the sparkline.
const SPARK_MINUTES: u64 = 30;
/// Records read per host for the sparkline at most.
const SPARK_RECORDS: u32 = 20_000;
/// A checkpoint older than this leaves a host's new records pending too long (the agent signs one every
/// few seconds while it runs).
const PENDING_NS: u64 = 30_000_000_000;

/// A host's chain status on the console.
pub(super) fn chain_status(
    host: &StoredHost,
    open_chain_alerts: &[String],
    now_ns: u64,
) -> (&'static str, &'static str) {
    let has = |kind: &str| open_chain_alerts.iter().any(|k| k == kind);
    let pending = host.record.next_seq.saturating_sub(1) > host.record.last_checkpoint_seq;
    let stale = host
        .last_checkpoint_ns
        .is_none_or(|t| now_ns.saturating_sub(t) > PENDING_NS);
    match host.status {
        HostStatus::Tampered => return ("tampered", "bad"),
        HostStatus::Forked => return ("forked", "bad"),
        HostStatus::Replaced => return ("replaced", "idle"),
        HostStatus::Enrolled => return ("enrolled", "idle"),
        HostStatus::Verified | HostStatus::AnchoredTofu => {}
    }
    if has("tamper") || has("forgery") {
        ("tampered", "bad")
    } else if has("chain_fork") {
        ("forked", "bad")
    } else if has("gap") {
        ("gap", "warn")
    } else if host.silent {
        ("silent", "warn")
    } else if pending && stale {
        ("pending", "warn")
    } else {
        ("verified", "ok")
    }
}

/// The kinds of each host's chain alerts that are not resolved.
pub(super) fn open_chain_alerts(
    store: &dyn crate::store::Store,
) -> Result<HashMap<String, Vec<String>>, crate::store::StoreError> {
    let mut open: HashMap<String, Vec<String>> = HashMap::new();
    for a in store.fleet_alerts(&FleetQuery {
        source: Some(AlertSource::Chain),
        limit: 10_000,
        ..FleetQuery::default()
    })? {
        if a.state != AlertState::Resolved {
            open.entry(a.host).or_default().push(a.rule);
        }
    }
    Ok(open)
}

/// `GET /`.
pub(super) async fn fleet(
    ConsoleUser(_, viewer): ConsoleUser,
    State(state): State<AppState>,
) -> Response {
    let now = auditloop_model::WallTime::now().0;
    let since = now.saturating_sub(SPARK_MINUTES * 60_000_000_000);
    let rows = blocking(state.store(), move |store| {
        let open = open_chain_alerts(store)?;
        let mut rows = Vec::new();
        for host in store.hosts()? {
            let mut spark = vec![0u64; SPARK_MINUTES as usize];
            if host.status != HostStatus::Replaced {
                for r in store.records(&EventQuery {
                    host: Some(host.name.clone()),
                    since_ns: Some(since),
                    pending: true,
                    limit: SPARK_RECORDS,
                    ..EventQuery::default()
                })? {
                    let minute = r.stored_ns.saturating_sub(since) / 60_000_000_000;
                    if let Some(slot) = spark.get_mut(minute as usize) {
                        *slot += 1;
                    }
                }
            }
            let kinds = open.get(&host.name).cloned().unwrap_or_default();
            rows.push((host, kinds, spark));
        }
        Ok(rows)
    })
    .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => return e.into_response(),
    };
    page(
        "Fleet",
        "Fleet",
        Some(&viewer),
        html! {
            h1 { "Fleet" }
            @if rows.is_empty() { p.mute { "No host has enrolled yet." } }
            table #hosts {
                thead { tr {
                    th { "Host" } th { "Chain" } th { "Last seen" } th { "Shipping lag" }
                    th { "Last verified checkpoint" } th.num { "Events" } th.num { "Pending" }
                    th { "Events/min, last 30 min" }
                } }
                tbody {
                    @for (host, kinds, spark) in &rows {
                        @let (status, class) = chain_status(host, kinds, now);
                        @let pending = host.record.next_seq.saturating_sub(1).saturating_sub(host.record.last_checkpoint_seq);
                        tr data-host=(host.name) {
                            td { a href=(format!("/search?host={}", urlencode(&host.name))) { (host.name) } }
                            td.chain { (badge(status, class))
                                @if !kinds.is_empty() { " " span.mute { (kinds.join(", ")) } } }
                            td { (time(Some(host.last_seen_ns))) }
                            td { (ago(Some(host.last_seen_ns), now)) }
                            td { (ago(host.last_checkpoint_ns, now)) " ago, #" (host.record.last_checkpoint_seq) }
                            td.num { (host.events) }
                            td.num { (pending) }
                            td { (sparkline(spark)) }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}
