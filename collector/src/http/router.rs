//! The collector's router: every route of `auditloop_protocol::api` and its handler.

use auditloop_protocol::api::fleet::{FLEET_ALERT, FLEET_ALERT_STATE, FLEET_ALERTS};
use auditloop_protocol::api::holds::{HOLD_VERDICT, HOLDS, HOST_VERDICTS};
use auditloop_protocol::api::rules::{
    MAX_DIFF_BODY, RULES_DIFF, RULES_LEARN, RULES_LEARN_YAML, RULES_STATS, RULES_STATS_CSV,
};
use auditloop_protocol::api::{ALERTS, BATCHES, ENROLL, EVENTS, HEALTHZ, HOST, HOSTS, LINEAGE};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::http::batches::{post_batch, stamp_arrival};
use crate::http::csrf::csrf_guard;
use crate::http::enroll::{self, MAX_ENROLL_BODY};
use crate::http::fleet;
use crate::http::lineage;
use crate::http::queries;
use crate::http::rules;
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
        .route(FLEET_ALERTS, get(fleet::alerts))
        .route(FLEET_ALERT, get(fleet::alert))
        .route(FLEET_ALERT_STATE, post(fleet::set_state).layer(small))
        .route(HOLDS, get(fleet::holds))
        .route(HOLD_VERDICT, post(fleet::verdict).layer(small))
        .route(HOST_VERDICTS, get(fleet::host_verdicts))
        .route(RULES_LEARN, get(rules::learn))
        .route(RULES_LEARN_YAML, get(rules::learn_yaml))
        .route(
            RULES_DIFF,
            post(rules::diff).layer(DefaultBodyLimit::max(MAX_DIFF_BODY)),
        )
        .route(RULES_STATS, get(rules::stats))
        .route(RULES_STATS_CSV, get(rules::stats_csv))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            csrf_guard,
        ))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}
