//! Ancestry on the real kernel: a rule on `proc.aname[2]` fires for a shell whose grandparent is a server
//! process (a copy of the shell named `nginx`) and not for the same shell started elsewhere; exec events
//! carry the compact chain and the working directory.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use harness::{Agent, marker, remove_tree, temp_dir};

/// Runs `sh -c '<sh -c ": marker; true">; true'` under `shell`, so the inner shell (whose argv holds
/// `marker`) is a grandchild of `shell`: each `-c` script has two commands, so neither shell execs its
/// last command in place.
fn nested_shell(shell: &std::path::Path, marker: &str, cwd: &std::path::Path) {
    let status = Command::new(shell)
        .arg("-c")
        .arg(format!(
            "/bin/sh -c '/bin/sh -c \": {marker}; true\"; true'; true"
        ))
        .current_dir(cwd)
        .status()
        .expect("spawning the shells");
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_grandparent_rule_fires_only_under_the_server() {
    let dir = temp_dir("ancestry");
    let nginx = dir.join("nginx");
    std::fs::copy("/bin/sh", &nginx).expect("copy /bin/sh");
    std::fs::set_permissions(&nginx, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mark = marker("grandparent");
    let rules = dir.join("rules.yaml");
    std::fs::write(
        &rules,
        format!(
            "- rule: shell_under_server\n  desc: t\n  condition: evt.kind = exec and proc.aname[2] = nginx and proc.cmdline contains {mark}\n  output: \"shell %proc.pid under %proc.aname[2] (%proc.apid[2]), ancestors %proc.ancestors, cwd %proc.cwd\"\n  severity: warning\n"
        ),
    )
    .expect("rules");
    let mut agent = Agent::start(&["--rules", rules.to_str().expect("utf-8")]);

    // The same shells, first from this test (grandparent: the test binary), then under `nginx`.
    nested_shell(std::path::Path::new("/bin/sh"), &mark, &dir);
    let inner = format!(": {mark}; true");
    let elsewhere = agent.wait_for("exec", |_, x| x["success"] == true && x["argv"][2] == inner);
    nested_shell(&nginx, &mark, &dir);
    let alert = agent.wait_for("alert", |_, a| a["rule"] == "shell_under_server");
    let under = agent.wait_for("exec", |e, x| {
        x["success"] == true
            && x["argv"][2] == inner
            && e["process"]["pid"] != elsewhere["process"]["pid"]
    });
    let output = alert["event"]["alert"]["output"].as_str().expect("output");
    assert_eq!(
        alert["event"]["alert"]["trigger_seq"], under["seq"],
        "the alert is for the shell under nginx: {alert} {under}"
    );
    assert!(output.contains("under nginx ("), "{output}");
    assert!(
        output.contains(&format!("cwd {}", dir.display())),
        "{output}"
    );
    // The compact chain on the exec event: parent (the middle shell), then nginx, with pids and starts.
    let chain = under["event"]["exec"]["ancestors"]
        .as_array()
        .expect("ancestors");
    assert!(chain.len() >= 3 && chain.len() <= 4, "{under}");
    assert_eq!(chain[0]["pid"], under["process"]["ppid"], "{under}");
    assert_eq!(
        chain[1]["exe"],
        nginx.to_str().expect("utf-8"),
        "the grandparent is the server copy: {under}"
    );
    assert!(
        chain[1]["start"].is_string() && chain[1]["unknown"] == false,
        "{under}"
    );
    assert!(
        chain.iter().all(|a| a["argv"] == serde_json::json!([])),
        "{under}"
    );
    assert_eq!(
        under["event"]["exec"]["cwd"],
        dir.to_str().expect("utf-8"),
        "{under}"
    );
    assert!(output.contains(" nginx "), "{output}");

    // The shell started from the test matched no rule (its alert would have come before the other's).
    let elsewhere_alerts = agent
        .seen()
        .iter()
        .filter(|e| e["event"]["alert"]["trigger_seq"] == elsewhere["seq"])
        .count();
    assert_eq!(elsewhere_alerts, 0, "the rule fired outside nginx");
    let elsewhere_chain = &elsewhere["event"]["exec"]["ancestors"];
    assert_ne!(elsewhere_chain[1]["exe"], nginx.to_str().expect("utf-8"));
    remove_tree(&dir);
}
