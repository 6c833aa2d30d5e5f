//! The rules page's answers: a group's learned baseline and proposed rules (`GET /rules/learn`, with the
//! YAML to download), and a rules diff over stored events (`POST /rules/diff`, added and removed alerts per
//! rule with examples). Both run the API's own work ([`crate::http::rules`]); an error is shown above the
//! forms, filled in as they were sent.

use auditloop_protocol::api::rules::{DiffRequest, RULES_LEARN_YAML};
use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::console::ConsoleUser;
use crate::console::page::{event_link, field, page, query_string, time};
use crate::console::rules::{Choice, diff_form, learn_form};
use crate::http::rules::{DiffAnswer, LearnAnswer, LearnParams, run_diff, run_learn};
use crate::http::{AppError, AppState};

/// The learn form's fields.
#[derive(Clone, Debug, Default, Deserialize)]
pub(super) struct LearnForm {
    #[serde(default)]
    group: String,
    #[serde(default)]
    hosts: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
}

/// The diff form's fields.
#[derive(Clone, Debug, Default, Deserialize)]
pub(super) struct DiffForm {
    #[serde(default)]
    old: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    hosts: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    examples: String,
}

/// `GET /rules/learn`.
pub(super) async fn learn(
    ConsoleUser(_, viewer): ConsoleUser,
    State(state): State<AppState>,
    Query(form): Query<LearnForm>,
) -> Response {
    let choice = Choice {
        group: form.group.trim().to_owned(),
        hosts: form.hosts.trim().to_owned(),
        since: form.since.trim().to_owned(),
        until: form.until.trim().to_owned(),
        examples: String::new(),
    };
    let params = LearnParams {
        group: field(&form.group),
        hosts: field(&form.hosts),
        since: field(&form.since),
        until: field(&form.until),
        ..LearnParams::default()
    };
    let answer = run_learn(&state, params).await;
    let status = answer.as_ref().err().map(AppError::status);
    let body = match &answer {
        Ok(a) => learned(a, &choice),
        Err(e) => html! { p.error #learn-error { (e.to_string()) } },
    };
    let yaml = answer
        .as_ref()
        .map(|a| a.proposal.yaml.as_str())
        .unwrap_or("");
    let markup = page(
        "Learn",
        "Rules",
        Some(&viewer),
        html! {
            h1 { "Learn a baseline" }
            (body)
            (learn_form(state.groups(), &choice))
            (diff_form(&viewer, state.groups(), &choice, "", yaml))
        },
    );
    match status {
        Some(status) => (status, markup).into_response(),
        None => markup.into_response(),
    }
}

fn learned(a: &LearnAnswer, c: &Choice) -> Markup {
    let download = format!(
        "{RULES_LEARN_YAML}?{}",
        query_string(&[
            ("group", &c.group),
            ("hosts", &c.hosts),
            ("since", &c.since),
            ("until", &c.until),
        ])
    );
    let b = &a.baseline;
    html! {
        p #learn-summary {
            "Learned from " strong { (a.events) } " events of " (a.selection) " ("
            (a.hosts.len()) " hosts), " (time(b.first.map(|t| t.0))) " .. " (time(b.last.map(|t| t.0)))
            ": " strong { (a.proposal.rules.len()) } " rules proposed. "
            a #learn-download href=(download) { "Download learned.yaml" }
        }
        @if a.truncated {
            p.notice.bad #learn-truncated {
                "Truncated: the read stopped at " (a.max_events) " events; hosts with 0 events below were not read."
            }
        }
        table #learn-hosts {
            thead { tr { th { "Host" } th.num { "Events" } } }
            tbody { @for h in &a.hosts { tr { td { (h.host) } td.num { (h.events) } } } }
        }
        p.mute {
            (b.parents) " parents starting programs (" (b.execs) " execs, " (b.execs_unknown_parent) " without a known parent), "
            (b.config_paths) " config paths written, " (b.connecting_programs) " programs connecting out, "
            (b.listeners) " listeners, " (b.servers) " servers, " (b.sensitive_paths) " sensitive paths read."
        }
        table #learn-rules {
            thead { tr { th { "Rule" } th { "Flags" } th { "Subjects" } th.num { "Normal values" } th.num { "Support" } th { "First" } th { "Last" } } }
            tbody { @for r in &a.proposal.rules { tr data-rule=(r.name) {
                td { (r.name) } td { (r.flags) } td { (r.subjects.join(", ")) } td.num { (r.values) }
                td.num { (r.support) } td { (time(r.first.map(|t| t.0))) } td { (time(r.last.map(|t| t.0))) }
            } } }
        }
        @if !a.proposal.skipped.is_empty() {
            h2 { "Left out" }
            ul #learn-skipped { @for s in &a.proposal.skipped { li { code { (s.subject) } ": " (s.why) } } }
        }
        h2 { "learned.yaml" }
        pre #learn-yaml { (a.proposal.yaml) }
    }
}

/// `POST /rules/diff`.
pub(super) async fn diff(
    ConsoleUser(_, viewer): ConsoleUser,
    State(state): State<AppState>,
    Form(form): Form<DiffForm>,
) -> Response {
    let choice = Choice {
        group: form.group.trim().to_owned(),
        hosts: form.hosts.trim().to_owned(),
        since: form.since.trim().to_owned(),
        until: form.until.trim().to_owned(),
        examples: form.examples.trim().to_owned(),
    };
    let answer = match request(&form) {
        Ok(request) => run_diff(&state, request).await,
        Err(e) => Err(e),
    };
    let status = answer.as_ref().err().map(AppError::status);
    let body = match &answer {
        Ok(a) => diffed(a),
        Err(e) => html! { pre.error #diff-error { (e.to_string()) } },
    };
    let markup = page(
        "Rules diff",
        "Rules",
        Some(&viewer),
        html! {
            h1 { "Rules diff" }
            (body)
            (diff_form(&viewer, state.groups(), &choice, &form.old, &form.new))
            (learn_form(state.groups(), &choice))
        },
    );
    match status {
        Some(status) => (status, markup).into_response(),
        None => markup.into_response(),
    }
}

fn request(form: &DiffForm) -> Result<DiffRequest, AppError> {
    let examples = field(&form.examples)
        .map(|e| {
            e.parse::<usize>()
                .map_err(|_| AppError::BadRequest(format!("examples: not a number: {e:?}")))
        })
        .transpose()?;
    Ok(DiffRequest {
        old: form.old.clone(),
        new: form.new.clone(),
        group: field(&form.group),
        hosts: field(&form.hosts),
        since: field(&form.since),
        until: field(&form.until),
        examples,
        max_events: None,
    })
}

fn diffed(a: &DiffAnswer) -> Markup {
    let r = &a.report;
    html! {
        p #diff-summary {
            strong { (r.events) } " events of " (a.selection) " (" (a.hosts.len()) " hosts) replayed: "
            strong { "+" (r.added) } " alerts added, " strong { "-" (r.removed) } " removed, "
            (r.unchanged) " unchanged."
        }
        @if a.truncated {
            p.notice.bad #diff-truncated { "Truncated: the replay stopped at " (a.max_events) " events." }
        }
        @if r.rules.is_empty() { p.mute { "No rule's alerts change." } }
        table #diff-rules {
            thead { tr { th { "Rule" } th { "Status" } th.num { "Added" } th.num { "Removed" } th.num { "Unchanged" } th { "Examples" } } }
            tbody { @for d in &r.rules { tr data-rule=(d.rule) {
                td { (d.rule) }
                td { (status_name(d.status)) }
                td.num { "+" (d.added) }
                td.num { "-" (d.removed) }
                td.num { (d.unchanged) }
                td {
                    @for (sign, examples) in [("+", &d.added_examples), ("-", &d.removed_examples)] {
                        @for e in examples {
                            div { (sign) " " (event_link(&e.host, e.seq)) " " span.mute { (e.time.to_string()) } " " (e.output) }
                        }
                    }
                }
            } } }
        }
    }
}

fn status_name(s: auditloop_learn::RuleStatus) -> &'static str {
    match s {
        auditloop_learn::RuleStatus::Added => "new rule",
        auditloop_learn::RuleStatus::Removed => "rule removed",
        auditloop_learn::RuleStatus::Kept => "changed",
    }
}

#[cfg(test)]
mod tests;
