//! Collector failover: the agent given several collector URLs moves past one that cannot be reached and
//! ships its whole journal to the next (logging the switch and reporting it in status and metrics), and it
//! does not move past a collector that refuses the batch (every replica would say the same).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use harness::collector::{Collector, free_port};
use harness::{Agent, temp_dir};

use crate::ship::{assert_same_chain, write_journal};
use crate::status::{sample, scrape, status_until};

/// A config shipping to `urls` (in order) as `host` with `token`, serving metrics on `metrics_port`.
fn config(urls: &[&str], host: &str, token: &std::path::Path, metrics_port: u16) -> String {
    let list: String = urls.iter().map(|u| format!("    - {u}\n")).collect();
    format!(
        "ship:\n  collector:\n{list}  token_file: {}\n  host_id: {host}\n  batch_max_ms: 20\n\
         metrics:\n  listen: 127.0.0.1:{metrics_port}\n",
        token.display()
    )
}

#[test]
fn a_dead_collector_url_is_passed_over_and_the_journal_arrives_whole() {
    let dir = temp_dir("failover-dead");
    let state = dir.join("state");
    write_journal(&state, 20_000);
    let collector = Collector::start(&dir.join("collector"), 0);
    let token = collector.enroll("failover", &state);
    // Nothing listens there: connecting is refused.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let live = collector.url();
    let metrics = free_port();
    let agent = Agent::start_with_config(
        &config(&[&dead, &live], "failover", &token, metrics),
        &["--state-dir", state.to_str().expect("utf-8")],
    );
    collector.wait_host("failover", Duration::from_secs(120), |h| {
        h["last_seq"].as_u64() > Some(20_000)
    });
    let log = agent.stderr();
    let switches: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("switching collector"))
        .collect();
    assert_eq!(switches.len(), 1, "one switch, logged once:\n{log}");
    assert!(
        switches[0].contains(&format!("from={dead}"))
            && switches[0].contains(&format!("to={live}"))
            && switches[0].contains("reason="),
        "the switch names from, to and why: {}",
        switches[0]
    );

    // Status and metrics name the collector in use and count the switch.
    let (_, report) = status_until(&state, |_, r| {
        r["agent"]["ship"]["last_ack_ms"].as_u64() > Some(0)
    });
    let ship = &report["agent"]["ship"];
    assert_eq!(ship["collector"], live.as_str(), "{ship}");
    assert_eq!(ship["collectors"][0], dead.as_str(), "{ship}");
    assert_eq!(ship["collectors"][1], live.as_str(), "{ship}");
    assert_eq!(ship["collector_switches"], 1, "{ship}");
    let text = scrape(metrics);
    assert_eq!(
        sample(&text, "auditloop_ship_collector_switches_total"),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("auditloop_ship_collector{{url=\"{live}\"}}")
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("auditloop_ship_collector{{url=\"{dead}\"}}")
        ),
        0.0,
        "{text}"
    );

    // It stuck to the working collector: everything the agent wrote until its stop arrives there once.
    let (status, _) = agent.stop_with(libc::SIGTERM);
    assert!(status.success());
    assert_same_chain(&collector, "failover", &state);
    harness::remove_tree(&dir);
}

/// A server answering every request with `status` (a small JSON error body); counts requests.
fn answering(status: u16) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hits = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            count.fetch_add(1, Ordering::Relaxed);
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut length = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let answer = r#"{"error":"refused by the test"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 {status} Test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (format!("http://127.0.0.1:{port}"), hits)
}

#[test]
fn a_refused_batch_is_not_a_reason_to_fail_over() {
    let dir = temp_dir("failover-refused");
    let state = dir.join("state");
    let collector = Collector::start(&dir.join("collector"), 0);
    let token = dir.join("token");
    std::fs::write(&token, "a-token-every-replica-refuses\n").expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (refusing, hits) = answering(401);
    let mut agent = Agent::start_with_config(
        &config(
            &[&refusing, &collector.url()],
            "refused",
            &token,
            free_port(),
        ),
        &["--state-dir", state.to_str().expect("utf-8")],
    );
    agent.wait_until(Duration::from_secs(20), |_| {
        hits.load(Ordering::Relaxed) >= 1
    });
    std::thread::sleep(Duration::from_secs(2));
    let log = agent.stderr();
    assert!(
        log.contains("collector rejected the batch"),
        "a 401 is handled as before:\n{log}"
    );
    assert!(
        !log.contains("switching collector"),
        "no failover on a refusal:\n{log}"
    );
    assert_eq!(
        hits.load(Ordering::Relaxed),
        1,
        "the refused batch waits for a new token, not resent"
    );
    assert!(
        collector.host("refused").is_none(),
        "nothing reached the other collector"
    );
    let (status, _) = agent.stop_with(libc::SIGTERM);
    assert!(status.success());
    harness::remove_tree(&dir);
}
