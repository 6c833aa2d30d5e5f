//! One event: all its fields, its process's ancestry and children as a tree, the alerts and actions it
//! caused, its place in the host's chain, and "verify this host now".

use auditloop_journal::record::{Payload, decode_payload};
use auditloop_model::{EventBody, EventKind};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use crate::console::ConsoleUser;
use crate::console::page::{badge, event_link, page, severity_class, time, urlencode};
use crate::http::blocking::blocking;
use crate::http::views::record_view;
use crate::http::{AppError, AppState};
use crate::lineage::lineage;
use crate::store::{EventQuery, FleetQuery};

/// Children listed at most.
const CHILDREN: u32 = 200;

/// A child process: its pid, and its exec (seq, filename) when one was stored.
struct Child {
    pid: u32,
    fork_seq: u64,
    exec: Option<(u64, String)>,
}

/// `GET /event/{host}/{seq}`.
pub(super) async fn event(
    ConsoleUser(_, viewer): ConsoleUser,
    State(state): State<AppState>,
    Path((host, seq)): Path<(String, u64)>,
) -> Response {
    let options = state.lineage_options().clone();
    let h = host.clone();
    let found = blocking(state.store(), move |store| {
        let Some(record) = store.record(&h, seq)? else {
            return Ok(None);
        };
        let hash = store
            .stored_hashes(&h, seq, seq)?
            .first()
            .map(|(_, hash)| *hash);
        let host_record = store.host_record(&h)?;
        let event = match decode_payload(&record.payload) {
            Ok(Payload::Event(e)) => Some(e),
            Ok(_) | Err(_) => None,
        };
        let tree = match &event {
            Some(_) => lineage(store, &h, seq, true, &options).ok(),
            None => None,
        };
        let mut children = Vec::new();
        if let Some(e) = &event {
            let forks = store.records(&EventQuery {
                host: Some(h.clone()),
                kind: Some(EventKind::Fork.as_str().to_owned()),
                pid: Some(e.process.pid),
                since_ns: e.process.start.map(|t| t.0),
                pending: true,
                limit: CHILDREN,
                ..EventQuery::default()
            })?;
            for f in forks {
                let Ok(Payload::Event(fe)) = decode_payload(&f.payload) else {
                    continue;
                };
                let EventBody::Fork(fork) = &fe.event else {
                    continue;
                };
                if fork.thread || fe.process.start != e.process.start {
                    continue;
                }
                let exec = store
                    .records(&EventQuery {
                        host: Some(h.clone()),
                        kind: Some(EventKind::Exec.as_str().to_owned()),
                        pid: Some(fork.child_pid),
                        since_ns: Some(fe.time.0),
                        pending: true,
                        limit: 1,
                        ..EventQuery::default()
                    })?
                    .into_iter()
                    .find_map(|x| match decode_payload(&x.payload) {
                        Ok(Payload::Event(xe)) => {
                            if let EventBody::Exec(ex) = &xe.event {
                                Some((x.seq, ex.filename.clone()))
                            } else {
                                None
                            }
                        }
                        Ok(_) | Err(_) => None,
                    });
                children.push(Child {
                    pid: fork.child_pid,
                    fork_seq: f.seq,
                    exec,
                });
            }
        }
        let caused = store.fleet_alerts(&FleetQuery {
            host: Some(h.clone()),
            trigger_seq: Some(seq),
            limit: 100,
            ..FleetQuery::default()
        })?;
        Ok(Some((
            record_view(record),
            hash,
            host_record,
            tree,
            children,
            caused,
        )))
    })
    .await;
    let (view, hash, host_record, tree, children, caused) = match found {
        Ok(Some(found)) => found,
        Ok(None) => {
            return AppError::NotFound(format!("no record {seq} of host {host}")).into_response();
        }
        Err(e) => return e.into_response(),
    };
    let fields = view
        .event
        .as_ref()
        .map(|e| serde_json::to_string_pretty(e).unwrap_or_default())
        .or_else(|| view.record.as_ref().map(|r| r.to_string()))
        .unwrap_or_else(|| view.error.clone().unwrap_or_default());
    let last = host_record
        .as_ref()
        .map_or(0, |r| r.next_seq.saturating_sub(1));
    page(
        &format!("{host} #{seq}"),
        "Search",
        Some(&viewer),
        html! {
            h1 { (view.kind) " event " (host) " #" (seq) }
            h2 { "Chain position" }
            table #chain { tbody {
                tr { th { "Sequence number" } td { (seq) " of " (last) } }
                tr { th { "Hash" } td { code { (hash.map(hex::encode).unwrap_or_default()) } } }
                tr { th { "Verified" } td { @if view.verified { (badge("verified", "ok")) " by the checkpoint stored " (time(view.verified_ns)) } @else { (badge("pending", "warn")) } } }
                tr { th { "Stored" } td { (time(Some(view.stored_ns))) } }
                tr { th { "Neighbours" } td {
                    @if seq > 1 { a href=(format!("/event/{}/{}", urlencode(&host), seq - 1)) { "previous" } " " }
                    @if seq < last { a href=(format!("/event/{}/{}", urlencode(&host), seq + 1)) { "next" } } } }
            } }
            form method="post" action=(format!("/hosts/{}/verify", urlencode(&host))) {
                (viewer.csrf_field())
                button #verify-now type="submit" { "Verify this host now" }
            }
            h2 { "Alerts and actions it caused" }
            @if caused.is_empty() { p.mute { "None." } }
            ul #caused { @for a in &caused { li {
                a href=(format!("/alerts/{}", a.id)) { (a.rule) } " " (badge(a.severity.as_str(), severity_class(a.severity.as_str())))
                " " (a.state.as_str())
                @for x in &a.actions { " " (badge(&x.action, if x.ok { "ok" } else { "bad" })) " " span.mute { (x.detail) } }
            } } }
            h2 { "Process tree" }
            @match &tree {
                Some(t) => (process_tree(&host, &t.lineage, &children)),
                None => p.mute { "Not an event." },
            }
            h2 { "Fields" }
            pre #fields { (fields) }
        },
    )
    .into_response()
}

fn process_tree(
    host: &str,
    l: &auditloop_protocol::api::lineage::Lineage,
    children: &[Child],
) -> Markup {
    let describe = |p: &auditloop_protocol::api::lineage::LineageProcess| -> Markup {
        html! {
            strong { (if p.comm.is_empty() { "?" } else { &p.comm }) } " pid " (p.pid) " "
            span.mute { (p.exe) " " (p.argv.join(" ")) }
            @if let Some(s) = p.exec_seq { " " (event_link(host, s)) }
        }
    };
    // Ancestors come parent first; the tree shows the eldest at the top.
    let chain: Vec<_> = l.ancestors.iter().rev().collect();
    html! {
        ul.tree #tree {
            @for a in &chain { li { (describe(a)) } }
            li.self { "▶ " (describe(&l.process))
                ul.tree #children {
                    @if children.is_empty() { li.mute { "no child processes stored" } }
                    @for c in children { li {
                        "pid " (c.pid) " forked " (event_link(host, c.fork_seq))
                        @if let Some((s, f)) = &c.exec { " exec " (f) " " (event_link(host, *s)) }
                    } }
                }
            }
        }
        p.mute { "Ancestry ends: " (format!("{:?}", l.ancestry_end)) }
    }
}
