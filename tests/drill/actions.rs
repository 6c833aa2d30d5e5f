//! The drill's action checks on the real agent: every default rule is drilled with its actions (the
//! rollback rule on a stand-in the agent watches through a drill overlay, restored byte for byte), a
//! rollback that cannot succeed fails the drill with the reason, and the control request that stages an
//! overlay refuses anything outside a root-only drill directory and any peer but root.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use harness::{Agent, agent_bin, marker};
use serde_json::{Value, json};

use super::{assert_no_leftovers, drill, result};

fn default_rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/default.yaml")
}

/// The `config_loaded` records of drill overlays the agent journaled, as `reason` texts.
fn overlay_records(agent: &Agent) -> Vec<String> {
    agent
        .seen()
        .iter()
        .filter_map(|ev| ev["event"]["config_loaded"]["reason"].as_str())
        .filter(|r| r.starts_with("drill_overlay_"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_default_rule_is_drilled_with_its_actions_verified() {
    let rules = default_rules();
    let mut agent = Agent::start(&["--rules", rules.to_str().expect("utf-8")]);
    let (output, report) = drill(&agent, &rules, "10");
    let rows = report["results"].as_array().expect("rows");
    assert_eq!(rows.len(), 10, "{report:#}");
    for row in rows {
        assert_eq!(row["result"], "fired", "{}: {report:#}", row["rule"]);
    }
    assert_eq!(report["drillable"], 10);
    assert_eq!(report["fired"], 10);
    assert_eq!(output.status.code(), Some(0), "{report:#}");

    let rollback = result(&report, "sshd_config_changed");
    assert_eq!(rollback["actions"], json!(["rolled back"]), "{rollback}");
    let stimulus = rollback["stimulus"].as_str().expect("stimulus");
    assert!(
        stimulus.contains("stand-in for /etc/ssh/sshd_config"),
        "{stimulus}"
    );
    assert!(
        rollback["verified"][0]
            .as_str()
            .is_some_and(|v| v.starts_with("restored bytes verified")),
        "{rollback}"
    );
    assert_eq!(
        result(&report, "reverse_shell_connect")["verified"][0],
        "the connection reached the drill's listener on 127.0.0.1"
    );
    // The overlay was journaled when staged and when removed, and the agent watches nothing more.
    agent.wait_until(std::time::Duration::from_secs(5), |seen| {
        seen.iter().any(|ev| {
            ev["event"]["config_loaded"]["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("drill_overlay_removed"))
        })
    });
    let records = overlay_records(&agent);
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(
        records[0].starts_with("drill_overlay_staged")
            && records[0].contains("drill:sshd_config_changed"),
        "{records:?}"
    );
    assert!(records[1].contains("removed by the drill"), "{records:?}");
    assert_no_leftovers(&report, Path::new("/etc"));
}

#[test]
fn a_rollback_that_cannot_succeed_fails_the_drill_naming_why() {
    // A rollback written on a file rule: the rule fires, but only config_change events can be rolled back.
    let rules = marker_dir("rules").join("bad.yaml");
    std::fs::write(
        &rules,
        "- rule: drill_bad_rollback
  desc: a write below the drill's temp files is rolled back
  condition: evt.kind = file and file.op = open and file.success = true and file.path startswith /tmp/
  output: \"%proc.name wrote %file.path\"
  severity: warning
  actions: [alert, rollback]
",
    )
    .expect("rules");
    let agent = Agent::start(&["--rules", rules.to_str().expect("utf-8")]);
    let (output, report) = drill(&agent, &rules, "5");
    let row = result(&report, "drill_bad_rollback");
    assert_eq!(row["result"], "incomplete", "{report:#}");
    let reason = row["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("rollback failed: rollback applies to config_change events only"),
        "{reason}"
    );
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    assert_no_leftovers(&report, Path::new("/tmp"));
    harness::remove_tree(rules.parent().expect("dir"));
}

/// A fresh directory under /tmp named `name` (0700, root's).
fn private_dir(name: &str) -> PathBuf {
    let dir = Path::new("/tmp").join(name);
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    dir
}

fn marker_dir(name: &str) -> PathBuf {
    harness::temp_dir(name)
}

/// Sends one request line to the agent's control socket; its reply.
fn ask(agent: &Agent, request: &Value) -> Value {
    let socket = agent.dir.join("state/holds.sock");
    let mut stream = UnixStream::connect(&socket).expect("connect to the control socket");
    let mut line = request.to_string();
    line.push('\n');
    stream.write_all(line.as_bytes()).expect("send");
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).expect("reply");
    serde_json::from_str(&reply).expect("JSON reply")
}

fn stage(file: &Path, rules: &str) -> Value {
    json!({ "drill_stage": { "file": file, "rules": rules, "ttl_secs": 20 } })
}

const ROLLBACK: &str = "- rule: r
  desc: d
  condition: evt.kind = config_change
  output: o
  actions: [alert, rollback]
";

#[test]
fn the_overlay_request_refuses_paths_outside_a_drill_directory_and_non_root_peers() {
    let agent = Agent::start(&[]);
    let refused = |reply: &Value, why: &str| {
        let text = reply["error"].as_str().unwrap_or_default();
        assert!(text.starts_with("refused") && text.contains(why), "{reply}");
    };
    // Absolute paths elsewhere, and `..` out of a drill directory.
    refused(
        &ask(&agent, &stage(Path::new("/etc/passwd"), ROLLBACK)),
        "drill directory",
    );
    let name = format!("auditloop-drill-{}", marker("hostile"));
    let dir = private_dir(&name);
    let escape = dir.join("../../etc/passwd");
    refused(
        &ask(&agent, &stage(&escape, ROLLBACK)),
        "plain absolute path",
    );
    // A symbolic link to /etc/passwd inside a drill directory, and a drill directory that is a link to /etc.
    let link = dir.join("passwd");
    std::os::unix::fs::symlink("/etc/passwd", &link).expect("symlink");
    refused(&ask(&agent, &stage(&link, ROLLBACK)), "symbolic link");
    let linked_dir = Path::new("/tmp").join(format!("{name}-etc"));
    std::os::unix::fs::symlink("/etc", &linked_dir).expect("symlink");
    refused(
        &ask(&agent, &stage(&linked_dir.join("passwd"), ROLLBACK)),
        "symbolic link",
    );
    // A hard link to a file outside, and a drill directory others may enter.
    let hard = dir.join("hard");
    std::fs::hard_link(agent.dir.join("config.yaml"), &hard).expect("hard link");
    refused(&ask(&agent, &stage(&hard, ROLLBACK)), "one link");
    let file = dir.join("conf");
    std::fs::write(&file, b"good\n").expect("write");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    refused(&ask(&agent, &stage(&file, ROLLBACK)), "mode 0700");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    // Overlay rules may only alert and roll back.
    refused(
        &ask(&agent, &stage(&file, &ROLLBACK.replace("rollback", "kill"))),
        "may only alert and roll back",
    );
    // A well-formed request is staged, and removed again.
    let staged = ask(&agent, &stage(&file, ROLLBACK));
    let id = staged["drill_staged"]["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("{staged}"));
    assert_eq!(staged["drill_staged"]["rules"], json!(["drill:r"]));
    assert_eq!(
        ask(&agent, &json!({ "drill_remove": { "id": id } })),
        json!("drill_removed")
    );

    // A peer that is not root is refused, even when it can reach the socket.
    let state = agent.dir.join("state");
    let socket = state.join("holds.sock");
    for (path, mode) in [(&agent.dir, 0o711), (&state, 0o711), (&socket, 0o666)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let nobody = Command::new(agent_bin())
        .args(["holds", "list", "--config"])
        .arg(agent.dir.join("config.yaml"))
        .arg("--state-dir")
        .arg(&state)
        .uid(65534)
        .gid(65534)
        .output()
        .expect("running auditloop holds as nobody");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let stderr = String::from_utf8_lossy(&nobody.stderr);
    assert!(!nobody.status.success(), "{stderr}");
    assert!(
        stderr.contains("only root (uid 0) may use the control socket, not uid 65534"),
        "{stderr}"
    );
    std::fs::remove_file(&linked_dir).expect("remove link");
    harness::remove_tree(&dir);
}
