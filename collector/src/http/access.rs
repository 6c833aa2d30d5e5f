//! Who may call what: extractors that check the bearer token before a handler runs (and before a batch
//! body is read).

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use crate::auth::{Access, bearer, valid_host_name};
use crate::http::error::AppError;
use crate::http::state::AppState;

/// A request whose token may ship batches for the host in its path.
#[derive(Clone, Debug)]
pub struct HostAccess {
    /// The host.
    pub host: String,
}

impl FromRequestParts<AppState> for HostAccess {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Path(host) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| AppError::BadRequest(e.body_text()))?;
        match state.tokens().host_access(&host, bearer(&parts.headers)) {
            Access::Granted => {}
            Access::Unauthorized => {
                return Err(AppError::Unauthorized(
                    "missing or unknown bearer token".into(),
                ));
            }
            Access::Forbidden => {
                return Err(AppError::Forbidden(format!(
                    "this token may not ship batches for host {host}"
                )));
            }
        }
        if !valid_host_name(&host) {
            return Err(AppError::BadRequest(format!(
                "invalid host name {host:?} (1 to 253 of A-Z a-z 0-9 . _ -)"
            )));
        }
        Ok(HostAccess { host })
    }
}

/// A request carrying the admin token.
#[derive(Clone, Copy, Debug)]
pub struct AdminAccess;

impl FromRequestParts<AppState> for AdminAccess {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        match state.tokens().admin_access(bearer(&parts.headers)) {
            Access::Granted => Ok(AdminAccess),
            Access::Unauthorized => Err(AppError::Unauthorized(
                "missing or unknown bearer token".into(),
            )),
            Access::Forbidden => Err(AppError::Forbidden("queries need the admin token".into())),
        }
    }
}
