//! The in-process collector of the HTTP tests: a router over a fresh SQLite database, driven with
//! `tower::ServiceExt::oneshot`, every request coming from a peer address the test chooses; and the
//! pieces of the hostile tests (forged batches, a victim host, an attacker's requests).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use auditloop_journal::record::{Hash, frame, read_frame};
use auditloop_protocol::api::{ENROLL, HOSTS};
use auditloop_protocol::batch::{Batch, CONTENT_TYPE_BINARY};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;

use crate::auth::Tokens;
use crate::http::router::app;
use crate::http::state::AppState;
use crate::store::{SqliteStore, Store};
use crate::testutil::TestJournal;

/// The admin token of test apps.
pub const ADMIN: &str = "admin-token";
/// The enrollment token of test apps.
pub const ENROLL_TOKEN: &str = "enroll-token";
/// The viewer token of test apps.
pub const VIEWER: &str = "viewer-token";
/// `--max-body-bytes` of test apps.
pub const MAX_BODY: usize = 1024 * 1024;
/// The peer address requests come from unless a test says otherwise.
pub const PEER: &str = "192.0.2.7:40000";

/// A collector over a fresh database, with an admin and an enrollment token; it remembers the tokens of
/// the hosts tests enrolled.
pub struct TestApp {
    _dir: Option<TempDir>,
    pub router: Router,
    pub store: Arc<SqliteStore>,
    pub state: AppState,
    tokens: Mutex<HashMap<String, String>>,
}

impl TestApp {
    pub fn new() -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut app = TestApp::over(&dir.path().join("collector.db"));
        app._dir = Some(dir);
        app
    }

    /// A collector over the database at `path`.
    pub fn over(path: &Path) -> TestApp {
        let store = Arc::new(SqliteStore::open(path).unwrap());
        let tokens = Tokens::new(ADMIN, Some(ENROLL_TOKEN))
            .unwrap()
            .with_people(None, Some(VIEWER))
            .unwrap();
        let state = AppState::new(store.clone(), tokens, MAX_BODY);
        TestApp {
            _dir: None,
            router: app(state.clone()),
            store,
            state,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The same collector knowing `groups`.
    pub fn with_groups(mut self, groups: crate::groups::HostGroups) -> TestApp {
        self.state = self.state.with_groups(groups);
        self.router = app(self.state.clone());
        self
    }

    /// Enrolls `host` with `key` (hex) using `token`; the answer.
    pub async fn enroll_as(
        &self,
        token: Option<&str>,
        host: &str,
        key: &str,
    ) -> (StatusCode, Value) {
        let body = json!({ "host_id": host, "genesis_public_key": key });
        let answer = self.post_json(ENROLL, token, &body).await;
        self.remember(host, &answer);
        answer
    }

    /// Registers `host` with `key` (hex) using `token` on `POST /v1/hosts`; the answer.
    pub async fn register_as(
        &self,
        token: Option<&str>,
        host: &str,
        key: &str,
        replace: bool,
    ) -> (StatusCode, Value) {
        let body = json!({ "host_id": host, "genesis_public_key": key, "replace": replace });
        let answer = self.post_json(HOSTS, token, &body).await;
        self.remember(host, &answer);
        answer
    }

    /// Enrolls `host` with the genesis key of `journal` (with the enrollment token); its token.
    pub async fn enroll(&self, host: &str, journal: &mut TestJournal) -> String {
        let key = hex::encode(journal.genesis_key());
        let (status, body) = self.enroll_as(Some(ENROLL_TOKEN), host, &key).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// The token the test app was given for `host`.
    pub fn token(&self, host: &str) -> String {
        self.tokens
            .lock()
            .unwrap()
            .get(host)
            .cloned()
            .unwrap_or_else(|| panic!("host {host} was not enrolled by the test"))
    }

    fn remember(&self, host: &str, answer: &(StatusCode, Value)) {
        if answer.0 == StatusCode::CREATED {
            let token = answer.1["token"].as_str().unwrap().to_owned();
            self.tokens.lock().unwrap().insert(host.to_owned(), token);
        }
    }

    /// POSTs `body` as JSON to `uri` with `token`.
    pub async fn post_json(
        &self,
        uri: &str,
        token: Option<&str>,
        body: &Value,
    ) -> (StatusCode, Value) {
        let mut req = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(req.body(Body::from(body.to_string())).unwrap(), PEER)
            .await
    }

    /// POSTs a raw body for `host` with `token`, from `peer`.
    pub async fn post_from(
        &self,
        peer: &str,
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
        self.send(req.body(Body::from(body)).unwrap(), peer).await
    }

    pub async fn post_raw(
        &self,
        host: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        self.post_from(PEER, host, token, content_type, body).await
    }

    /// POSTs `batch` zstd-encoded for `host` with `token`.
    pub async fn post_with(&self, host: &str, token: &str, batch: &Batch) -> (StatusCode, Value) {
        let body = batch.encode_binary(3).unwrap();
        self.post_raw(host, Some(token), CONTENT_TYPE_BINARY, body)
            .await
    }

    /// POSTs `batch` zstd-encoded with `host`'s own token.
    pub async fn post(&self, host: &str, batch: &Batch) -> (StatusCode, Value) {
        let token = self.token(host);
        self.post_with(host, &token, batch).await
    }

    /// GETs `uri` with `token`.
    pub async fn get_as(&self, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = Request::get(uri);
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(req.body(Body::empty()).unwrap(), PEER).await
    }

    /// GETs `uri` with the admin token.
    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.get_as(uri, Some(ADMIN)).await
    }

    /// Sends `req` from [`PEER`]; the status and the body (JSON, or the text as a JSON string).
    pub async fn send(&self, mut req: Request<Body>, peer: &str) -> (StatusCode, Value) {
        let peer: SocketAddr = peer.parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(peer));
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

/// Where attackers connect from.
pub const ATTACKER: &str = "203.0.113.66:31337";

/// A one-record batch: `payload` at `seq`, chained to `prev`.
pub fn forged(seq: u64, prev: &Hash, payload: &[u8]) -> Batch {
    let mut frames = Vec::new();
    frame(&mut frames, seq, prev, payload);
    Batch {
        first_seq: seq,
        last_seq: seq,
        anchor: None,
        frames,
    }
}

/// An event payload from some other journal.
pub fn foreign_payload() -> Vec<u8> {
    let mut other = TestJournal::new("elsewhere");
    other.exec(666, "/tmp/implant");
    let frames = other.frames();
    read_frame(&frames[1].bytes).unwrap().payload.to_vec()
}

/// The victim: enrolled, one verified batch stored (records 1..=6).
pub async fn victim(app: &TestApp) -> TestJournal {
    let mut v = TestJournal::new("victim");
    app.enroll("victim", &mut v).await;
    v.execs(4);
    v.checkpoint();
    let (status, body) = app.post("victim", &v.batch(1, 6)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    v
}

/// The hex of every hash stored for `host`.
pub fn stored_hex(app: &TestApp, host: &str) -> Vec<String> {
    app.store
        .stored_hashes(host, 0, i64::MAX as u64)
        .unwrap()
        .into_iter()
        .map(|(_, h)| hex::encode(h))
        .collect()
}

/// POSTs `batch` for `host` with `token` from the attacker's address.
pub async fn attack(app: &TestApp, host: &str, token: &str, batch: &Batch) -> (StatusCode, Value) {
    let body = batch.encode_binary(3).unwrap();
    app.post_from(ATTACKER, host, Some(token), CONTENT_TYPE_BINARY, body)
        .await
}
