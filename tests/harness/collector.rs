//! A real `auditloop-collector` for shipping tests: loopback only, a private database and tokens, host
//! enrollment, and admin-API helpers.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use auditloop_journal::keys::EpochKey;
use auditloop_protocol::api::{ENROLL, EnrollRequest, EnrollResponse, batches_path};
use auditloop_testkit::{CollectorProcess, CollectorSpec};
use serde_json::Value;

/// Path of the `auditloop-collector` binary, beside `auditloop`.
pub fn collector_bin() -> PathBuf {
    auditloop_testkit::bins::collector_bin().unwrap_or_else(|e| panic!("{e}"))
}

/// A free loopback port (bound and released; good enough for tests on one machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The genesis public key of the journal under `state`, creating its key file as the agent would when it
/// has not run yet.
pub fn journal_key(state: &Path) -> [u8; 32] {
    let path = state.join("keys").join("journal.key");
    if let Some(key) = EpochKey::load(&path).expect("journal key file") {
        return key.genesis_public();
    }
    let key = EpochKey::generate().expect("journal key");
    key.store(&path).expect("store journal key");
    key.genesis_public()
}

/// A running collector.
pub struct Collector {
    /// Its directory: tokens and database.
    pub dir: PathBuf,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    process: CollectorProcess,
    http: reqwest::blocking::Client,
}

impl Collector {
    /// Starts a collector in `dir` (tokens are created on first use and kept, so a restart in the same
    /// directory keeps its database and tokens) listening on `127.0.0.1:port` (0 = any).
    pub fn start(dir: &Path, port: u16) -> Collector {
        Collector::start_with(dir, port, &[])
    }

    /// Like [`Collector::start`], with more arguments for the collector (e.g. `--tls-cert`).
    pub fn start_with(dir: &Path, port: u16, extra: &[&str]) -> Collector {
        let spec = CollectorSpec {
            listen: format!("127.0.0.1:{port}"),
            enroll_token: Some("enroll-secret-token".into()),
            admin_token: Some("admin-secret-token".into()),
            extra_args: extra.iter().map(|a| (*a).to_owned()).collect(),
            ..CollectorSpec::new(collector_bin(), dir)
        };
        Collector::from_spec(dir, &spec)
    }

    /// A replica of a cluster: a collector on the database `db` (a PostgreSQL URL) with the token files of
    /// `dir`, which every replica of the cluster shares (the first to start writes them).
    pub fn start_replica(dir: &Path, port: u16, db: &str) -> Collector {
        let spec = CollectorSpec {
            listen: format!("127.0.0.1:{port}"),
            db: Some(db.to_owned()),
            enroll_token: Some("enroll-secret-token".into()),
            admin_token: Some("admin-secret-token".into()),
            ..CollectorSpec::new(collector_bin(), dir)
        };
        Collector::from_spec(dir, &spec)
    }

    /// Starts the collector `spec` describes.
    fn from_spec(dir: &Path, spec: &CollectorSpec) -> Collector {
        let process = CollectorProcess::start(spec).unwrap_or_else(|e| panic!("{e}"));
        let _ = rustls::crypto::ring::default_provider().install_default();
        Collector {
            dir: dir.to_owned(),
            addr: process.addr.clone(),
            process,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The enrollment token file.
    pub fn enroll_token_file(&self) -> PathBuf {
        self.process.enroll_token_file()
    }

    /// The token file of `host` (in the collector's directory), enrolling `host` with the genesis key of
    /// the journal under `state` first unless this collector directory holds its token already (creating
    /// the journal key there if the agent has not run yet).
    pub fn enroll(&self, host: &str, state: &Path) -> PathBuf {
        let file = self.dir.join(format!("{host}.token"));
        if !file.exists() {
            self.enroll_to(host, state, &file);
        }
        file
    }

    /// Enrolls `host` with the genesis key of the journal under `state` and writes its token to `file`
    /// (replacing it; mode 0600).
    pub fn enroll_to(&self, host: &str, state: &Path, file: &Path) {
        let request = EnrollRequest {
            host_id: host.to_owned(),
            genesis_public_key: hex::encode(journal_key(state)),
        };
        let response = self
            .http
            .post(format!("{}{ENROLL}", self.url()))
            .bearer_auth(&self.process.enroll_token)
            .json(&request)
            .send()
            .unwrap_or_else(|e| panic!("POST {ENROLL}: {e}"));
        let status = response.status();
        let body = response.text().expect("body");
        assert_eq!(status.as_u16(), 201, "enrolling {host}: {body}");
        let answer: EnrollResponse =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{ENROLL}: {e}: {body}"));
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        writeln!(out, "{}", answer.token).expect("write token");
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// GET an admin API path (`/v1/...`) as JSON.
    pub fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.url()))
            .bearer_auth(&self.process.admin_token)
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status();
        let body = response.text().expect("body");
        assert!(status.is_success(), "GET {path}: {status}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// GET an admin API path, whatever the status; returns the status and the body (JSON, or the text as a
    /// JSON string).
    pub fn get_any(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.url()))
            .bearer_auth(&self.process.admin_token)
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// POSTs `body` as JSON to an admin API path; returns the status and the JSON body.
    pub fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.url()))
            .bearer_auth(&self.process.admin_token)
            .json(body)
            .send()
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// POSTs a batch body for `host` with `token`; returns the status and JSON body.
    pub fn post_batch(
        &self,
        host: &str,
        token: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{}", self.url(), batches_path(host)))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .expect("POST batch");
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The `/v1/hosts` entry of `host`, if the collector knows it.
    pub fn host(&self, host: &str) -> Option<Value> {
        let hosts = self.get("/v1/hosts");
        hosts["hosts"]
            .as_array()
            .or_else(|| hosts.as_array())
            .and_then(|list| list.iter().find(|h| h["host"] == host).cloned())
    }

    /// Waits until `host`'s entry satisfies `done`; fails after `timeout`.
    pub fn wait_host(&self, host: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let entry = self.host(host);
            if let Some(e) = &entry
                && done(e)
            {
                return e.clone();
            }
            assert!(
                start.elapsed() < timeout,
                "collector host {host} did not reach the expected state in {timeout:?}: {entry:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the collector with SIGKILL (an outage) and waits for it.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

/// A one-record JSON batch at `seq` chained to `prev`, whose event says `comm` ran `argv0` (a batch no
/// agent wrote: for forgery and refusal tests).
pub fn one_record_batch(seq: u64, prev: [u8; 32], comm: &str, argv0: &str) -> Vec<u8> {
    use auditloop_journal::record::{encode_event, frame};
    use auditloop_model::{Event, EventBody, Exec, Process, WallTime};
    let event = Event {
        seq,
        time: WallTime::now(),
        mono_ns: 1,
        process: Process {
            pid: 1,
            comm: comm.into(),
            ..Process::default()
        },
        event: EventBody::Exec(Exec {
            filename: argv0.into(),
            argv: vec![argv0.into()],
            ..Exec::default()
        }),
    };
    let mut frames = Vec::new();
    frame(
        &mut frames,
        seq,
        &prev,
        &encode_event(&event).expect("encode"),
    );
    auditloop_protocol::batch::Batch {
        first_seq: seq,
        last_seq: seq,
        anchor: None,
        frames,
    }
    .encode_json()
    .expect("json")
}
