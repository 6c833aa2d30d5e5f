//! The rules page: hits per rule over the last day and per host, noisiest first, the rules hosts loaded
//! that never fired (exported as JSON and CSV for tuning), each rule's triggering events as JSON lines
//! (`auditloop rules test --events`), and the forms of a group's learn and of a rules diff over stored
//! events (answered by `tuning.rs`).

use auditloop_journal::record::{Payload, decode_payload};
use auditloop_protocol::api::fleet::AlertSource;
use auditloop_protocol::api::rules::{DEFAULT_EXAMPLES, RULES_STATS, RULES_STATS_CSV};
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use crate::console::ConsoleUser;
use crate::console::page::{Viewer, page, sparkline, time, urlencode};
use crate::groups::HostGroups;
use crate::http::AppState;
use crate::http::blocking::blocking;
use crate::store::FleetQuery;
use crate::tuning::{Window, statistics};

/// Triggering events downloaded per rule at most.
const READ: u32 = 100_000;

/// `GET /rules`.
pub(super) async fn rules(
    ConsoleUser(_, viewer): ConsoleUser,
    State(state): State<AppState>,
) -> Response {
    let now = auditloop_model::WallTime::now().0;
    let stats = match blocking(state.store(), move |s| {
        statistics(s, now, Window::default(), None)
    })
    .await
    {
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
            p.mute {
                "Export for tuning: "
                a #stats-json href=(RULES_STATS) { "JSON" } " · "
                a #stats-csv href=(RULES_STATS_CSV) { "CSV" }
                @if stats.truncated { " (the newest " (stats.alerts_read) " rule alerts only)" }
            }
            table #rule-hits {
                thead { tr { th { "Rule" } th.num { "Hits" } th { "Last 24 h" } th { "Hosts" } th { "Last" } th { "" } } }
                tbody { @for r in &stats.rules { tr data-rule=(r.rule) {
                    td { a href=(format!("/alerts?rule={}", urlencode(&r.rule))) { (r.rule) } }
                    td.num { (r.hits) }
                    td { (sparkline(&r.last_24h)) }
                    td { @for h in &r.hosts { (h.host) " (" (h.hits) ") " } }
                    td { (time(Some(r.last.0))) }
                    td { a href=(format!("/rules/{}/events.jsonl", urlencode(&r.rule))) { "events.jsonl" } }
                } } }
            }
            h2 { "Loaded and never fired" }
            @if stats.never_fired.is_empty() { p.mute { "None (or no host has reported its rule names yet)." } }
            ul #never-fired { @for r in &stats.never_fired { li { (r) } } }
            (learn_form(state.groups(), &Choice::default()))
            (diff_form(&viewer, state.groups(), &Choice::default(), "", ""))
        },
    )
    .into_response()
}

/// The hosts and window a learn or diff form chose, as typed.
#[derive(Clone, Debug, Default)]
pub(super) struct Choice {
    /// Host group.
    pub group: String,
    /// Host-name pattern.
    pub hosts: String,
    /// Window start.
    pub since: String,
    /// Window end.
    pub until: String,
    /// Examples per rule (diff only).
    pub examples: String,
}

fn choice_fields(groups: &HostGroups, c: &Choice) -> Markup {
    html! {
        label { "Group"
            select name="group" {
                option value="" selected[c.group.is_empty()] { "(none: hosts pattern only)" }
                @for g in groups.names() { option value=(g) selected[c.group == g] { (g) } }
            }
        }
        label { "Hosts" input name="hosts" value=(c.hosts) placeholder="web-* (within the group)"; }
        label { "Since" input name="since" value=(c.since) placeholder="RFC 3339 or ns"; }
        label { "Until" input name="until" value=(c.until); }
    }
}

/// The learn form (`GET /rules/learn`).
pub(super) fn learn_form(groups: &HostGroups, c: &Choice) -> Markup {
    html! {
        h2 { "Learn a baseline" }
        p.mute { "Proposes alert-only rules that flag departures from what the chosen hosts' stored events show." }
        form.filters #learn-form method="get" action="/rules/learn" {
            (choice_fields(groups, c))
            button type="submit" { "Learn" }
        }
    }
}

/// The diff form (`POST /rules/diff`).
pub(super) fn diff_form(
    viewer: &Viewer,
    groups: &HostGroups,
    c: &Choice,
    old: &str,
    new: &str,
) -> Markup {
    let examples = if c.examples.is_empty() {
        DEFAULT_EXAMPLES.to_string()
    } else {
        c.examples.clone()
    };
    html! {
        h2 { "Diff a rule change" }
        p.mute { "Replays the chosen hosts' stored events through both rule files: the alerts the change adds and removes, per rule." }
        form #diff-form method="post" action="/rules/diff" {
            (viewer.csrf_field())
            div.filters {
                label { "Current rules (old)" textarea name="old" rows="12" cols="70" { (old) } }
                label { "Changed rules (new)" textarea name="new" rows="12" cols="70" { (new) } }
            }
            div.filters {
                (choice_fields(groups, c))
                label { "Examples" input name="examples" value=(examples) size="3"; }
                button type="submit" { "Diff" }
            }
        }
    }
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
