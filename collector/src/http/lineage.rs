//! `GET /v1/lineage?host=&seq=&pending=` (admin token): the lineage of one stored event across hosts,
//! answered with the protocol's [`LineageAnswer`] (see [`crate::lineage`]).
//!
//! `host` and `seq` are required; verified records only unless `pending=true`, as for `/v1/events`. An
//! unknown host or seq (or a pending record without `pending=true`) is a 404; a record that is not an event
//! a 400.

use auditloop_protocol::api::lineage::LineageAnswer;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;

use crate::http::access::ViewAccess;
use crate::http::error::AppError;
use crate::http::queries::{flag, given, number};
use crate::http::state::AppState;
use crate::lineage::{LineageError, lineage as walk_lineage};

/// Parameters of `GET /v1/lineage`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(super) struct LineageParams {
    host: Option<String>,
    seq: Option<String>,
    pending: Option<String>,
}

/// `GET /v1/lineage`.
pub(super) async fn lineage(
    _: ViewAccess,
    State(state): State<AppState>,
    params: Result<Query<LineageParams>, QueryRejection>,
) -> Result<Json<LineageAnswer>, AppError> {
    let Query(p) = params.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let host = given(p.host).ok_or_else(|| AppError::BadRequest("host is required".into()))?;
    let seq = number::<u64>("seq", p.seq.as_deref())?
        .ok_or_else(|| AppError::BadRequest("seq is required".into()))?;
    let pending = flag("pending", p.pending.as_deref())?;
    let store = std::sync::Arc::clone(state.store());
    let options = state.lineage_options().clone();
    let answer = tokio::task::spawn_blocking(move || {
        walk_lineage(store.as_ref(), &host, seq, pending, &options)
    })
    .await
    .map_err(|e| AppError::Internal(format!("lineage task: {e}")))?;
    answer.map(Json).map_err(|e| match e {
        LineageError::NotFound { .. } => AppError::NotFound(e.to_string()),
        LineageError::NotAnEvent { .. } => AppError::BadRequest(e.to_string()),
        LineageError::Store(e) => e.into(),
    })
}

#[cfg(test)]
mod tests;
