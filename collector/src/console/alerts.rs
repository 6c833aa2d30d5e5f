//! The alerts page: every fleet alert, newest first, filtered by host, rule, source, severity, state and
//! time; a live feed of new and changed alerts over server-sent events; acknowledging or resolving with a
//! comment (approvers and admins); one alert with its trigger, actions and history.

use std::convert::Infallible;
use std::time::Duration;

use auditloop_model::Severity;
use auditloop_protocol::api::fleet::{AlertSource, AlertState};
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::Role;
use crate::console::ConsoleUser;
use crate::console::page::{
    Viewer, badge, event_link, field, page, query_string, severity_class, time, time_field,
};
use crate::http::blocking::blocking;
use crate::http::{AppError, AppState};
use crate::store::{FleetAlert, FleetQuery, StateChange};

/// Alerts on one page.
const PAGE: u32 = 100;
/// How often the live feed looks for changes when the store does not notify them.
const FEED_EVERY: Duration = Duration::from_millis(500);

/// The filters of the alerts page (and of its feed).
#[derive(Clone, Debug, Default, Deserialize)]
pub(super) struct Filters {
    #[serde(default)]
    host: String,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    before: Option<i64>,
}

impl Filters {
    fn query(&self) -> Result<FleetQuery, AppError> {
        let bad =
            |what: &str, v: &str| AppError::BadRequest(format!("{what}: unknown value {v:?}"));
        Ok(FleetQuery {
            host: field(&self.host),
            rule: field(&self.rule),
            source: field(&self.source)
                .map(|s| AlertSource::parse(&s).ok_or_else(|| bad("source", &s)))
                .transpose()?,
            min_severity: field(&self.severity)
                .map(|s| s.parse::<Severity>().map_err(|_| bad("severity", &s)))
                .transpose()?,
            state: field(&self.state)
                .map(|s| AlertState::parse(&s).ok_or_else(|| bad("state", &s)))
                .transpose()?,
            since_ns: time_field("since", &self.since)?,
            until_ns: time_field("until", &self.until)?,
            trigger_seq: None,
            before: self.before,
            after: None,
            limit: PAGE,
        })
    }

    /// The filters as a query string (for the feed and paging links).
    fn encoded(&self) -> String {
        query_string(&[
            ("host", &self.host),
            ("rule", &self.rule),
            ("source", &self.source),
            ("severity", &self.severity),
            ("state", &self.state),
            ("since", &self.since),
            ("until", &self.until),
        ])
    }
}

/// One alert's row (the feed streams the same markup).
pub(super) fn row(a: &FleetAlert, viewer: &Viewer) -> Markup {
    html! {
        tr id=(format!("alert-{}", a.id)) data-rule=(a.rule) data-state=(a.state.as_str()) {
            td { a href=(format!("/alerts/{}", a.id)) { "#" (a.id) } }
            td { (time(Some(a.last_time_ns))) }
            td { (a.host) }
            td { (badge(a.severity.as_str(), severity_class(a.severity.as_str()))) }
            td { (a.source.as_str()) }
            td.rule { strong { (a.rule) } br; span.mute { (a.output) }
                @if !a.tags.is_empty() { br; span.mute { (a.tags.join(" ")) } } }
            td { @if let Some(t) = a.trigger_seq { (event_link(&a.host, t)) } @else { "—" } }
            td { @for x in &a.actions { (badge(&x.action, if x.ok { "ok" } else { "bad" })) " " } }
            td.state { (badge(a.state.as_str(), match a.state { AlertState::Open => "bad", AlertState::Acknowledged => "warn", AlertState::Resolved => "ok" }))
                @if let Some(by) = &a.state_by { br; span.mute { (by) ": " (a.state_comment.as_deref().unwrap_or("")) } } }
            td { @if viewer.can_decide() && a.state != AlertState::Resolved { (state_form(a, viewer)) } }
        }
    }
}

fn state_form(a: &FleetAlert, viewer: &Viewer) -> Markup {
    let next = match a.state {
        AlertState::Open => [AlertState::Acknowledged, AlertState::Resolved].as_slice(),
        AlertState::Acknowledged | AlertState::Resolved => [AlertState::Resolved].as_slice(),
    };
    html! {
        form.inline method="post" action=(format!("/alerts/{}/state", a.id)) {
            (viewer.csrf_field())
            input type="text" name="comment" placeholder="comment" required;
            @for s in next {
                button type="submit" name="state" value=(s.as_str()) { (label(*s)) }
            }
        }
    }
}

fn label(state: AlertState) -> &'static str {
    match state {
        AlertState::Open => "Reopen",
        AlertState::Acknowledged => "Acknowledge",
        AlertState::Resolved => "Resolve",
    }
}

/// `GET /alerts`.
pub(super) async fn list(
    ConsoleUser(_, viewer): ConsoleUser,
    State(state): State<AppState>,
    Query(filters): Query<Filters>,
) -> Response {
    let query = match filters.query() {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let alerts = match blocking(state.store(), move |s| s.fleet_alerts(&query)).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let next = (alerts.len() == PAGE as usize)
        .then(|| alerts.last().map(|a| a.id))
        .flatten();
    let encoded = filters.encoded();
    page(
        "Alerts",
        "Alerts",
        Some(&viewer),
        html! {
            h1 { "Alerts " span #feed-status.mute { "" } }
            form.filters method="get" action="/alerts" {
                label { "Host" input name="host" value=(filters.host); }
                label { "Rule" input name="rule" value=(filters.rule); }
                label { "Source" select name="source" {
                    option value="" { "any" }
                    @for s in AlertSource::all() { option value=(s.as_str()) selected[filters.source == s.as_str()] { (s.as_str()) } }
                } }
                label { "At least" select name="severity" {
                    option value="" { "any" }
                    @for s in Severity::all() { option value=(s.as_str()) selected[filters.severity == s.as_str()] { (s.as_str()) } }
                } }
                label { "State" select name="state" {
                    option value="" { "any" }
                    @for s in AlertState::all() { option value=(s.as_str()) selected[filters.state == s.as_str()] { (s.as_str()) } }
                } }
                label { "Since" input name="since" value=(filters.since) placeholder="RFC 3339 or ns"; }
                label { "Until" input name="until" value=(filters.until); }
                button type="submit" { "Filter" }
            }
            table {
                thead { tr { th { "Id" } th { "Time" } th { "Host" } th { "Severity" } th { "Source" } th { "Rule" }
                    th { "Trigger" } th { "Actions" } th { "State" } th { "" } } }
                tbody #alerts-body data-feed=(encoded) {
                    @if alerts.is_empty() { tr #alerts-empty { td colspan="10" .mute { "No alerts." } } }
                    @for a in &alerts { (row(a, &viewer)) }
                }
            }
            @if let Some(before) = next {
                p { a href=(format!("/alerts?{encoded}&before={before}")) { "Older" } }
            }
        },
    )
    .into_response()
}

/// `GET /alerts/feed`: server-sent events, one `alert` event (its row's markup) per alert raised,
/// repeated or changed after the feed opened that matches the filters.
pub(super) async fn feed(
    ConsoleUser(_, viewer): ConsoleUser,
    State(state): State<AppState>,
    Query(filters): Query<Filters>,
) -> Response {
    let mut query = match filters.query() {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    query.before = None;
    let start = match blocking(state.store(), |s| Ok(latest_rev(s))).await {
        Ok(rev) => rev,
        Err(e) => return e.into_response(),
    };
    let store = std::sync::Arc::clone(state.store());
    let stream = async_stream(store, query, start, viewer);
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The highest revision stored.
fn latest_rev(store: &dyn crate::store::Store) -> i64 {
    let mut rev = 0;
    loop {
        match store.fleet_alerts(&FleetQuery {
            after: Some(rev),
            limit: 1_000,
            ..FleetQuery::default()
        }) {
            Ok(more) if !more.is_empty() => rev = more.iter().map(|a| a.rev).max().unwrap_or(rev),
            Ok(_) | Err(_) => return rev,
        }
    }
}

fn async_stream(
    store: std::sync::Arc<dyn crate::store::Store>,
    query: FleetQuery,
    start: i64,
    viewer: Viewer,
) -> impl tokio_stream::Stream<Item = Result<SseEvent, Infallible>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<SseEvent>(64);
    tokio::spawn(async move {
        let mut rev = start;
        let mut wait = crate::changes::ChangeWait::new(store.as_ref(), FEED_EVERY);
        if tx
            .send(SseEvent::default().event("status").data("live"))
            .await
            .is_err()
        {
            return;
        }
        loop {
            wait.next(None).await;
            let store = std::sync::Arc::clone(&store);
            let q = FleetQuery {
                after: Some(rev),
                limit: 200,
                ..query.clone()
            };
            let unfiltered = FleetQuery {
                after: Some(rev),
                limit: 200,
                ..FleetQuery::default()
            };
            let found = tokio::task::spawn_blocking(move || {
                let matching = store.fleet_alerts(&q)?;
                // The revision moves past every change, matching or not.
                let top = store.fleet_alerts(&unfiltered)?.iter().map(|a| a.rev).max();
                Ok::<_, crate::store::StoreError>((matching, top))
            })
            .await;
            let Ok(Ok((alerts, top))) = found else {
                continue;
            };
            for a in &alerts {
                let markup = row(a, &viewer).into_string();
                if tx
                    .send(SseEvent::default().event("alert").data(markup))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if let Some(top) = top {
                rev = rev.max(top);
            }
        }
    });
    tokio_stream::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), Ok)
}

/// The state form's fields.
#[derive(Deserialize)]
pub(super) struct StateForm {
    state: String,
    #[serde(default)]
    comment: String,
}

/// `POST /alerts/{id}/state` (approvers and admins).
pub(super) async fn change(
    ConsoleUser(person, _): ConsoleUser,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Form(form): Form<StateForm>,
) -> Response {
    if let Err(e) = person.require(Role::Approver, "changing an alert's state") {
        return e.into_response();
    }
    let Some(to) = AlertState::parse(&form.state) else {
        return AppError::BadRequest(format!("state: unknown value {:?}", form.state))
            .into_response();
    };
    let by = person.name().to_owned();
    let comment = form.comment;
    let now = auditloop_model::WallTime::now().0;
    let changed = blocking(state.store(), move |s| {
        s.set_alert_state(&StateChange {
            id,
            state: to,
            by: &by,
            comment: &comment,
            now_ns: now,
        })
    })
    .await;
    match changed {
        Ok(Some(_)) => Redirect::to(&format!("/alerts#alert-{id}")).into_response(),
        Ok(None) => AppError::NotFound(format!("no alert {id}")).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /alerts/{id}`: one alert, its triggering event and its history.
pub(super) async fn one(
    ConsoleUser(_, viewer): ConsoleUser,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Response {
    let found = blocking(state.store(), move |s| {
        let Some(a) = s.fleet_alert(id)? else {
            return Ok(None);
        };
        let history = s.audit_log(Some(&format!("alert:{id}")))?;
        Ok(Some((a, history)))
    })
    .await;
    let (a, history) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return AppError::NotFound(format!("no alert {id}")).into_response(),
        Err(e) => return e.into_response(),
    };
    page(
        &format!("Alert #{id}"),
        "Alerts",
        Some(&viewer),
        html! {
            h1 { "Alert #" (id) ": " (a.rule) }
            table { tbody { (row(&a, &viewer)) } }
            @if let Some(t) = a.trigger_seq { p { "Triggering event: " (event_link(&a.host, t)) } }
            h2 { "History" }
            @if history.is_empty() { p.mute { "Never changed." } }
            ul { @for h in &history { li { (time(Some(h.time_ns))) " " strong { (h.who) } " " (h.detail) } } }
        },
    )
    .into_response()
}
