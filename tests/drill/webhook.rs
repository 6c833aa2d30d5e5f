//! The drill's webhook check on the real agent: with `alerts.webhook` at a local receiver, every drilled
//! alert is reported delivered (and the receiver really got it, for the same triggering event); with the
//! webhook at a port nobody listens on, the drill reports the failed delivery and exits 1, and
//! `auditloop status` calls the agent degraded.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use harness::collector::free_port;
use harness::webhook::WebhookReceiver;
use harness::{Agent, temp_dir};
use serde_json::Value;

use super::{assert_no_leftovers, drill, result};
use crate::status::status_until;

/// Three drillable rules, one of them with a kill in the kernel.
const RULES: &str = "- rule: hook_exec_from_tmp
  desc: a program ran from /tmp
  condition: evt.kind = exec and exec.success = true and exec.filename startswith /tmp/
  output: \"ran %exec.filename\"
  severity: error
- rule: hook_shadow_read
  desc: the shadow file was read
  condition: evt.kind = file and file.op = read and file.path = /etc/shadow
  output: \"%proc.name read %file.path\"
  severity: warning
- rule: hook_kill_dev_shm
  desc: exec from /dev/shm is killed in the kernel
  condition: evt.kind = exec and exec.filename startswith /dev/shm/
  output: \"killed %exec.filename\"
  severity: critical
  actions: [alert, kill]
";

/// An agent on `RULES` whose alerts go to `url`.
fn agent_with_webhook(url: &str) -> (Agent, std::path::PathBuf) {
    let rules = temp_dir("rules").join("hook.yaml");
    std::fs::write(&rules, RULES).expect("rules");
    let config = format!("alerts:\n  webhook: {url}\n");
    let agent = Agent::start_with_config(&config, &["--rules", rules.to_str().expect("utf-8")]);
    (agent, rules)
}

/// The triggering seq of each alert in `seen`, by rule.
fn alert_seqs(seen: &[Value]) -> BTreeMap<String, Vec<u64>> {
    let mut seqs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for ev in seen {
        let alert = &ev["event"]["alert"];
        if let (Some(rule), Some(seq)) = (alert["rule"].as_str(), alert["trigger_seq"].as_u64()) {
            seqs.entry(rule.to_owned()).or_default().push(seq);
        }
    }
    seqs
}

#[test]
fn drilled_alerts_are_confirmed_delivered_to_a_local_webhook() {
    let receiver = WebhookReceiver::start();
    let (mut agent, rules) = agent_with_webhook(&receiver.url());
    let (output, report) = drill(&agent, &rules, "10");
    let drilled = [
        "hook_exec_from_tmp",
        "hook_shadow_read",
        "hook_kill_dev_shm",
    ];
    for rule in drilled {
        let row = result(&report, rule);
        assert_eq!(row["result"], "fired", "{rule}: {report:#}");
        assert_eq!(row["webhook"], "delivered", "{rule}: {report:#}");
    }
    assert_eq!(
        result(&report, "hook_kill_dev_shm")["actions"][0],
        "killed in kernel"
    );
    assert!(
        report["webhook"]
            .as_str()
            .is_some_and(|n| n.starts_with("3 alerts delivered, 0 failed, 0 unconfirmed")),
        "{report:#}"
    );
    assert_eq!(output.status.code(), Some(0), "{report:#}");

    // The receiver got each drilled alert, for the very event the agent journaled it for.
    agent.wait_until(harness::EVENT_TIMEOUT, |seen| {
        let seqs = alert_seqs(seen);
        drilled.iter().all(|r| seqs.contains_key(*r))
    });
    let journaled = alert_seqs(agent.seen());
    let mut received: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let deadline = Instant::now() + harness::EVENT_TIMEOUT;
    while !drilled.iter().all(|r| received.contains_key(*r)) {
        let Some(body) = receiver.next_before(deadline) else {
            panic!(
                "the receiver got alerts of {received:?} only; the agent journaled {journaled:?}"
            );
        };
        let rule = body["alert"]["rule"]
            .as_str()
            .expect("alert.rule")
            .to_owned();
        let seq = body["event"]["seq"].as_u64().expect("event.seq");
        assert_eq!(body["alert"]["trigger_seq"], seq, "{body}");
        received.entry(rule).or_default().push(seq);
    }
    for rule in drilled {
        let got = &received[rule];
        assert!(
            journaled
                .get(rule)
                .is_some_and(|seqs| got.iter().all(|s| seqs.contains(s))),
            "{rule}: received {got:?}, journaled {journaled:?}"
        );
    }

    // `auditloop status` counts them, and shows the endpoint without its secret path.
    let state = agent.dir.join("state");
    let (_, status) = status_until(&state, |_, s| {
        s["agent"]["webhook"]["delivered"].as_u64() >= Some(3)
    });
    let hook = &status["agent"]["webhook"];
    assert_eq!(hook["failed"], 0, "{status:#}");
    assert_eq!(hook["url"], format!("http://127.0.0.1:{}", receiver.port));
    let text = std::fs::read_to_string(state.join("status.json")).expect("status file");
    assert!(!text.contains("T0K3N"), "{text}");
    assert_no_leftovers(&report, Path::new("/tmp"));
}

#[test]
fn a_webhook_nobody_listens_on_fails_the_drill() {
    let port = free_port();
    let (agent, rules) = agent_with_webhook(&format!("http://127.0.0.1:{port}/hook/T0K3N"));
    let (output, report) = drill(&agent, &rules, "10");
    for rule in [
        "hook_exec_from_tmp",
        "hook_shadow_read",
        "hook_kill_dev_shm",
    ] {
        let row = result(&report, rule);
        assert_eq!(row["result"], "incomplete", "{rule}: {report:#}");
        assert_eq!(row["webhook"], "failed", "{rule}: {report:#}");
        let reason = row["reason"].as_str().expect("a reason");
        assert!(
            reason.starts_with(&format!(
                "webhook delivery failed (http://127.0.0.1:{port}: after 3 attempts:"
            )),
            "{reason}"
        );
        assert!(!reason.contains("T0K3N"), "{reason}");
    }
    // The kill is still verified; only the delivery failed.
    assert_eq!(
        result(&report, "hook_kill_dev_shm")["actions"][0],
        "killed in kernel"
    );
    assert_eq!(report["fired"], 0, "{report:#}");
    assert_eq!(output.status.code(), Some(1), "{report:#}");

    let state = agent.dir.join("state");
    let (code, status) = status_until(&state, |_, s| s["status"] == "degraded");
    assert_eq!(code, 1);
    let problems: Vec<&str> = status["problems"]
        .as_array()
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with(&format!("the webhook http://127.0.0.1:{port} is failing: "))),
        "{problems:?}"
    );
    assert!(
        status["agent"]["webhook"]["failed"].as_u64() >= Some(3),
        "{status:#}"
    );
    assert_no_leftovers(&report, Path::new("/tmp"));
}
