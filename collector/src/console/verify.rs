//! "Verify this host now": the host's stored chain verified again ([`reverify`](crate::reverify)), the
//! result shown, logged in the audit log, and a failure raised as a `tamper` alert naming the first bad
//! record, so the fleet page turns the host red.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::json;

use crate::alerts::NewAlert;
use crate::console::ConsoleUser;
use crate::console::page::{event_link, page};
use crate::http::blocking::blocking;
use crate::http::{AppError, AppState};
use crate::reverify::reverify;
use crate::store::{NewAuditEntry, Rejection};

/// `POST /hosts/{host}/verify` (any role: it changes nothing but the log and raises what it finds).
pub(super) async fn verify(
    ConsoleUser(person, viewer): ConsoleUser,
    State(state): State<AppState>,
    Path(host): Path<String>,
) -> Response {
    let who = person.name().to_owned();
    let target = host.clone();
    let result = blocking(state.store(), move |store| {
        let Some(found) = reverify(store, &target)? else {
            return Ok(None);
        };
        let now = auditloop_model::WallTime::now().0;
        let detail = match &found.first_bad {
            None => json!({ "ok": true, "records": found.records, "signatures": found.signatures }),
            Some(b) => json!({ "ok": false, "records": found.records, "first_bad_seq": b.seq, "reason": b.reason }),
        };
        store.audit(&NewAuditEntry {
            time_ns: now,
            who: &who,
            action: "verify",
            target: &format!("host:{target}"),
            detail: detail.clone(),
        })?;
        if let Some(b) = &found.first_bad {
            let alert = NewAlert {
                kind: auditloop_protocol::api::AlertKind::Tamper,
                seq: Some(b.seq),
                detail: json!({ "found_by": "verify", "by": who, "first_bad_seq": b.seq, "reason": b.reason }),
            };
            crate::alerts::log(&target, &alert);
            store.reject(&Rejection {
                host: &target,
                alerts: std::slice::from_ref(&alert),
                now_ns: now,
            })?;
        }
        Ok(Some(found))
    })
    .await;
    let found = match result {
        Ok(Some(found)) => found,
        Ok(None) => return AppError::NotFound(format!("no host {host}")).into_response(),
        Err(e) => return e.into_response(),
    };
    page(
        &format!("Verify {host}"),
        "Fleet",
        Some(&viewer),
        html! {
            h1 { "Verify " (host) }
            @match &found.first_bad {
                None => div #verify-result .notice data-ok="true" {
                    "The stored chain verifies: " (found.records) " records, " (found.signatures) " checkpoint signatures." }
                Some(b) => div #verify-result .notice.bad data-ok="false" data-seq=(b.seq) {
                    "The first bad record is " (event_link(&host, b.seq)) ": " (b.reason) "." }
            }
            p { a href="/" { "Back to the fleet" } }
        },
    )
    .into_response()
}
