//! The HTTP API: the router, who may call what, and batch ingest.
//!
//! `POST /v1/hosts/{host}/batches` takes a batch from an agent; the `GET` query endpoints are in
//! [`crate::query`]. The token is checked before the body is read, and the body is bounded
//! (`--max-body-bytes`). Decoding, verification and storage run on blocking threads, one batch per host at a
//! time.

use std::sync::{Arc, PoisonError};

use auditloop_protocol::batch::Batch;
use auditloop_model::WallTime;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::auth::{Access, Tokens, bearer, valid_host_name};
use crate::error::AppError;
use crate::intake::{self, HostLocks, Receipt};
use crate::query;
use crate::store::{INDEX_LAG_ROWS, Store};

/// Default `--max-body-bytes`: 16 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    store: Arc<dyn Store>,
    tokens: Tokens,
    max_body_bytes: usize,
    locks: HostLocks,
}

impl AppState {
    /// State over `store`, accepting `tokens`, bounding batch bodies to `max_body_bytes`.
    pub fn new(store: Arc<dyn Store>, tokens: Tokens, max_body_bytes: usize) -> AppState {
        AppState {
            inner: Arc::new(Shared {
                store,
                tokens,
                max_body_bytes,
                locks: HostLocks::default(),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }
}

/// The collector's router.
pub fn app(state: AppState) -> Router {
    let limit = DefaultBodyLimit::max(state.inner.max_body_bytes);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/hosts/{host}/batches", post(post_batch).layer(limit))
        .route("/v1/hosts", get(query::hosts))
        .route("/v1/hosts/{host}", get(query::host))
        .route("/v1/events", get(query::events))
        .route("/v1/alerts", get(query::alerts))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

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
        match state
            .inner
            .tokens
            .host_access(&host, bearer(&parts.headers))
        {
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
        match state.inner.tokens.admin_access(bearer(&parts.headers)) {
            Access::Granted => Ok(AdminAccess),
            Access::Unauthorized => Err(AppError::Unauthorized(
                "missing or unknown bearer token".into(),
            )),
            Access::Forbidden => Err(AppError::Forbidden("queries need the admin token".into())),
        }
    }
}

async fn post_batch(
    State(state): State<AppState>,
    access: HostAccess,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Receipt>, AppError> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            AppError::TooLarge(format!("body exceeds {} bytes", state.inner.max_body_bytes))
        }
        status => AppError::Status(status, e.body_text()),
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let lock = state.inner.locks.of(&access.host);
    let store = Arc::clone(&state.inner.store);
    let receipt = tokio::task::spawn_blocking(move || -> Result<Receipt, AppError> {
        let batch =
            Batch::decode(&content_type, &body).map_err(|e| AppError::BadRequest(e.to_string()))?;
        let _one_at_a_time = lock.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(intake::receive(
            store.as_ref(),
            &access.host,
            &batch,
            WallTime::now().0,
        )?)
    })
    .await
    .map_err(|e| AppError::Internal(format!("ingest task: {e}")))??;
    if receipt.stored > 0 {
        // After answering: the search index catches up while the agent sends its next batch.
        let store = Arc::clone(&state.inner.store);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.index_pending(INDEX_LAG_ROWS) {
                tracing::warn!(error = %e, "search index not updated; will retry");
            }
        });
    }
    Ok(Json(receipt))
}

#[cfg(test)]
mod tests;
