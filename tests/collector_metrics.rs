//! The collector's Prometheus endpoint against a real agent shipping real events: the batch, record, byte
//! and ingest-time metrics move with what was stored, the host's gauges appear, and refused batches move
//! `refusals_total` by reason. And the collector started from its config file alone, or refused at start
//! for a config file with an unknown key.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use auditloop_protocol::batch::CONTENT_TYPE_JSON;
use harness::collector::{Collector, collector_bin, free_port, one_record_batch};
use harness::{Agent, marker, temp_dir};

/// The body of `GET http://addr/metrics`.
fn scrape(addr: &str) -> String {
    let response = reqwest::blocking::get(format!("http://{addr}/metrics"))
        .unwrap_or_else(|e| panic!("scraping {addr}: {e}"));
    assert_eq!(response.status().as_u16(), 200, "scraping {addr}");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().expect("metrics body")
}

/// The value of `series` (name and labels exactly as rendered) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// Like [`sample`], failing the test when the series is missing.
fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[test]
fn metrics_follow_stored_and_refused_batches_of_a_real_agent() {
    harness::require_root();
    let dir = temp_dir("collector-metrics");
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let collector = Collector::start_with(
        &dir.join("collector"),
        0,
        &["--metrics-listen", &metrics_addr],
    );
    // Metrics are served on their own listener only.
    let on_api = reqwest::blocking::get(format!("{}/metrics", collector.url())).expect("GET");
    assert_ne!(on_api.status().as_u16(), 200, "metrics on the API port");

    let host = "metrics-host";
    let state = dir.join("agent");
    let token = collector.enroll(host, &state);
    let before = scrape(&metrics_addr);
    let config = format!(
        "ship:\n  collector: {}\n  token_file: {}\n  host_id: {host}\n  batch_max_ms: 20\n",
        collector.url(),
        token.display()
    );
    let mut agent =
        Agent::start_with_config(&config, &["--state-dir", state.to_str().expect("utf-8")]);
    let name = marker("metrics");
    const RUNS: usize = 5;
    for _ in 0..RUNS {
        let status = Command::new("/bin/true").arg(&name).status().expect("run");
        assert!(status.success());
    }
    agent.wait_until(harness::EVENT_TIMEOUT, |seen| {
        seen.iter()
            .filter(|e| e["event"]["exec"]["argv"][1] == name.as_str())
            .count()
            >= RUNS
    });
    // Wait until the collector stored them (verified or pending).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = collector.get(&format!(
            "/v1/events?host={host}&kind=exec&q={name}&pending=true&limit=100"
        ));
        if events["events"].as_array().map_or(0, Vec::len) >= RUNS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the events never reached the collector"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = scrape(&metrics_addr);
    let grew = |series: &str| value(&after, series) - sample(&before, series).unwrap_or(0.0);
    assert!(
        grew("auditloop_collector_batches_total{result=\"stored\"}") >= 1.0,
        "{after}"
    );
    assert!(
        grew("auditloop_collector_records_stored_total") >= RUNS as f64,
        "{after}"
    );
    assert!(
        grew("auditloop_collector_bytes_received_total") > 0.0,
        "{after}"
    );
    assert!(
        grew("auditloop_collector_ingest_seconds_count") >= 1.0,
        "{after}"
    );
    assert!(
        after.contains("auditloop_collector_ingest_seconds_bucket{le=\"0.01\"}"),
        "{after}"
    );
    assert!(value(&after, "auditloop_collector_hosts") >= 1.0, "{after}");
    let host_series = |metric: &str| format!("{metric}{{host=\"{host}\"}}");
    let last_seq = value(&after, &host_series("auditloop_collector_host_last_seq"));
    assert!(last_seq >= RUNS as f64, "{after}");
    let lag = value(&after, &host_series("auditloop_collector_host_lag_seconds"));
    assert!((0.0..300.0).contains(&lag), "lag {lag}: {after}");
    assert_eq!(
        value(&after, &host_series("auditloop_collector_host_chain_ok")),
        1.0,
        "{after}"
    );

    // Refused batches, each counted under its reason.
    let read = |p: &Path| std::fs::read_to_string(p).expect("token").trim().to_owned();
    let enroll_token = read(&collector.enroll_token_file());
    let own_token = read(&token);
    let body = || one_record_batch(1 << 62, [0; 32], "metrics-test", "/bin/true");
    let (status, _) = collector.post_batch(host, &enroll_token, CONTENT_TYPE_JSON, body());
    assert_eq!(status, 403, "another identity's token");
    let (status, _) = collector.post_batch(host, "no-such-token", CONTENT_TYPE_JSON, body());
    assert_eq!(status, 401, "an unknown token");
    let (status, _) = collector.post_batch(host, &own_token, CONTENT_TYPE_JSON, body());
    assert_eq!(status, 409, "a batch far past the host's head");
    let (status, _) =
        collector.post_batch(host, &own_token, CONTENT_TYPE_JSON, b"not a batch".to_vec());
    assert_eq!(status, 400, "a body that is not a batch");
    let refused = scrape(&metrics_addr);
    let moved = |series: &str| value(&refused, series) - value(&after, series);
    assert_eq!(
        moved("auditloop_collector_refusals_total{reason=\"foreign_token\"}"),
        1.0,
        "{refused}"
    );
    assert_eq!(
        moved("auditloop_collector_refusals_total{reason=\"unauthorized\"}"),
        1.0,
        "{refused}"
    );
    assert_eq!(
        moved("auditloop_collector_refusals_total{reason=\"gap\"}"),
        1.0,
        "{refused}"
    );
    assert_eq!(
        moved("auditloop_collector_refusals_total{reason=\"malformed\"}"),
        1.0,
        "{refused}"
    );
    assert!(
        moved("auditloop_collector_batches_total{result=\"refused\"}") >= 4.0,
        "{refused}"
    );
    assert!(
        moved("auditloop_collector_alerts_total{kind=\"forgery\"}") >= 1.0,
        "{refused}"
    );
    assert!(
        moved("auditloop_collector_alerts_total{kind=\"gap\"}") >= 1.0,
        "{refused}"
    );
    // Neither a foreign token nor a gap says the host's chain is broken.
    assert_eq!(
        value(&refused, &host_series("auditloop_collector_host_chain_ok")),
        1.0,
        "{refused}"
    );
    // A host id nobody enrolled never becomes a label.
    let (status, _) =
        collector.post_batch("never-enrolled", &enroll_token, CONTENT_TYPE_JSON, body());
    assert_eq!(status, 403);
    assert!(!scrape(&metrics_addr).contains("never-enrolled"));
    drop(agent);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes the collector's token files into `dir`.
fn write_tokens(dir: &Path) {
    std::fs::write(dir.join("admin.token"), "metrics-admin-token\n").expect("admin token");
    std::fs::write(dir.join("enroll.token"), "metrics-enroll-token\n").expect("enroll token");
}

#[test]
fn the_collector_starts_from_its_config_file_alone() {
    let dir = temp_dir("collector-config");
    write_tokens(&dir);
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "# from the config file only\nlisten: 127.0.0.1:0\ndb: {db}\nadmin_token_file: {admin}\n\
             enroll_token_file: {enroll}\nsilence_secs: 0\nmetrics:\n  listen: {metrics_addr}\n",
            db = dir.join("collector.db").display(),
            admin = dir.join("admin.token").display(),
            enroll = dir.join("enroll.token").display(),
        ),
    )
    .expect("config");
    let mut child = Command::new(collector_bin())
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the collector");
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("first line");
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("not listening: {first:?}"))
        .to_owned();
    let client = reqwest::blocking::Client::new();
    let health = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    let hosts = client
        .get(format!("http://{addr}/v1/hosts"))
        .bearer_auth("metrics-admin-token")
        .send()
        .expect("hosts");
    assert_eq!(
        hosts.status().as_u16(),
        200,
        "the admin token file of the config"
    );
    let text = scrape(&metrics_addr);
    assert_eq!(value(&text, "auditloop_collector_hosts"), 0.0, "{text}");
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: signalling our own child, which has not been waited for.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}");
    assert!(
        dir.join("collector.db").exists(),
        "the database of the config"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_config_file_with_an_unknown_key_stops_the_collector_at_start() {
    let dir = temp_dir("collector-bad-config");
    write_tokens(&dir);
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\ndb: {}\nadmin_token_file: {}\nmax_conections: 4\n",
            dir.join("collector.db").display(),
            dir.join("admin.token").display(),
        ),
    )
    .expect("config");
    let run = |extra: &[&str]| {
        Command::new(collector_bin())
            .arg("--config")
            .arg(&config)
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .expect("run the collector")
    };
    let out = run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "it never listened");
    let at = format!("{}:4:1: ", config.display());
    assert!(stderr.contains(&at), "{stderr}");
    assert!(stderr.contains("max_conections"), "{stderr}");
    assert!(
        !dir.join("collector.db").exists(),
        "nothing was created before the config was read"
    );
    // A required setting in neither the flags nor the file is named.
    std::fs::write(&config, "listen: 127.0.0.1:0\n").expect("config");
    let out = run(&["--db", "/nonexistent/c.db"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("missing setting `admin_token_file`: give --admin-token-file"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
