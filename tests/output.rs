//! `run --output`: `alerts` prints only findings and `none` prints nothing, while every event is journaled
//! all the same.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::{agent_bin, marker, remove_tree, require_root, temp_dir};

/// Starts `auditloop run --output <format>` with a rule on a marked exec, waits for capture to start
/// (its log line), runs the marked exec, and stops the agent once `done(stdout so far)` holds or after a
/// few seconds. Returns stdout's lines and the journal export.
fn run_with_output(
    format: &str,
    done: impl Fn(&[String]) -> bool,
) -> (Vec<String>, Vec<serde_json::Value>) {
    require_root();
    let dir = temp_dir(&format!("output-{format}"));
    let mark = marker("output");
    let rules = dir.join("rules.yaml");
    std::fs::write(
        &rules,
        format!(
            "- rule: marked_exec\n  desc: t\n  condition: evt.kind = exec and proc.cmdline contains {mark}\n  output: \"marked %proc.pid\"\n  severity: notice\n"
        ),
    )
    .expect("rules");
    std::fs::write(dir.join("config.yaml"), "").expect("config");
    let state = dir.join("state");
    let mut child = Command::new(agent_bin())
        .args(["run", "--output", format, "--config"])
        .arg(dir.join("config.yaml"))
        .arg("--state-dir")
        .arg(&state)
        .arg("--rules")
        .arg(&rules)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning the agent");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut log = String::new();
    loop {
        let mut line = String::new();
        let n = stderr.read_line(&mut line).expect("agent stderr");
        assert!(n > 0, "agent ended before capture started:\n{log}");
        log.push_str(&line);
        if line.contains("capture started") {
            break;
        }
    }
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
    });
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let status = Command::new("/bin/sh")
        .args(["-c", &format!(": {mark}; true")])
        .status()
        .expect("sh");
    assert!(status.success());
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done(&lines) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    assert!(status.success(), "agent exit {status}");
    lines.extend(rx.try_iter());
    let export = Command::new(agent_bin())
        .arg("export")
        .arg(state.join("journal"))
        .output()
        .expect("export");
    assert!(export.status.success(), "{export:?}");
    let journaled = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("export line is JSON"))
        .collect();
    remove_tree(&dir);
    let marked = |events: &Vec<serde_json::Value>| {
        events.iter().any(|e| {
            e["event"]["exec"]["argv"][2]
                .as_str()
                .is_some_and(|a| a.contains(&mark))
        })
    };
    assert!(
        marked(&journaled),
        "the marked exec is journaled whatever is printed"
    );
    (lines, journaled)
}

#[test]
fn alerts_output_prints_findings_only() {
    let has_alert = |lines: &[String]| lines.iter().any(|l| l.contains("\"marked_exec\""));
    let (lines, journaled) = run_with_output("alerts", has_alert);
    assert!(has_alert(&lines), "the alert is printed: {lines:?}");
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        let kind = v["event"]
            .as_object()
            .and_then(|o| o.keys().next().cloned());
        assert!(
            matches!(
                kind.as_deref(),
                Some("alert" | "action" | "loss" | "rules_rejected" | "tamper")
            ),
            "only findings are printed: {line}"
        );
    }
    assert!(
        journaled.len() > lines.len(),
        "the journal holds every event ({}), stdout only findings ({})",
        journaled.len(),
        lines.len()
    );
}

#[test]
fn none_output_prints_nothing() {
    let (lines, journaled) = run_with_output("none", |_| false);
    assert!(lines.is_empty(), "nothing is printed: {lines:?}");
    assert!(
        journaled
            .iter()
            .any(|e| e["event"]["alert"]["rule"] == "marked_exec"),
        "the alert is journaled"
    );
}
