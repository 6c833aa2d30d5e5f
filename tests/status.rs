//! `auditloop status` and the Prometheus endpoint against a running agent that ships to a collector.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use harness::collector::{Collector, free_port};
use harness::{Agent, marker, temp_dir};

/// `auditloop status --json --state-dir STATE`: exit code and report.
fn status(state: &std::path::Path) -> (i32, Value) {
    let out = Command::new(harness::agent_bin())
        .args(["status", "--json", "--state-dir"])
        .arg(state)
        .output()
        .expect("status");
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json printed JSON ({e}): {out:?}"));
    (out.status.code().expect("exit code"), report)
}

/// The scrape of `/metrics` on `port`.
pub(crate) fn scrape(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics")) {
            Ok(r) if r.status().is_success() => return r.text().expect("body"),
            other => {
                assert!(Instant::now() < deadline, "metrics endpoint: {other:?}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// The value of the sample `series` (name with labels, as printed) in a scrape; 0 when absent.
pub(crate) fn sample(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// Waits until `pred` holds for a fresh `status --json`.
pub(crate) fn status_until(
    state: &std::path::Path,
    pred: impl Fn(i32, &Value) -> bool,
) -> (i32, Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, report) = status(state);
        if pred(code, &report) {
            return (code, report);
        }
        assert!(
            Instant::now() < deadline,
            "status never matched: {code} {report}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn status_and_metrics_follow_a_running_agent() {
    let dir = temp_dir("status");
    let state = dir.join("state");
    let collector = Collector::start(&dir.join("collector"), 0);
    let token = collector.enroll("status-host", &state);
    let tag = marker("status");
    let rules = dir.join("rules.yaml");
    let good = format!(
        "- rule: status_marker\n  condition: evt.kind = exec and proc.cmdline contains {tag}\n  output: \"%proc.cmdline\"\n"
    );
    std::fs::write(&rules, &good).expect("rules");
    let port = free_port();
    let mut agent = Agent::start_with_config(
        &format!("metrics:\n  listen: 127.0.0.1:{port}\n"),
        &[
            "--state-dir",
            state.to_str().expect("utf-8"),
            "--rules",
            rules.to_str().expect("utf-8"),
            "--collector",
            &collector.url(),
            "--token-file",
            token.to_str().expect("utf-8"),
            "--host-id",
            "status-host",
        ],
    );
    let before = scrape(port);

    for i in 0..20 {
        let st = Command::new("/bin/sh")
            .args(["-c", &format!("true {tag} {i}")])
            .status()
            .expect("sh");
        assert!(st.success());
    }
    agent.wait_until(Duration::from_secs(15), |seen| {
        seen.iter()
            .filter(|e| e["event"]["alert"]["rule"] == "status_marker")
            .count()
            >= 20
    });

    let (code, report) = status_until(&state, |_, r| {
        r["agent"]["rule_hits"]["status_marker"].as_u64() >= Some(20)
            && r["agent"]["ship"]["last_ack_ms"].as_u64() > Some(0)
    });
    let a = &report["agent"];
    assert_eq!(code, 0, "healthy: {report}");
    assert_eq!(report["status"], "healthy");
    assert_eq!(a["pid"], agent.pid());
    assert_eq!(a["state"], "running");
    assert!(a["tracepoints"].as_u64() > Some(50), "{a}");
    assert!(
        a["tier"].as_str().is_some_and(|t| t.starts_with("kernel")),
        "{a}"
    );
    assert!(a["by_kind"]["exec"].as_u64() >= Some(20), "{a}");
    assert!(a["events"].as_u64() >= a["by_kind"]["exec"].as_u64(), "{a}");
    assert!(a["journal_bytes"].as_u64() > Some(0), "{a}");
    assert!(a["last_seq"].as_u64() > Some(20), "{a}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    assert!(
        now - a["last_checkpoint_ms"].as_u64().expect("checkpoint") < 10_000,
        "{a}"
    );
    assert_eq!(a["rules"]["rules"], 1, "{a}");
    assert_eq!(a["rules"]["path"], rules.to_str().expect("utf-8"));
    assert_eq!(a["ship"]["host_id"], "status-host");
    assert!(a["ship"]["acked_seq"].as_u64() > Some(0), "{a}");
    assert_eq!(a["metrics_listen"], format!("127.0.0.1:{port}"));

    // Metrics moved with the events.
    let after = scrape(port);
    let execs = |s: &str| sample(s, "auditloop_events_total{kind=\"exec\"}");
    assert!(
        execs(&after) >= execs(&before) + 20.0,
        "exec counter: {after}"
    );
    assert!(
        sample(&after, "auditloop_rule_hits_total{rule=\"status_marker\"}") >= 20.0,
        "{after}"
    );
    assert!(
        sample(&after, "auditloop_ship_batches_total") >= 1.0,
        "{after}"
    );
    assert!(sample(&after, "auditloop_journal_bytes") > 0.0, "{after}");
    assert!(
        sample(&after, "process_resident_memory_bytes") > 1e6,
        "{after}"
    );
    assert!(
        sample(&after, "auditloop_tracepoints_attached") > 50.0,
        "{after}"
    );
    assert!(
        after.contains("\nauditloop_ring_buffer_backlog_peak_bytes "),
        "the ring's backlog is exported: {after}"
    );
    assert!(a["ring_backlog_peak_bytes"].is_u64(), "{a}");

    // A rejected reload makes it degraded, naming the error.
    std::fs::write(
        &rules,
        "- rule: broken\n  condition: evt.kind = = exec\n  output: x\n",
    )
    .expect("rules");
    agent.signal(libc::SIGHUP);
    agent.wait_for("rules_rejected", |_, _| true);
    let (code, report) = status_until(&state, |code, _| code == 1);
    assert_eq!(report["status"], "degraded");
    let problems = report["problems"].to_string();
    assert!(problems.contains("rules reload was rejected"), "{problems}");
    assert!(
        problems.contains("rules.yaml:2:"),
        "names file:line: {problems}"
    );
    assert_eq!(code, 1);
    // The human form says the same.
    let out = Command::new(harness::agent_bin())
        .args(["status", "--state-dir"])
        .arg(&state)
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("auditloop: DEGRADED"), "{text}");
    assert!(text.contains("status-host"), "{text}");

    // Stopped: not running (2).
    let (st, _) = agent.stop_with(libc::SIGTERM);
    assert!(st.success());
    let (code, report) = status(&state);
    assert_eq!(
        (code, report["status"].as_str()),
        (2, Some("not_running")),
        "{report}"
    );
    harness::remove_tree(&dir);
}
