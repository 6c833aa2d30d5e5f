//! The collector's router: every route of `auditloop_protocol::api` and its handler.

use auditloop_protocol::api::{ALERTS, BATCHES, ENROLL, EVENTS, HEALTHZ, HOST, HOSTS, LINEAGE};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::http::batches::{post_batch, stamp_arrival};
use crate::http::enroll::{self, MAX_ENROLL_BODY};
use crate::http::lineage;
use crate::http::queries;
use crate::http::state::AppState;

/// The collector's router.
pub fn app(state: AppState) -> Router {
    let limit = DefaultBodyLimit::max(state.max_body_bytes());
    let small = DefaultBodyLimit::max(MAX_ENROLL_BODY);
    Router::new()
        .route(HEALTHZ, get(healthz))
        .route(
            BATCHES,
            post(post_batch)
                .layer(limit)
                .layer(state.batch_limit().clone())
                .layer(axum::middleware::from_fn(stamp_arrival)),
        )
        .route(ENROLL, post(enroll::enroll).layer(small))
        .route(
            HOSTS,
            get(queries::hosts).post(enroll::register).layer(small),
        )
        .route(HOST, get(queries::host))
        .route(EVENTS, get(queries::events))
        .route(ALERTS, get(queries::alerts))
        .route(LINEAGE, get(lineage::lineage))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}
