//! Logging in and out: a person's token (admin, approver or viewer) exchanged for a session cookie.

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use crate::auth::{Role, digest};
use crate::console::page::page;
use crate::http::AppState;
use crate::session::{clear_cookie, issue, set_cookie};

/// The login form's fields.
#[derive(Deserialize)]
pub(super) struct LoginForm {
    token: String,
}

fn login_page(error: Option<&str>) -> maud::Markup {
    page(
        "Log in",
        "",
        None,
        html! {
            form.login method="post" action="/login" {
                h1 { "Log in to the collector" }
                @if let Some(e) = error { p.error { (e) } }
                label for="token" { "Admin, approver or viewer token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button type="submit" { "Log in" }
            }
        },
    )
}

/// `GET /login`.
pub(super) async fn form() -> maud::Markup {
    login_page(None)
}

/// `POST /login`: a person's token sets the session cookie and goes to the fleet page; any other token is
/// refused (401) with the form again.
pub(super) async fn login(State(state): State<AppState>, Form(form): Form<LoginForm>) -> Response {
    let identity = state.tokens().identify(&digest(form.token.trim()));
    let Some(role) = identity.as_ref().and_then(Role::of) else {
        return (
            StatusCode::UNAUTHORIZED,
            login_page(Some("That is not an admin, approver or viewer token.")),
        )
            .into_response();
    };
    let now = auditloop_model::WallTime::now().0;
    let Some(value) = issue(&state.session_key(), role, now) else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the random source failed",
        )
            .into_response();
    };
    tracing::info!(role = role.as_str(), "console login");
    (
        [(SET_COOKIE, set_cookie(&value, state.serves_tls()))],
        Redirect::to("/"),
    )
        .into_response()
}

/// `POST /logout`: clears the cookie.
pub(super) async fn logout() -> Response {
    ([(SET_COOKIE, clear_cookie())], Redirect::to("/login")).into_response()
}
