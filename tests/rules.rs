//! Rules and actions on the real kernel: an exec-time rule kills in the kernel before the program runs, a
//! userspace rule kills through a pidfd, a changed watched file is rolled back byte for byte, and a bad
//! rules file on reload leaves the old rules in force and names line:col.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

use harness::{Agent, temp_dir};

fn deny_rule(dir: &std::path::Path) -> String {
    format!(
        "- rule: deny_test_bin\n  desc: test\n  condition: evt.kind = exec and exec.filename startswith {}/\n  output: \"denied %exec.filename\"\n  severity: critical\n  actions: [kill]\n",
        dir.display()
    )
}

fn evil(dir: &std::path::Path, marker: &std::path::Path) -> std::path::PathBuf {
    let bin = dir.join("evil");
    std::fs::write(&bin, format!("#!/bin/sh\ntouch {}\n", marker.display())).expect("script");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    bin
}

#[test]
fn exec_rule_kills_in_the_kernel_before_the_program_runs() {
    let dir = temp_dir("denybin");
    let rules = temp_dir("rules").join("deny.yaml");
    std::fs::write(&rules, deny_rule(&dir)).expect("rules");
    let mut agent = Agent::start(&["--rules", rules.to_str().expect("utf-8")]);
    let marker = dir.with_extension("marker");
    let bin = evil(&dir, &marker);
    let status = Command::new(&bin).status().expect("spawn");
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status:?}");
    assert!(
        !marker.exists(),
        "the program ran: its first action created {}",
        marker.display()
    );
    let action = agent.wait_for("action", |_, a| {
        a["action"] == "kernel_kill" && a["rule"] == "deny_test_bin"
    });
    let exec = agent.wait_for("exec", |_, x| x["filename"] == bin.to_str().expect("utf-8"));
    assert_eq!(
        action["event"]["action"]["trigger_seq"], exec["seq"],
        "{action} {exec}"
    );
    assert_eq!(exec["event"]["exec"]["killed_by_rule"], 0, "{exec}");
    agent.wait_for("alert", |_, a| {
        a["rule"] == "deny_test_bin" && a["trigger_seq"] == exec["seq"]
    });
    // A sibling program outside the rule runs normally.
    assert!(Command::new("/bin/true").status().expect("true").success());
}

#[test]
fn userspace_rule_kills_through_a_pidfd() {
    let dir = temp_dir("killdir");
    let rules = temp_dir("rules").join("kill.yaml");
    std::fs::write(
        &rules,
        format!(
            "- rule: kill_writer\n  desc: t\n  condition: evt.kind = file and file.op = open and file.path startswith {}/\n  output: \"%proc.name wrote %file.path\"\n  severity: error\n  actions: [alert, kill]\n",
            dir.display()
        ),
    )
    .expect("rules");
    let mut agent = Agent::start(&["--rules", rules.to_str().expect("utf-8")]);
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(": > {}/f; exec sleep 30", dir.display()))
        .spawn()
        .expect("sh");
    let pid = child.id();
    let action = agent.wait_for("action", |_, a| {
        a["action"] == "kill" && a["target_pid"] == u64::from(pid)
    });
    assert_eq!(action["event"]["action"]["ok"], true, "{action}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "writer still alive");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.signal(), Some(9), "{status:?}");
}

#[test]
fn changed_watched_file_is_rolled_back_byte_for_byte() {
    let watched = temp_dir("rollback");
    let file = watched.join("sshd_config");
    let good = b"Port 22\nPermitRootLogin no\n\x00binary-safe\xff\n".to_vec();
    std::fs::write(&file, &good).expect("good content");
    let rules = temp_dir("rules").join("rollback.yaml");
    std::fs::write(
        &rules,
        format!(
            "- rule: restore_sshd\n  desc: t\n  condition: evt.kind = config_change and change.path = {}\n  output: \"restoring %change.path\"\n  severity: critical\n  actions: [alert, rollback]\n",
            file.display()
        ),
    )
    .expect("rules");
    let config = format!("watch:\n  paths: [{}]\n", watched.display());
    let mut agent = Agent::start_with_config(&config, &["--rules", rules.to_str().expect("utf-8")]);
    std::fs::write(&file, b"Port 22\nPermitRootLogin yes\n").expect("bad edit");
    let action = agent.wait_for("action", |_, a| a["action"] == "rollback");
    assert_eq!(action["event"]["action"]["ok"], true, "{action}");
    assert_eq!(
        std::fs::read(&file).expect("file"),
        good,
        "restored byte for byte"
    );
    let change = agent.wait_for("config_change", |_, c| {
        c["path"] == file.to_str().expect("utf-8")
    });
    assert_eq!(action["event"]["action"]["trigger_seq"], change["seq"]);
    assert_eq!(
        action["event"]["action"]["after_sha256"],
        change["event"]["config_change"]["old_sha256"]
    );
}

#[test]
fn bad_rules_on_reload_keep_the_old_rules_and_name_line_col() {
    let dir = temp_dir("reloadbin");
    let rules = temp_dir("rules").join("r.yaml");
    std::fs::write(&rules, deny_rule(&dir)).expect("rules");
    let mut agent = Agent::start(&["--rules", rules.to_str().expect("utf-8")]);
    std::fs::write(
        &rules,
        "- rule: broken\n  desc: t\n  condition: evt.kind = exec and proc.nmae = bash\n  output: x\n  severity: warning\n",
    )
    .expect("bad rules");
    agent.signal(libc::SIGHUP);
    let rejected = agent.wait_for("rules_rejected", |_, _| true);
    let errors = rejected["event"]["rules_rejected"]["errors"]
        .as_str()
        .expect("errors")
        .to_owned();
    assert!(
        errors.contains("r.yaml:3:") && errors.contains("proc.nmae"),
        "{errors}"
    );
    let marker = dir.with_extension("marker");
    let bin = evil(&dir, &marker);
    let status = Command::new(&bin).status().expect("spawn");
    assert_eq!(
        status.signal(),
        Some(9),
        "the old deny rule is still enforced"
    );
    assert!(!marker.exists());
}

#[test]
fn alert_reaches_a_local_webhook_receiver() {
    let receiver = harness::webhook::WebhookReceiver::start();
    let marker = harness::marker("webhook");
    let rules = temp_dir("rules").join("hook.yaml");
    std::fs::write(
        &rules,
        format!(
            "- rule: hook_test\n  desc: t\n  condition: evt.kind = exec and proc.cmdline contains {marker}\n  output: \"ran %proc.cmdline\"\n  severity: notice\n  tags: [T0000]\n"
        ),
    )
    .expect("rules");
    let config = format!("alerts:\n  webhook: {}\n", receiver.url());
    let _agent = Agent::start_with_config(&config, &["--rules", rules.to_str().expect("utf-8")]);
    assert!(
        Command::new("/bin/true")
            .arg(&marker)
            .status()
            .expect("true")
            .success()
    );
    let deadline = std::time::Instant::now() + harness::EVENT_TIMEOUT;
    loop {
        let json = receiver
            .next_before(deadline)
            .expect("no alert reached the webhook");
        if json["alert"]["rule"] == "hook_test" {
            assert!(
                json["alert"]["output"]
                    .as_str()
                    .is_some_and(|o| o.contains(&marker)),
                "{json}"
            );
            assert_eq!(json["event"]["seq"], json["alert"]["trigger_seq"], "{json}");
            assert_eq!(json["alert"]["tags"][0], "T0000");
            break;
        }
    }
}

#[test]
fn sequence_rule_kills_within_the_window() {
    let dir = temp_dir("seqdir");
    let rules = temp_dir("rules").join("seq.yaml");
    std::fs::write(
        &rules,
        format!(
            "- rule: write_then_run
  desc: a process writes in the watched dir, then turns into another program
  sequence:
    within: 10s
    by: [proc.pid]
    steps:
      - condition: evt.kind = file and file.op = open and file.path startswith {dir}/
      - condition: evt.kind = exec and exec.success = true and exec.filename = /bin/sleep
  output: \"%proc.name (pid %proc.pid) ran %exec.filename after writing in the watched dir\"
  severity: critical
  actions: [alert, kill]
",
            dir = dir.display()
        ),
    )
    .expect("rules");
    let mut agent = Agent::start(&["--rules", rules.to_str().expect("utf-8")]);
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(": > {}/payload; exec /bin/sleep 30", dir.display()))
        .spawn()
        .expect("sh");
    let pid = child.id();
    let alert = agent.wait_for("alert", |_, a| a["rule"] == "write_then_run");
    let action = agent.wait_for("action", |_, a| {
        a["action"] == "kill" && a["target_pid"] == u64::from(pid)
    });
    assert_eq!(action["event"]["action"]["ok"], true, "{action}");
    assert_eq!(
        action["event"]["action"]["trigger_seq"],
        alert["event"]["alert"]["trigger_seq"]
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the process survived the sequence rule"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.signal(), Some(9), "{status:?}");
}
