//! The web console, served by the collector on its API port: fleet health, the live alert feed, search,
//! one event with its process tree and chain position, rule statistics, a host group's learned rules and
//! rules diffs over stored events, and holds.
//!
//! Pages are rendered on the server (maud) from the same [`Store`](crate::store::Store) queries the JSON API
//! uses, and change things only through plain HTML forms (each carrying the session's CSRF token, checked by
//! [`csrf_guard`](crate::http::csrf_guard)). The one script (`assets/console.js`, embedded in the binary like
//! the stylesheet) streams new alerts into the alerts page over server-sent events. Nothing is fetched from
//! anywhere else, so the console works offline.
//!
//! Every page needs a login (`login.rs`): without a session a page redirects to `/login`, and the
//! form handlers answer 401. Viewers see everything and change nothing; approvers and admins may also
//! acknowledge and resolve alerts and decide holds.

mod alerts;
mod event;
mod fleet;
mod holds;
mod login;
mod page;
mod rules;
mod search;
mod tuning;
mod verify;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::http::{AppState, Person};
use crate::session::csrf_token;

pub use page::Viewer;

/// The console's router over `state`, behind the CSRF guard (merge it beside [`http::app`](crate::http::app)).
pub fn router(state: AppState) -> Router {
    routes()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::http::csrf_guard,
        ))
        .with_state(state)
}

/// The console's routes.
fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(fleet::fleet))
        .route("/login", get(login::form).post(login::login))
        .route("/logout", post(login::logout))
        .route("/alerts", get(alerts::list))
        .route("/alerts/feed", get(alerts::feed))
        .route("/alerts/{id}", get(alerts::one))
        .route("/alerts/{id}/state", post(alerts::change))
        .route("/search", get(search::search))
        .route("/event/{host}/{seq}", get(event::event))
        .route("/hosts/{host}/verify", post(verify::verify))
        .route("/rules", get(rules::rules))
        .route("/rules/learn", get(tuning::learn))
        .route("/rules/diff", post(tuning::diff))
        .route("/rules/{rule}/events.jsonl", get(rules::download))
        .route("/holds", get(holds::list))
        .route("/holds/{host}/{id}/verdict", post(holds::decide))
        .route("/assets/console.js", get(script))
}

async fn script(_: ConsoleUser) -> Response {
    (
        [(CONTENT_TYPE, "text/javascript; charset=utf-8")],
        page::SCRIPT,
    )
        .into_response()
}

/// A person viewing a console page; without a session (or a person's bearer token) the page redirects to
/// `/login`.
#[derive(Clone, Debug)]
pub struct ConsoleUser(pub Person, pub Viewer);

impl FromRequestParts<AppState> for ConsoleUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match Person::from_request_parts(parts, state).await {
            Ok(person) => {
                let csrf = person
                    .session
                    .as_deref()
                    .map(|s| csrf_token(&state.session_key(), s))
                    .unwrap_or_default();
                let viewer = Viewer {
                    role: person.role,
                    csrf,
                };
                Ok(ConsoleUser(person, viewer))
            }
            Err(crate::http::AppError::Unauthorized(_)) => {
                Err(Redirect::to("/login").into_response())
            }
            Err(e) => Err(e.into_response()),
        }
    }
}
