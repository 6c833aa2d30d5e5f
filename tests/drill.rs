//! `auditloop drill` against the real agent on the real kernel: the drillable rules' alerts (and kills)
//! are found in the journal, a rule the agent does not have is reported as missing with exit status 1,
//! and the drill refuses to run without a live agent. The `actions` module drills the default rules with
//! their corrective actions (rollback on a stand-in, kills checked by a marker) and attacks the control
//! request that stages a drill overlay. The `webhook` module checks the drilled alerts' delivery to
//! `alerts.webhook`, to a local receiver and to a port nobody listens on.

mod actions;
mod webhook;

use std::path::Path;
use std::process::{Command, Output};

use harness::{Agent, agent_bin, temp_dir};
use serde_json::Value;

/// Rules of every supported shape, among them a network rule the drill stages with a loopback connection.
fn rules(kill_dir: &Path) -> String {
    format!(
        "- rule: drill_exec_from_tmp
  desc: a program ran from /tmp
  condition: evt.kind = exec and exec.success = true and exec.filename startswith /tmp/
  output: \"ran %exec.filename\"
  severity: error
- rule: drill_shadow_read
  desc: the shadow file was read
  condition: evt.kind = file and file.op = read and file.path = /etc/shadow
  output: \"%proc.name read %file.path\"
  severity: warning
- rule: drill_kill_dev_shm
  desc: exec from /dev/shm is killed in the kernel
  condition: evt.kind = exec and exec.filename startswith /dev/shm/
  output: \"killed %exec.filename\"
  severity: critical
  actions: [alert, kill]
- rule: drill_kill_writer
  desc: a writer in the watched dir is killed through a pidfd
  condition: evt.kind = file and file.op = open and file.success = true and file.path startswith {dir}/
  output: \"%proc.name wrote %file.path\"
  severity: critical
  actions: [alert, kill]
- rule: drill_reverse_shell
  desc: outbound connection
  condition: evt.kind = net and net.op = connect and net.family in (inet, inet6)
  output: \"connect to %net.address\"
  severity: critical
",
        dir = kill_dir.display()
    )
}

/// Runs `auditloop drill --json` on `agent`'s state directory.
pub(crate) fn drill(agent: &Agent, rules: &Path, timeout: &str) -> (Output, Value) {
    let output = Command::new(agent_bin())
        .arg("drill")
        .arg("--config")
        .arg(agent.dir.join("config.yaml"))
        .arg("--state-dir")
        .arg(agent.dir.join("state"))
        .arg("--rules")
        .arg(rules)
        .args(["--timeout", timeout, "--json"])
        .output()
        .expect("running auditloop drill");
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "drill printed no JSON report ({e}); status {:?}\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, report)
}

pub(crate) fn result<'a>(report: &'a Value, rule: &str) -> &'a Value {
    report["results"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["rule"] == rule))
        .unwrap_or_else(|| panic!("no result for {rule}: {report:#}"))
}

/// Entries in `dir` named like the files of the drill that reported `report` (other tests may be
/// drilling at the same time, with their own nonces).
fn leftovers(dir: &Path, report: &Value) -> Vec<String> {
    let nonce = report["nonce"]
        .as_str()
        .expect("the report names its nonce");
    let prefix = format!("auditloop-drill-{nonce}-");
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts the drill that reported `report` left none of its files in the temp dirs or `kill_dir`.
pub(crate) fn assert_no_leftovers(report: &Value, kill_dir: &Path) {
    for dir in [Path::new("/tmp"), Path::new("/dev/shm"), kill_dir] {
        assert_eq!(
            leftovers(dir, report),
            Vec::<String>::new(),
            "left in {}",
            dir.display()
        );
    }
}

#[test]
fn drillable_rules_fire_end_to_end_and_kills_are_reported() {
    let kill_dir = temp_dir("drillkill");
    let rules_file = temp_dir("rules").join("drill.yaml");
    std::fs::write(&rules_file, rules(&kill_dir)).expect("rules");
    let agent = Agent::start(&["--rules", rules_file.to_str().expect("utf-8")]);
    let (output, report) = drill(&agent, &rules_file, "10");
    for rule in [
        "drill_exec_from_tmp",
        "drill_shadow_read",
        "drill_kill_dev_shm",
        "drill_kill_writer",
    ] {
        let row = result(&report, rule);
        assert_eq!(row["result"], "fired", "{rule}: {report:#}");
        assert!(row["latency_ms"].is_u64(), "{row}");
    }
    for rule in ["drill_kill_dev_shm", "drill_kill_writer"] {
        let killed = result(&report, rule)["actions"]
            .as_array()
            .is_some_and(|a| {
                a.iter()
                    .any(|x| x.as_str().is_some_and(|s| s.starts_with("killed")))
            });
        assert!(killed, "{rule} reports no kill: {report:#}");
    }
    assert_eq!(
        result(&report, "drill_kill_dev_shm")["actions"][0],
        "killed in kernel"
    );
    assert_eq!(
        result(&report, "drill_shadow_read")["stimulus"],
        "open O_RDONLY /etc/shadow"
    );
    let net = result(&report, "drill_reverse_shell");
    assert_eq!(net["result"], "fired", "{report:#}");
    assert!(
        net["verified"][0]
            .as_str()
            .is_some_and(|v| v.contains("reached the drill's listener on 127.0.0.1")),
        "{net}"
    );
    // The kill of the writer (in the stimulus process itself) is checked by its marker.
    let writer = result(&report, "drill_kill_writer");
    assert!(
        writer["verified"]
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x
                .as_str()
                .is_some_and(|s| s.starts_with("killed before its marker was written")))),
        "{writer}"
    );
    assert_eq!(report["drillable"], 5);
    assert_eq!(report["fired"], 5);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_no_leftovers(&report, &kill_dir);
}

#[test]
fn a_rule_the_agent_lacks_reports_no_alert_and_exit_1() {
    let kill_dir = temp_dir("drillmiss");
    let full = rules(&kill_dir);
    let agent_rules = temp_dir("rules").join("agent.yaml");
    // The agent runs without the exec rule (the first one).
    let without_exec = full
        .split_once("- rule: drill_shadow_read")
        .map(|(_, rest)| format!("- rule: drill_shadow_read{rest}"))
        .expect("split rules");
    std::fs::write(&agent_rules, without_exec).expect("rules");
    let drill_rules = temp_dir("rules").join("drill.yaml");
    std::fs::write(&drill_rules, &full).expect("rules");
    let agent = Agent::start(&["--rules", agent_rules.to_str().expect("utf-8")]);
    let (output, report) = drill(&agent, &drill_rules, "2");
    assert_eq!(
        result(&report, "drill_exec_from_tmp")["result"],
        "no_alert",
        "{report:#}"
    );
    assert_eq!(result(&report, "drill_shadow_read")["result"], "fired");
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    assert_no_leftovers(&report, &kill_dir);
}

#[test]
fn refuses_without_a_running_agent_and_names_bad_rules() {
    let state = temp_dir("drillstate");
    let rules_file = temp_dir("rules").join("drill.yaml");
    std::fs::write(&rules_file, rules(&state)).expect("rules");
    let agent = Agent::start(&[
        "--state-dir",
        state.to_str().expect("utf-8"),
        "--rules",
        rules_file.to_str().expect("utf-8"),
    ]);
    let (status, _) = agent.stop_with(libc::SIGINT);
    assert!(status.success(), "{status:?}");
    let run = |rules: &Path| {
        Command::new(agent_bin())
            .arg("drill")
            .arg("--config")
            .arg(state.join("none.yaml"))
            .arg("--state-dir")
            .arg(&state)
            .arg("--rules")
            .arg(rules)
            .output()
            .expect("running auditloop drill")
    };
    let stopped = run(&rules_file);
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert_eq!(stopped.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no agent is running"), "{stderr}");
    let bad = temp_dir("rules").join("bad.yaml");
    std::fs::write(
        &bad,
        "- rule: broken\n  desc: t\n  condition: evt.kind = exec and proc.nmae = bash\n  output: x\n",
    )
    .expect("bad rules");
    let rejected = run(&bad);
    let stderr = String::from_utf8_lossy(&rejected.stderr);
    assert_eq!(rejected.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.yaml:3:"), "{stderr}");
    harness::remove_tree(&state);
}
