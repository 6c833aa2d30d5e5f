//! The in-process collector of the HTTP tests: a router over a fresh SQLite database, driven with
//! `tower::ServiceExt::oneshot`.

use std::sync::Arc;

use auditloop_protocol::batch::{Batch, CONTENT_TYPE_BINARY};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt;

use crate::auth::Tokens;
use crate::http::router::app;
use crate::http::state::AppState;
use crate::store::SqliteStore;

/// The shared agent token of test apps.
pub const AGENT: &str = "agent-token";
/// The admin token of test apps.
pub const ADMIN: &str = "admin-token";
/// The per-host token of host `web` in test apps.
pub const WEB: &str = "web-token";
/// `--max-body-bytes` of test apps.
pub const MAX_BODY: usize = 1024 * 1024;

/// A collector over a fresh database; host `web` has its own token.
pub struct TestApp {
    _dir: TempDir,
    pub router: Router,
    pub store: Arc<SqliteStore>,
}

impl TestApp {
    pub fn new() -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("collector.db")).unwrap());
        let tokens = Tokens::new(AGENT, ADMIN, [("web".to_owned(), WEB.to_owned())]).unwrap();
        let state = AppState::new(store.clone(), tokens, MAX_BODY);
        TestApp {
            _dir: dir,
            router: app(state),
            store,
        }
    }

    pub async fn post_raw(
        &self,
        host: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut req = Request::post(format!("/v1/hosts/{host}/batches"))
            .header(header::CONTENT_TYPE, content_type);
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    /// POSTs `batch` zstd-encoded with the shared agent token.
    pub async fn post(&self, host: &str, batch: &Batch) -> (StatusCode, Value) {
        let body = batch.encode_binary(3).unwrap();
        self.post_raw(host, Some(AGENT), CONTENT_TYPE_BINARY, body)
            .await
    }

    /// GETs `uri` with `token`.
    pub async fn get_as(&self, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = Request::get(uri);
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    /// GETs `uri` with the admin token.
    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.get_as(uri, Some(ADMIN)).await
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    /// The stored host summary of `host`.
    pub async fn host(&self, host: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/hosts/{host}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Records stored for `host` (0 for a host never stored).
    pub async fn records(&self, host: &str) -> u64 {
        let (status, body) = self.get(&format!("/v1/hosts/{host}")).await;
        if status == StatusCode::NOT_FOUND {
            return 0;
        }
        body["records"].as_u64().unwrap()
    }

    /// Alerts of `kind`.
    pub async fn alerts(&self, kind: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/v1/alerts?kind={kind}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["alerts"].as_array().unwrap().clone()
    }
}
