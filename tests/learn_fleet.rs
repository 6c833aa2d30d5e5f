//! Fleet-wide learning and rules diffs at the collector: a real agent ships what the kernel saw to a real
//! collector whose configuration file defines a host group; the API learns the group's baseline from the
//! stored events (the programs this test started are in the proposal, and the proposal raises nothing on
//! the window it came from), diffs a rule change over the same events (each added alert names its host),
//! and refuses a pattern that reaches outside the group.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use auditloop_protocol::api::rules::{RULES_DIFF, RULES_LEARN, RULES_STATS_CSV};
use harness::collector::{Collector, free_port};
use harness::{Agent, marker, require_root, temp_dir};
use serde_json::{Value, json};

/// Times the marker program runs.
const RUNS: u64 = 4;

/// Waits until the collector holds `n` verified events of `host` whose summary holds `text`.
fn wait_verified(collector: &Collector, host: &str, text: &str, n: usize) {
    let start = Instant::now();
    loop {
        let page = collector.get(&format!(
            "/v1/events?host={host}&kind=exec&q={text}&limit=100"
        ));
        let found = page["events"].as_array().map_or(0, Vec::len);
        if found >= n {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the collector holds {found} of {n} verified exec events of {text}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_group_learns_and_diffs_over_events_a_real_agent_shipped() {
    require_root();
    let dir = temp_dir("learn-fleet");
    let config = dir.join("collector.yaml");
    std::fs::write(&config, "groups:\n  lab:\n    - \"learn-a-*\"\n").expect("config");
    let collector = Collector::start_with(
        &dir.join("collector"),
        free_port(),
        &["--config", config.to_str().expect("utf-8")],
    );
    let host = "learn-a-1";
    let state = dir.join("state");
    let token = collector.enroll(host, &state);
    let _agent = Agent::start(&[
        "--state-dir",
        state.to_str().expect("utf-8"),
        "--collector",
        &collector.url(),
        "--token-file",
        token.to_str().expect("utf-8"),
        "--host-id",
        host,
    ]);
    collector.wait_host(host, Duration::from_secs(60), |h| {
        h["last_verified_seq"].as_u64().is_some()
    });
    let name = marker("learn");
    let program = dir.join(&name);
    std::fs::copy("/bin/true", &program).expect("copy true");
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let program = program.to_str().expect("utf-8").to_owned();
    let since = auditloop_model::WallTime::now().0;
    for _ in 0..RUNS {
        let status = Command::new(&program).status().expect("run marker");
        assert!(status.success());
    }
    wait_verified(&collector, host, &name, RUNS as usize);
    let until = auditloop_model::WallTime::now().0;
    let window = format!("since={since}&until={until}");

    // The group's baseline: the test binary started the marker, so it is a normal child of its parent.
    let learned = collector.get(&format!("{RULES_LEARN}?group=lab&{window}"));
    assert_eq!(learned["selection"], "group lab", "{learned}");
    assert_eq!(learned["hosts"][0]["host"], host, "{learned}");
    assert_eq!(learned["truncated"], false, "{learned}");
    let yaml = learned["yaml"].as_str().expect("yaml");
    assert!(
        yaml.contains(&format!("\"{program}\"")),
        "the marker is a learned value: {yaml}"
    );
    let parent = std::env::current_exe().expect("current exe");
    let exec_rule = learned["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| {
            r["flags"] == "exec_under_parent"
                && r["subjects"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s == parent.to_str().expect("utf-8")))
        })
        .cloned()
        .unwrap_or_else(|| panic!("no exec rule for {}: {learned}", parent.display()));
    assert!(exec_rule["support"].as_u64() >= Some(RUNS), "{exec_rule}");

    // The proposal is silent on the window it was learned from.
    let (status, silent) = collector.post_json(
        RULES_DIFF,
        &json!({ "old": "", "new": yaml, "group": "lab", "since": since.to_string(), "until": until.to_string() }),
    );
    assert_eq!(status, 200, "{silent}");
    assert_eq!(silent["added"], 0, "the baseline raises nothing: {silent}");

    // A rule on the marker, diffed over the same window: every run is an added alert of this host.
    let rule = format!(
        "- rule: marker_ran\n  condition: evt.kind = exec and exec.filename = {program}\n  output: \"ran %exec.filename\"\n"
    );
    let (status, diff) = collector.post_json(
        RULES_DIFF,
        &json!({ "old": "", "new": rule, "group": "lab", "since": since.to_string(), "until": until.to_string(), "examples": 2 }),
    );
    assert_eq!(status, 200, "{diff}");
    let rules = diff["rules"].as_array().expect("rules");
    let marker_rule: &Value = rules
        .iter()
        .find(|r| r["rule"] == "marker_ran")
        .unwrap_or_else(|| panic!("marker_ran is not in the diff: {diff}"));
    assert_eq!(marker_rule["status"], "added", "{diff}");
    assert_eq!(marker_rule["added"], RUNS, "{diff}");
    assert_eq!(marker_rule["added_examples"][0]["host"], host, "{diff}");
    assert_eq!(
        marker_rule["added_examples"][0]["output"],
        format!("ran {program}"),
        "{diff}"
    );

    // A pattern narrows the group and never leaves it; a bad rule names its line and column.
    let (status, body) = collector.get_any(&format!("{RULES_LEARN}?group=lab&hosts=other-*"));
    assert_eq!(status, 404, "{body}");
    let (status, body) = collector.post_json(
        RULES_DIFF,
        &json!({ "old": "", "new": "- rule: r\n  condition: exec.nope = 1\n  output: o\n", "group": "lab" }),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("new.yaml:2:14:")),
        "{body}"
    );
    let (status, csv) = collector.get_any(RULES_STATS_CSV);
    assert_eq!(status, 200, "{csv}");
    assert!(
        csv.as_str()
            .is_some_and(|c| c.starts_with("rule,status,hits,last_24h,hosts,last\n")),
        "{csv}"
    );
}
