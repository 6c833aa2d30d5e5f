//! Process capture: exec (argv, pid, ppid, result), fork and exit.

use std::process::Command;

use harness::{Agent, marker};
use serde_json::Value;

fn argv_is(exec: &Value, want: &[&str]) -> bool {
    exec["argv"].as_array().is_some_and(|a| {
        a.iter()
            .map(Value::as_str)
            .eq(want.iter().map(|s| Some(*s)))
    })
}

fn pid_is(ev: &Value, pid: u32) -> bool {
    ev["process"]["pid"] == u64::from(pid)
}

#[test]
fn exec_fork_and_exit_of_a_marked_command() {
    let mut agent = Agent::start(&[]);
    let marker = marker("exec");
    let mut child = Command::new("/bin/sh")
        .args(["-c", &format!("exec /bin/true {marker}")])
        .spawn()
        .expect("spawn /bin/sh");
    let pid = child.id();
    assert!(child.wait().expect("wait").success());
    let me = u64::from(std::process::id());

    let ev = agent.wait_for("exec", |_, e| argv_is(e, &["/bin/true", &marker]));
    let exec = &ev["event"]["exec"];
    assert!(pid_is(&ev, pid), "{ev}");
    assert_eq!(ev["process"]["ppid"], me, "{ev}");
    assert_eq!(ev["process"]["comm"], "true", "{ev}");
    // The filename is the file the kernel ran (canonical: /bin may be a link to usr/bin); the spelling
    // the program used stays in raw_filename when it differs.
    let canonical = std::fs::canonicalize("/bin/true").expect("canonical /bin/true");
    assert_eq!(exec["filename"], canonical.to_str().expect("utf-8"), "{ev}");
    let raw = if canonical == std::path::Path::new("/bin/true") {
        ""
    } else {
        "/bin/true"
    };
    assert_eq!(exec["raw_filename"], raw, "{ev}");
    assert_eq!(exec["ret"], 0, "{ev}");
    assert_eq!(exec["success"], true, "{ev}");
    assert_eq!(exec["old_comm"], "sh", "{ev}");
    assert_eq!(exec["argv_truncated"], false, "{ev}");

    let fork = agent.wait_for("fork", |_, f| f["child_pid"] == u64::from(pid));
    assert_eq!(fork["process"]["pid"], me, "{fork}");
    assert_eq!(fork["event"]["fork"]["thread"], false, "{fork}");

    let exit = agent.wait_for("exit", |e, _| pid_is(e, pid));
    assert_eq!(exit["event"]["exit"]["code"], 0, "{exit}");
    assert_eq!(exit["event"]["exit"]["signal"], Value::Null, "{exit}");
    assert_eq!(exit["process"]["ppid"], me, "{exit}");

    let seq = |e: &Value| e["seq"].as_u64().expect("seq");
    assert!(
        seq(&fork) < seq(&ev) && seq(&ev) < seq(&exit),
        "fork, exec, exit in order: {fork} {ev} {exit}"
    );
}

#[test]
fn exit_code_and_fatal_signal() {
    let mut agent = Agent::start(&[]);
    let mut three = Command::new("/bin/sh")
        .args(["-c", "exit 3"])
        .spawn()
        .expect("spawn");
    let three_pid = three.id();
    assert_eq!(three.wait().expect("wait").code(), Some(3));

    let mut sleeper = Command::new("/bin/sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    let sleeper_pid = sleeper.id();
    // Make sure it runs before it is killed, so the kill hits the sleep image.
    agent.wait_for("exec", |e, x| {
        pid_is(e, sleeper_pid) && x["success"] == true
    });
    sleeper.kill().expect("kill");
    let status = sleeper.wait().expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );

    let exit = agent.wait_for("exit", |e, _| pid_is(e, three_pid));
    assert_eq!(exit["event"]["exit"]["code"], 3, "{exit}");
    let killed = agent.wait_for("exit", |e, _| pid_is(e, sleeper_pid));
    assert_eq!(killed["event"]["exit"]["signal"], 9, "{killed}");
    assert_eq!(killed["event"]["exit"]["code"], Value::Null, "{killed}");
}

#[test]
fn failed_exec_reports_errno() {
    let mut agent = Agent::start(&[]);
    let missing = format!("/nonexistent/{}", marker("enoent"));
    let err = Command::new(&missing).spawn().expect_err("must not exist");
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    let ev = agent.wait_for("exec", |_, x| x["filename"] == missing.as_str());
    assert_eq!(ev["event"]["exec"]["ret"], -i64::from(libc::ENOENT), "{ev}");
    assert_eq!(ev["event"]["exec"]["success"], false, "{ev}");
}

#[test]
fn argv_limits_are_flagged() {
    let mut agent = Agent::start(&[]);
    let marker = marker("argv");
    let long = "x".repeat(400);
    let mut args: Vec<String> = vec![marker.clone(), long];
    args.extend((0..30).map(|i| format!("a{i}")));
    let status = Command::new("/bin/true").args(&args).status().expect("run");
    assert!(status.success());
    let ev = agent.wait_for("exec", |_, x| x["argv"][1] == marker.as_str());
    let exec = &ev["event"]["exec"];
    assert_eq!(exec["argv"].as_array().map(Vec::len), Some(16), "{ev}");
    assert_eq!(exec["argv_truncated"], true, "{ev}");
    assert_eq!(exec["truncated_args"], serde_json::json!([2]), "{ev}");
    let cut = exec["argv"][2].as_str().expect("string");
    assert_eq!(
        cut.len(),
        255,
        "argument cut at the slot size minus its NUL"
    );
    assert_eq!(exec["argv"][15], "a12", "{ev}");
}
