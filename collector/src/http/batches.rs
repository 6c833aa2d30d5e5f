//! `POST /v1/hosts/{host}/batches`: a batch from an agent, answered with a
//! [`BatchReceipt`].
//!
//! The token is checked before the body is read ([`HostAccess`]: only the host's own token passes) and the
//! body is bounded (`--max-body-bytes`, 413 beyond). Decoding, verification and storage are ingest's, on a
//! blocking thread.

use std::time::Instant;

use auditloop_protocol::api::BatchReceipt;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::http::access::HostAccess;
use crate::http::error::AppError;
use crate::http::limit::refused_a_place;
use crate::http::state::AppState;
use crate::ingest::Sender;
use crate::metrics::{self, Refusal};

/// When a batch request arrived (set by [`stamp_arrival`], the route's outermost layer).
#[derive(Clone, Copy, Debug)]
pub(super) struct Arrival(Instant);

/// Notes when a batch request arrived, before its token is checked or its body read.
pub(super) async fn stamp_arrival(mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(Arrival(Instant::now()));
    next.run(request).await
}

/// Receives one batch of the host in the path.
pub(super) async fn post_batch(
    State(state): State<AppState>,
    access: HostAccess,
    arrival: Option<axum::Extension<Arrival>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BatchReceipt>, AppError> {
    let body = body.map_err(|e| {
        // A body refused a place is answered (and counted) 429 by the limit.
        if !refused_a_place(&e) {
            metrics::refused(match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => Refusal::TooLarge,
                _ => Refusal::BadRequest,
            });
        }
        match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                AppError::TooLarge(format!("body exceeds {} bytes", state.max_body_bytes()))
            }
            status => AppError::Status(status, e.body_text()),
        }
    })?;
    metrics::bytes_received(body.len());
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
    .map_err(|e| {
        metrics::failed();
        AppError::Internal(format!("ingest task: {e}"))
    })??;
    if let Some(axum::Extension(Arrival(at))) = arrival {
        metrics::ingest_time(at.elapsed());
    }
    Ok(Json(receipt))
}

#[cfg(test)]
mod forgery;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod throughput;
