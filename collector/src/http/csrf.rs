//! The CSRF guard: a request that may change something (any method but `GET`, `HEAD` and `OPTIONS`)
//! made with a console session cookie must carry that session's CSRF token, in the header
//! [`CSRF_HEADER`](crate::session::CSRF_HEADER) or as the `csrf` field of a URL-encoded form; otherwise it
//! is refused with 403 before any handler runs. Requests with a bearer token, or with no valid session
//! (which handlers then refuse with 401), pass through: a browser never adds a bearer token by itself.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::access::session_of;
use crate::http::state::AppState;
use crate::session::{CSRF_FIELD, CSRF_HEADER, csrf_ok};

/// Largest form body read to find its CSRF field: the rules diff form carries two rules files (only
/// requests with a valid session are read at all).
const MAX_FORM: usize = auditloop_protocol::api::rules::MAX_DIFF_BODY;

/// Refuses a cookie-authenticated state change without its session's CSRF token.
pub async fn csrf_guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) || request.headers().contains_key(AUTHORIZATION)
    {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Some((cookie, _)) = session_of(&parts, &state) else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let key = state.session_key();
    if let Some(token) = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        return if csrf_ok(&key, &cookie, token) {
            next.run(Request::from_parts(parts, body)).await
        } else {
            refused()
        };
    }
    let form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return refused();
    }
    let Ok(bytes) = to_bytes(body, MAX_FORM).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response();
    };
    let token = form_field(&bytes, CSRF_FIELD);
    if token.is_some_and(|t| csrf_ok(&key, &cookie, &t)) {
        next.run(Request::from_parts(parts, Body::from(bytes)))
            .await
    } else {
        refused()
    }
}

/// The value of `name` in a URL-encoded form.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        axum::Json(auditloop_protocol::api::ErrorBody {
            error: "this request needs the session's CSRF token (form field csrf or header x-csrf-token)"
                .into(),
            expected_seq: None,
            damage: None,
        }),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::form_field;

    #[test]
    fn form_fields_decode() {
        assert_eq!(
            form_field(b"a=1&csrf=ab%2Bc+d", "csrf").as_deref(),
            Some("ab+c d")
        );
        assert_eq!(form_field(b"csrf=", "csrf").as_deref(), Some(""));
        assert_eq!(form_field(b"x=1", "csrf"), None);
    }
}
