//! The search page: stored events by host, kind, time range, process, path (a prefix with a trailing
//! `*`) and free text, paged, with the number of matches and a histogram of their times.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::console::ConsoleUser;
use crate::console::page::{event_link, field, histogram, page, query_string, time, time_field};
use crate::http::blocking::blocking;
use crate::http::views::record_view;
use crate::http::{AppError, AppState};
use crate::store::{EventQuery, PathFilter, StoredRecord};

/// Events on one page.
const PAGE: usize = 50;
/// Matches counted at most (the count says "at least" beyond).
const COUNT_CAP: u32 = 20_000;
/// Bars in the histogram.
const BARS: usize = 60;

/// The search form's fields.
#[derive(Clone, Debug, Default, Deserialize)]
pub(super) struct SearchForm {
    #[serde(default)]
    host: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    pid: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    pending: String,
    #[serde(default)]
    page: usize,
}

impl SearchForm {
    fn query(&self) -> Result<EventQuery, AppError> {
        let pid = field(&self.pid)
            .map(|p| {
                p.parse::<u32>()
                    .map_err(|_| AppError::BadRequest(format!("pid: not a process id: {p:?}")))
            })
            .transpose()?;
        let path = field(&self.path).map(|p| match p.strip_suffix('*') {
            Some(prefix) => PathFilter::Prefix(prefix.to_owned()),
            None => PathFilter::Exact(p),
        });
        Ok(EventQuery {
            host: field(&self.host),
            kind: field(&self.kind),
            since_ns: time_field("since", &self.since)?,
            until_ns: time_field("until", &self.until)?,
            pid,
            path,
            text: field(&self.q),
            pending: !self.pending.is_empty(),
            limit: COUNT_CAP,
            ..EventQuery::default()
        })
    }

    fn encoded(&self) -> String {
        query_string(&[
            ("host", &self.host),
            ("kind", &self.kind),
            ("since", &self.since),
            ("until", &self.until),
            ("pid", &self.pid),
            ("path", &self.path),
            ("q", &self.q),
            ("pending", &self.pending),
        ])
    }
}

/// The event time of a stored record (its stored time when it is not an event).
fn event_time(r: &StoredRecord) -> u64 {
    match auditloop_journal::record::decode_payload(&r.payload) {
        Ok(auditloop_journal::record::Payload::Event(e)) => e.time.0,
        Ok(_) | Err(_) => r.stored_ns,
    }
}

/// `GET /search`.
pub(super) async fn search(
    ConsoleUser(_, viewer): ConsoleUser,
    State(state): State<AppState>,
    Query(form): Query<SearchForm>,
) -> Response {
    let query = match form.query() {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let found = match blocking(state.store(), move |s| s.records(&query)).await {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let count = found.len();
    let capped = count >= COUNT_CAP as usize;
    let times: Vec<u64> = found.iter().map(event_time).collect();
    let (lo, hi) = (
        times.iter().copied().min().unwrap_or(0),
        times.iter().copied().max().unwrap_or(0),
    );
    let mut bars = vec![0u64; BARS];
    let span = (hi - lo).max(1);
    for t in &times {
        let i = (((t - lo) as u128 * (BARS as u128 - 1)) / span as u128) as usize;
        if let Some(b) = bars.get_mut(i) {
            *b += 1;
        }
    }
    // Newest first on the page.
    let start = form.page * PAGE;
    let shown: Vec<_> = found.into_iter().rev().skip(start).take(PAGE).collect();
    let more = start + shown.len() < count;
    let encoded = form.encoded();
    page(
        "Search",
        "Search",
        Some(&viewer),
        html! {
            h1 { "Search events" }
            form.filters method="get" action="/search" {
                label { "Host" input name="host" value=(form.host); }
                label { "Kind" input name="kind" value=(form.kind) placeholder="exec, file, net…"; }
                label { "Since" input name="since" value=(form.since) placeholder="RFC 3339 or ns"; }
                label { "Until" input name="until" value=(form.until); }
                label { "Pid" input name="pid" value=(form.pid) size="7"; }
                label { "Path" input name="path" value=(form.path) placeholder="/etc/passwd or /etc/*"; }
                label { "Text" input name="q" value=(form.q); }
                label { "Pending too" input type="checkbox" name="pending" value="1" checked[!form.pending.is_empty()]; }
                button type="submit" { "Search" }
            }
            p #result-count { strong { (if capped { format!("at least {count}") } else { count.to_string() }) } " matching events" }
            @if count > 0 { (histogram(&bars, &time(Some(lo)), &time(Some(hi)))) }
            table #results {
                thead { tr { th { "Event" } th { "Time" } th { "Kind" } th { "Process" } th { "What" } th { "" } } }
                tbody { @for r in shown { (result_row(r)) } }
            }
            p {
                @if form.page > 0 { a href=(format!("/search?{encoded}&page={}", form.page - 1)) { "Newer" } " " }
                @if more { a href=(format!("/search?{encoded}&page={}", form.page + 1)) { "Older" } }
            }
        },
    )
    .into_response()
}

fn result_row(r: StoredRecord) -> Markup {
    let view = record_view(r);
    let (when, process, what) = match &view.event {
        Some(e) => (
            time(Some(e.time.0)),
            format!("{} ({})", e.process.comm, e.process.pid),
            crate::store::columns::of_event(e)
                .summary
                .unwrap_or_default(),
        ),
        None => (time(Some(view.stored_ns)), String::new(), view.kind.clone()),
    };
    html! {
        tr {
            td { (event_link(&view.host, view.seq)) }
            td { (when) }
            td { (view.kind) }
            td { (process) }
            td { (what) }
            td { @if !view.verified { span.badge.warn { "pending" } } }
        }
    }
}
