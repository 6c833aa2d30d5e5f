//! The agent and the collector over TLS: `auditloop enroll` and shipping with a CA made here; an agent
//! that does not trust the collector's certificate sends nothing; plain HTTP to a non-loopback collector is
//! refused unless `ship.insecure_http` says so; redirects are never followed.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use harness::collector::Collector;
use harness::tls::make_ca;
use harness::{Agent, agent_bin, marker, remove_tree, temp_dir};
use serde_json::Value;

/// A collector serving HTTPS with a certificate for `localhost` from a CA made here; returns it, the CA
/// file, and its `https://localhost:<port>` URL.
fn tls_collector(dir: &Path) -> (Collector, PathBuf, String) {
    let (ca_pem, cert, key) = make_ca(dir, "collector");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("CA file");
    let collector = Collector::start_with(
        &dir.join("collector"),
        0,
        &[
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
        ],
    );
    let url = format!("https://localhost:{}", collector.port());
    (collector, ca_file, url)
}

/// `GET path` on the TLS collector as admin, trusting `ca_file` only.
fn get(url: &str, ca_file: &Path, path: &str) -> Value {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca_file).expect("CA")).expect("CA pem");
    let client = reqwest::blocking::Client::builder()
        .tls_certs_only([ca])
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    client
        .get(format!("{url}{path}"))
        .bearer_auth("admin-secret-token")
        .send()
        .and_then(reqwest::blocking::Response::json)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn enroll(args: &[&str]) -> Output {
    Command::new(agent_bin())
        .arg("enroll")
        .args(["--config", "/nonexistent/auditloop.yaml"])
        .args(args)
        .output()
        .expect("auditloop enroll")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn enroll_and_ship_over_tls_with_a_ca_made_here() {
    harness::require_root();
    let dir = temp_dir("tls");
    let (collector, ca_file, url) = tls_collector(&dir);
    let state = dir.join("state");
    let token = dir.join("host.token");
    let s = |p: &Path| p.to_str().expect("utf-8").to_owned();
    let enroll_token = s(&collector.enroll_token_file());
    let base = [
        "--collector",
        &url,
        "--enroll-token-file",
        &enroll_token,
        "--host-id",
        "tls-host",
    ];
    let base: Vec<&str> = base.to_vec();

    // Not trusting the collector's CA: the enrollment fails on the certificate and writes no token.
    let mut args = base.clone();
    let (st, tk) = (s(&state), s(&token));
    args.extend(["--state-dir", &st, "--token-out", &tk]);
    let out = enroll(&args);
    assert!(!out.status.success(), "enrolled without trusting the CA");
    assert!(
        text(&out).to_lowercase().contains("certificate"),
        "the error says why: {}",
        text(&out)
    );
    assert!(!token.exists(), "no token file after a failed enrollment");

    // Trusting it: enrolled, the token is private, and the same id cannot be enrolled again.
    let ca = s(&ca_file);
    args.extend(["--ca-file", &ca]);
    let out = enroll(&args);
    assert!(out.status.success(), "enroll: {}", text(&out));
    let mode = std::fs::metadata(&token)
        .expect("token")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "token file mode");
    let other = dir.join("other.token");
    let ot = s(&other);
    let mut again = base.clone();
    again.extend(["--state-dir", &st, "--token-out", &ot, "--ca-file", &ca]);
    let out = enroll(&again);
    assert!(!out.status.success(), "the same host id enrolled twice");
    assert!(text(&out).contains("already enrolled"), "{}", text(&out));
    let out = enroll(&args);
    assert!(
        !out.status.success() && text(&out).contains("--force"),
        "an existing token file is kept: {}",
        text(&out)
    );

    // Shipping over TLS: events arrive, verified under the enrolled key.
    let config = format!(
        "ship:\n  collector: {url}\n  token_file: {tk}\n  host_id: tls-host\n  ca_file: {ca}\n  \
         batch_max_ms: 20\n"
    );
    let mut agent = Agent::start_with_config(&config, &["--state-dir", &st]);
    let name = marker("tls-exec");
    let _ = Command::new("/bin/true").arg(&name).status();
    agent.wait_for("exec", |_, e| e["argv"][1] == name.as_str());
    let deadline = Instant::now() + Duration::from_secs(30);
    let host = loop {
        let host = get(&url, &ca_file, "/v1/hosts/tls-host");
        if host["last_verified_seq"].as_u64().unwrap_or(0) > 1 {
            break host;
        }
        assert!(
            Instant::now() < deadline,
            "nothing verified over TLS: {host}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(host["status"], "verified", "{host}");
    let (status, _) = agent.stop_with(libc::SIGTERM);
    assert!(status.success());
    drop(collector);
    remove_tree(&dir);
}

#[test]
fn an_agent_that_does_not_trust_the_certificate_sends_nothing() {
    harness::require_root();
    let dir = temp_dir("tls-untrusted");
    let (collector, ca_file, url) = tls_collector(&dir);
    let state = dir.join("state");
    let token = dir.join("host.token");
    let out = enroll(&[
        "--collector",
        &url,
        "--enroll-token-file",
        collector.enroll_token_file().to_str().expect("utf-8"),
        "--host-id",
        "tls-untrusted",
        "--state-dir",
        state.to_str().expect("utf-8"),
        "--token-out",
        token.to_str().expect("utf-8"),
        "--ca-file",
        ca_file.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "enroll: {}", text(&out));
    let config = format!(
        "ship:\n  collector: {url}\n  token_file: {}\n  host_id: tls-untrusted\n  batch_max_ms: 20\n",
        token.display()
    );
    let agent = Agent::start_with_config(&config, &["--state-dir", state.to_str().expect("utf-8")]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !agent.stderr().contains("certificate") {
        assert!(
            Instant::now() < deadline,
            "no certificate error logged: {}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let host = get(&url, &ca_file, "/v1/hosts/tls-untrusted");
    assert_eq!(host["records"], 0, "nothing stored: {host}");
    let (status, _) = agent.stop_with(libc::SIGTERM);
    assert!(status.success());
    drop(collector);
    remove_tree(&dir);
}

#[test]
fn plain_http_to_a_non_loopback_collector_is_refused_unless_told() {
    harness::require_root();
    let dir = temp_dir("tls-plain");
    let token = dir.join("token");
    std::fs::write(&token, "t\n").expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let empty = dir.join("empty.yaml");
    std::fs::write(&empty, "").expect("config");
    let state = dir.join("state");
    for url in [
        "http://192.0.2.1:8470",
        "http://collector.example:8470",
        "http://[::]:8470",
    ] {
        let out = Command::new(agent_bin())
            .args(["run", "--config"])
            .arg(&empty)
            .arg("--state-dir")
            .arg(&state)
            .args(["--collector", url, "--token-file"])
            .arg(&token)
            .output()
            .expect("run");
        assert!(!out.status.success(), "{url}: started");
        assert!(
            text(&out).contains("ship.insecure_http"),
            "{url}: the error names the setting: {}",
            text(&out)
        );
        let out = enroll(&[
            "--collector",
            url,
            "--enroll-token-file",
            token.to_str().expect("utf-8"),
            "--state-dir",
            state.to_str().expect("utf-8"),
            "--token-out",
            dir.join("never.token").to_str().expect("utf-8"),
        ]);
        assert!(
            !out.status.success() && text(&out).contains("ship.insecure_http"),
            "{url}: enroll refuses too: {}",
            text(&out)
        );
    }
    assert!(!dir.join("never.token").exists());
    // Told: the agent starts (and retries the unreachable collector).
    let config = format!(
        "ship:\n  collector: http://192.0.2.1:8470\n  token_file: {}\n  host_id: plain\n  \
         insecure_http: true\n  timeout_secs: 1\n",
        token.display()
    );
    let agent = Agent::start_with_config(&config, &["--state-dir", state.to_str().expect("utf-8")]);
    let (status, _) = agent.stop_with(libc::SIGTERM);
    assert!(status.success());
    remove_tree(&dir);
}

/// A server answering every request with a redirect to `to`; counts requests.
fn redirector(to: String) -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hits = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            count.fetch_add(1, Ordering::Relaxed);
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 307 Temporary Redirect\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (port, hits)
}

#[test]
fn redirects_are_not_followed() {
    harness::require_root();
    let dir = temp_dir("tls-redirect");
    let (target, target_hits) = redirector("http://127.0.0.1:9/".into());
    let (port, hits) = redirector(format!("http://127.0.0.1:{target}/v1/hosts/r/batches"));
    let token = dir.join("token");
    std::fs::write(&token, "secret-host-token\n").expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let config = format!(
        "ship:\n  collector: http://127.0.0.1:{port}\n  token_file: {}\n  host_id: r\n  batch_max_ms: 20\n",
        token.display()
    );
    let state = dir.join("state");
    let mut agent =
        Agent::start_with_config(&config, &["--state-dir", state.to_str().expect("utf-8")]);
    agent.wait_until(Duration::from_secs(20), |_| {
        hits.load(Ordering::Relaxed) >= 1
    });
    std::thread::sleep(Duration::from_secs(1));
    let (status, _) = agent.stop_with(libc::SIGTERM);
    assert!(status.success());
    assert_eq!(
        target_hits.load(Ordering::Relaxed),
        0,
        "the redirect (and the token) went nowhere"
    );
    remove_tree(&dir);
}
