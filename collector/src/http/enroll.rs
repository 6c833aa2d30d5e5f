//! Enrollment: `POST /v1/enroll` (enrollment or admin token) creates a new host pinned to its journal's
//! genesis public key; `POST /v1/hosts` (admin token) does the same, or with `replace` re-enrolls a host.
//! Both answer 201 with the host's new token, shown only this once: the store keeps only its digest.
//!
//! An id that is taken is a 409 `host_exists` and nothing more, whoever asks and whatever key they name:
//! only the admin re-enrolls a host.

use auditloop_journal::keys::parse_public_key;
use auditloop_model::WallTime;
use auditloop_protocol::api::{EnrollRequest, EnrollResponse, HostRegistration};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;

use crate::auth::{HostToken, valid_host_name};
use crate::http::access::{AdminAccess, EnrollAccess};
use crate::http::blocking::blocking;
use crate::http::error::AppError;
use crate::http::state::AppState;
use crate::store::Enrollment;

/// Largest enrollment body accepted, in bytes.
pub const MAX_ENROLL_BODY: usize = 16 * 1024;

/// `POST /v1/enroll`: creates a new host.
pub(super) async fn enroll(
    State(state): State<AppState>,
    EnrollAccess(who): EnrollAccess,
    body: Result<Json<EnrollRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<EnrollResponse>), AppError> {
    let Json(request) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let answer = create(&state, &request.host_id, &request.genesis_public_key, false).await?;
    tracing::info!(host = request.host_id, by = who.name(), "host enrolled");
    Ok(answer)
}

/// `POST /v1/hosts`: registers a host, or re-enrolls it with `replace`.
pub(super) async fn register(
    _: AdminAccess,
    State(state): State<AppState>,
    body: Result<Json<HostRegistration>, JsonRejection>,
) -> Result<(StatusCode, Json<EnrollResponse>), AppError> {
    let Json(request) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let answer = create(
        &state,
        &request.host_id,
        &request.genesis_public_key,
        request.replace,
    )
    .await?;
    tracing::info!(
        host = request.host_id,
        replace = request.replace,
        "host registered by the admin"
    );
    Ok(answer)
}

/// Checks the request, makes a token and stores the host.
async fn create(
    state: &AppState,
    host: &str,
    key: &str,
    replace: bool,
) -> Result<(StatusCode, Json<EnrollResponse>), AppError> {
    if !valid_host_name(host) {
        return Err(AppError::BadRequest(format!(
            "host_id {host:?} is not a valid host name (1 to 253 of A-Z a-z 0-9 . _ -)"
        )));
    }
    if key.len() != 64 {
        return Err(AppError::BadRequest(format!(
            "genesis_public_key must be 64 hex digits (`auditloop key show`), got {} characters",
            key.len()
        )));
    }
    let genesis_key = parse_public_key(key)
        .map_err(|e| AppError::BadRequest(format!("genesis_public_key: {e}")))?;
    let token = HostToken::generate().map_err(|e| AppError::Internal(e.to_string()))?;
    let digest = token.digest;
    let name = host.to_owned();
    blocking(state.store(), move |store| {
        store.enroll(&Enrollment {
            host: &name,
            genesis_key,
            token_digest: digest,
            replace,
            now_ns: WallTime::now().0,
        })
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(EnrollResponse {
            host_id: host.to_owned(),
            token: token.token,
        }),
    ))
}

#[cfg(test)]
mod tests;
