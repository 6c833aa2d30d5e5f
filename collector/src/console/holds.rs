//! The holds page: processes held on hosts, waiting ones first, each with its process tree and its recent
//! events, approved or denied by approvers and admins; the holds already decided, with who decided and how
//! long it took.

use auditloop_journal::record::{Payload, decode_payload};
use auditloop_protocol::api::holds::Decision;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::console::ConsoleUser;
use crate::console::page::{Viewer, ago, badge, event_link, page, time};
use crate::http::blocking::blocking;
use crate::http::{AppError, AppState};
use crate::lineage::lineage;
use crate::store::{EventQuery, HoldQuery, StoredHold};

/// Holds listed.
const LIMIT: u32 = 200;
/// Recent events of a held process shown.
const RECENT: u32 = 10;

/// `GET /holds`.
pub(super) async fn list(
    ConsoleUser(_, viewer): ConsoleUser,
    State(state): State<AppState>,
) -> Response {
    let options = state.lineage_options().clone();
    let found = blocking(state.store(), move |store| {
        let holds = store.holds(&HoldQuery {
            limit: LIMIT,
            ..HoldQuery::default()
        })?;
        let mut out = Vec::new();
        for h in holds {
            let mut context = Vec::new();
            if h.state == "requested" {
                if let Ok(l) = lineage(store, &h.host, h.hold, true, &options) {
                    let mut chain: Vec<String> = l
                        .lineage
                        .ancestors
                        .iter()
                        .rev()
                        .map(|p| {
                            format!(
                                "{} ({})",
                                if p.comm.is_empty() { "?" } else { &p.comm },
                                p.pid
                            )
                        })
                        .collect();
                    chain.push(format!(
                        "{} ({})",
                        l.lineage.process.comm, l.lineage.process.pid
                    ));
                    context.push(chain.join(" → "));
                }
                let recent = store.records(&EventQuery {
                    host: Some(h.host.clone()),
                    pid: Some(h.pid),
                    pending: true,
                    since_ns: Some(h.requested_ns.saturating_sub(60_000_000_000)),
                    limit: 1_000,
                    ..EventQuery::default()
                })?;
                for r in recent.iter().rev().take(RECENT as usize) {
                    if let Ok(Payload::Event(e)) = decode_payload(&r.payload) {
                        let what = crate::store::columns::of_event(&e)
                            .summary
                            .unwrap_or_default();
                        context.push(format!("#{} {} {}", r.seq, r.kind, what));
                    }
                }
            }
            out.push((h, context));
        }
        Ok(out)
    })
    .await;
    let holds = match found {
        Ok(h) => h,
        Err(e) => return e.into_response(),
    };
    let now = auditloop_model::WallTime::now().0;
    let (waiting, done): (Vec<_>, Vec<_>) = holds
        .into_iter()
        .partition(|(h, _)| h.state == "requested" && h.verdict.is_none());
    page(
        "Holds",
        "Holds",
        Some(&viewer),
        html! {
            h1 { "Holds" }
            h2 { "Waiting" }
            @if waiting.is_empty() { p.mute #no-holds { "No process is waiting for a decision." } }
            table #waiting { tbody { @for (h, context) in &waiting { (waiting_row(h, context, &viewer, now)) } } }
            h2 { "Decided" }
            table #decided {
                thead { tr { th { "Hold" } th { "Rule" } th { "Process" } th { "Outcome" } th { "Decided by" } th.num { "Latency" } th { "Requested" } } }
                tbody { @for (h, _) in &done { tr id=(format!("hold-{}-{}", h.host, h.hold)) data-state=(h.state) {
                    td { (event_link(&h.host, h.hold)) }
                    td { (h.rule) }
                    td { (h.comm) " (" (h.pid) ") " span.mute { (h.exe) } }
                    td { (badge(&h.state, match h.state.as_str() { "approved" => "ok", "requested" => "warn", _ => "bad" })) }
                    td { (if h.decided_by.is_empty() { h.verdict.as_ref().map(|v| format!("{} (sent)", v.by)).unwrap_or_default() } else { h.decided_by.clone() }) }
                    td.num { (h.latency_us.map(|l| format!("{:.1} ms", l as f64 / 1000.0)).unwrap_or_default()) }
                    td { (time(Some(h.requested_ns))) }
                } } }
            }
        },
    )
    .into_response()
}

fn waiting_row(h: &StoredHold, context: &[String], viewer: &Viewer, now: u64) -> Markup {
    let deadline = h
        .requested_ns
        .saturating_add(h.timeout_ms.saturating_mul(1_000_000));
    let left = deadline.saturating_sub(now) / 1_000_000_000;
    html! {
        tr id=(format!("hold-{}-{}", h.host, h.hold)) data-state="requested" {
            td { (event_link(&h.host, h.hold)) br; span.mute { "held " (ago(Some(h.requested_ns), now)) " ago, " (left) " s left, then " (h.default) } }
            td { strong { (h.rule) } br; (h.comm) " (pid " (h.pid) ") " span.mute { (h.exe) } br; span.mute { "stopped by " (h.stopped_by) } }
            td { @for line in context { div.mute { (line) } } }
            td { @if viewer.can_decide() {
                form.inline method="post" action=(format!("/holds/{}/{}/verdict", h.host, h.hold)) {
                    (viewer.csrf_field())
                    input type="text" name="comment" placeholder="comment";
                    button type="submit" name="decision" value="approve" { "Approve" }
                    button type="submit" name="decision" value="deny" { "Deny" }
                }
            } }
        }
    }
}

/// The verdict form's fields.
#[derive(Deserialize)]
pub(super) struct VerdictForm {
    decision: String,
    #[serde(default)]
    comment: String,
}

/// `POST /holds/{host}/{id}/verdict`.
pub(super) async fn decide(
    ConsoleUser(person, _): ConsoleUser,
    State(state): State<AppState>,
    Path((host, hold)): Path<(String, u64)>,
    Form(form): Form<VerdictForm>,
) -> Response {
    let Some(decision) = Decision::parse(&form.decision) else {
        return AppError::BadRequest(format!("decision: unknown value {:?}", form.decision))
            .into_response();
    };
    match crate::http::decide_hold(&state, &person, host, hold, decision, form.comment).await {
        Ok(_) => Redirect::to("/holds").into_response(),
        Err(e) => e.into_response(),
    }
}
