//! `POST /v1/hosts/{host}/batches`: a batch from an agent, answered with a
//! [`BatchReceipt`].
//!
//! The token is checked before the body is read ([`HostAccess`]: only the host's own token passes) and the
//! body is bounded (`--max-body-bytes`, 413 beyond). Decoding, verification and storage are ingest's, on a
//! blocking thread.

use auditloop_protocol::api::BatchReceipt;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};

use crate::http::access::HostAccess;
use crate::http::error::AppError;
use crate::http::state::AppState;
use crate::ingest::Sender;

/// Receives one batch of the host in the path.
pub(super) async fn post_batch(
    State(state): State<AppState>,
    access: HostAccess,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BatchReceipt>, AppError> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            AppError::TooLarge(format!("body exceeds {} bytes", state.max_body_bytes()))
        }
        status => AppError::Status(status, e.body_text()),
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let receipt = tokio::task::spawn_blocking(move || {
        let sender = Sender {
            host: &access.host,
            peer: &access.peer,
        };
        state.ingest().receive_body(&sender, &content_type, &body)
    })
    .await
    .map_err(|e| AppError::Internal(format!("ingest task: {e}")))??;
    Ok(Json(receipt))
}

#[cfg(test)]
mod forgery;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod throughput;
