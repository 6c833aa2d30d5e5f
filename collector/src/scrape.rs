//! The metrics endpoint: `GET /metrics` in the Prometheus text format, on a listener of its own, never on
//! the API's.
//!
//! It has no authentication (Prometheus scrapes it as is), so it is off unless configured and belongs on
//! loopback or a private monitoring network. What it shows are counts, sequence numbers and host names,
//! never a stored record, token or hash. Each scrape lists the enrolled hosts from the store (one query)
//! to set the per-host gauges; nothing else of the store is read.

use std::future::Future;
use std::sync::Arc;

use auditloop_protocol::api::HostStatus;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::{EnrolledHost, Exporter};
use crate::store::Store;

/// The path metrics are served at.
pub const METRICS_PATH: &str = "/metrics";

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A bound metrics listener and the recorder it renders.
pub struct MetricsEndpoint {
    /// The listener (`--metrics-listen`).
    pub listener: TcpListener,
    /// The installed recorder.
    pub exporter: Exporter,
}

#[derive(Clone)]
struct Scrape {
    exporter: Exporter,
    store: Arc<dyn Store>,
}

/// The metrics router: `GET /metrics` and nothing else.
pub fn router(exporter: Exporter, store: Arc<dyn Store>) -> Router {
    Router::new()
        .route(METRICS_PATH, get(metrics))
        .with_state(Scrape { exporter, store })
}

/// Serves `endpoint` until `shutdown` completes.
pub async fn serve(
    endpoint: MetricsEndpoint,
    store: Arc<dyn Store>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(endpoint.listener, router(endpoint.exporter, store))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(scrape): State<Scrape>) -> Response {
    let store = Arc::clone(&scrape.store);
    let hosts = match tokio::task::spawn_blocking(move || store.hosts()).await {
        Ok(Ok(hosts)) => hosts,
        Ok(Err(e)) => return failed(&e.to_string()),
        Err(e) => return failed(&e.to_string()),
    };
    let enrolled: Vec<EnrolledHost<'_>> = hosts
        .iter()
        .filter(|h| h.status != HostStatus::Replaced)
        .map(|h| EnrolledHost {
            name: &h.name,
            last_seq: h.record.last_seq(),
        })
        .collect();
    let text = scrape.exporter.render(&enrolled);
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        text,
    )
        .into_response()
}

fn failed(error: &str) -> Response {
    tracing::error!(error, "metrics scrape: listing the hosts failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "listing the hosts failed (see the collector's log)\n",
    )
        .into_response()
}
