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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode, header};
    use tower::ServiceExt;

    use super::{CONTENT_TYPE, router};
    use crate::metrics::Exporter;
    use crate::store::{Enrollment, SqliteStore, Store};

    /// The only unit test that installs the process's recorder (it can be installed once).
    #[tokio::test]
    async fn a_scrape_lists_every_enrolled_host_and_only_those() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("c.db")).unwrap());
        for (host, now_ns) in [("scrape-a", 1), ("scrape-b", 2), ("scrape-b", 3)] {
            store
                .enroll(&Enrollment {
                    host,
                    genesis_key: [now_ns; 32],
                    token_digest: [now_ns; 32],
                    replace: now_ns == 3,
                    now_ns: u64::from(now_ns),
                })
                .unwrap();
        }
        let exporter = Exporter::install().unwrap();
        assert!(Exporter::install().is_err(), "installed once per process");
        let response = router(exporter, store)
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        let text = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let text = String::from_utf8(text.to_vec()).unwrap();
        assert!(text.contains("\nauditloop_collector_hosts 2\n"), "{text}");
        for host in ["scrape-a", "scrape-b"] {
            assert!(
                text.contains(&format!(
                    "auditloop_collector_host_last_seq{{host=\"{host}\"}} 0\n"
                )),
                "{text}"
            );
            assert!(
                text.contains(&format!(
                    "auditloop_collector_host_chain_ok{{host=\"{host}\"}} 1\n"
                )),
                "{text}"
            );
        }
        // The replaced enrollment is not a host any more.
        assert!(!text.contains("@replaced-"), "{text}");
        assert!(
            text.contains("auditloop_collector_refusals_total{reason=\"gap\"} 0"),
            "{text}"
        );
    }
}
