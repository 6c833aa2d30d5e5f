//! io_uring is not a blind spot: a liburing program that reads `/etc/shadow` and creates and writes a file
//! below `/etc` only through io_uring has its requests journaled as `io_uring` events (opcode, process,
//! canonical path), the same `file` events and alerts as the syscall route (`write_below_etc`,
//! `shadow_read`), and the default io_uring rule's alert — on a ring with the SQ index array (liburing
//! 2.3's layout), one without it (`IORING_SETUP_NO_SQARRAY`, liburing ≥ 2.6's), one submitted by an SQPOLL
//! kernel thread, and for a path relative to a directory descriptor; a ring set up before the agent
//! started is recorded with what could not be resolved, and still alerted.
//!
//! The program is `tests/uring/uring-prog.c`, compiled here with `cc … -luring` (`cargo xtask setup`
//! installs gcc and liburing-dev); without them these tests fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use harness::{Agent, marker, temp_dir};
use serde_json::Value;

const DEFAULT_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/default.yaml");
const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/uring/uring-prog.c");
/// The program's task name (its file name).
const COMM: &str = "uring-prog";

/// The test program, compiled once per test run.
fn program() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let out = temp_dir("uring-prog").join(COMM);
        let status = Command::new("cc")
            .args(["-O2", "-Wall", "-o"])
            .arg(&out)
            .arg(SOURCE)
            .arg("-luring")
            .status()
            .expect("running cc (install gcc and liburing-dev: `cargo xtask setup`)");
        assert!(
            status.success(),
            "compiling {SOURCE} failed (needs liburing-dev: `cargo xtask setup`)"
        );
        out
    })
}

/// Removes a file the test created below `/etc`, however the test ends.
struct Remove(String);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs the program in `mode` (with `arg`); its pid once it exited successfully.
fn run(mode: &str, arg: Option<&str>) -> u32 {
    let mut child = Command::new(program())
        .arg(mode)
        .args(arg)
        .spawn()
        .expect("spawning uring-prog");
    let pid = child.id();
    let status = child.wait().expect("uring-prog");
    assert!(status.success(), "uring-prog {mode} failed: {status}");
    pid
}

fn of(ev: &Value, pid: u32) -> bool {
    ev["process"]["pid"] == pid
}

/// The `io_uring` event of `pid` for `op` on `path`; checks the process and the result.
fn op_event(agent: &mut Agent, pid: u32, op: &str, path: &str, sqpoll: bool) -> Value {
    let ev = agent.wait_for("io_uring", |e, u| {
        of(e, pid) && u["op"] == op && u["path"] == path
    });
    let u = &ev["event"]["io_uring"];
    assert_eq!(ev["process"]["comm"], COMM, "{ev}");
    assert_eq!(u["success"], true, "{ev}");
    assert_eq!(u["sq_thread"], sqpoll, "{ev}");
    assert_eq!(u["unresolved"], serde_json::json!([]), "{ev}");
    if sqpoll {
        assert_ne!(
            ev["process"]["tid"], pid,
            "an SQPOLL submission is made by the ring's kernel thread: {ev}"
        );
    }
    ev
}

fn alert_for(agent: &mut Agent, rule: &str, ev: &Value) -> Value {
    let seq = ev["seq"].clone();
    agent.wait_for("alert", |_, a| a["rule"] == rule && a["trigger_seq"] == seq)
}

/// Runs `mode` (one of `files`, `sqpoll`, `nosqarray`) and checks everything the done-when asks for.
fn file_work_is_seen(mode: &str) {
    let mut agent = Agent::start(&["--rules", DEFAULT_RULES]);
    let target = format!("/etc/auditloop-uring-{}", marker(mode));
    let _remove = Remove(target.clone());
    let pid = run(mode, Some(&target));
    let sqpoll = mode == "sqpoll";

    let shadow = op_event(&mut agent, pid, "openat", "/etc/shadow", sqpoll);
    assert_eq!(shadow["event"]["io_uring"]["opcode"], 18, "{shadow}");
    op_event(&mut agent, pid, "read", "/etc/shadow", sqpoll);
    op_event(&mut agent, pid, "close", "/etc/shadow", sqpoll);
    let created = op_event(&mut agent, pid, "openat", &target, sqpoll);
    let u = &created["event"]["io_uring"];
    assert_eq!(u["file_or_net"], true, "{created}");
    assert!(
        u["flags"]
            .as_u64()
            .is_some_and(|f| f & libc::O_CREAT as u64 != 0),
        "{created}"
    );
    for op in ["write", "close"] {
        op_event(&mut agent, pid, op, &target, sqpoll);
    }

    let write = agent.wait_for("file", |e, f| {
        of(e, pid) && f["path"] == target.as_str() && f["op"] == "open"
    });
    let f = &write["event"]["file"];
    assert_eq!(f["syscall"], "io_uring_openat", "{write}");
    assert_eq!(f["success"], true, "{write}");
    alert_for(&mut agent, "write_below_etc", &write);

    // Through the io_uring openat, or through the fanotify watch of sensitive files.
    let read = agent.wait_for("file", |e, f| {
        of(e, pid) && f["path"] == "/etc/shadow" && f["op"] == "read"
    });
    alert_for(&mut agent, "shadow_read", &read);

    alert_for(&mut agent, "io_uring_file_or_net_op", &created);
    // The kernel kills the ring's io-wq (and SQPOLL) threads when the program calls exit_group: that is
    // not a death by signal.
    let exit = agent.wait_for("exit", |e, _| of(e, pid));
    assert_eq!(exit["event"]["exit"]["code"], 0, "{exit}");
    assert_eq!(exit["event"]["exit"]["signal"], Value::Null, "{exit}");
    let setup = agent.wait_for("io_uring_setup", |e, _| of(e, pid));
    assert_eq!(
        setup["event"]["io_uring_setup"]["sqpoll"], sqpoll,
        "{setup}"
    );
    assert_eq!(
        setup["event"]["io_uring_setup"]["layout_known"], true,
        "{setup}"
    );
}

#[test]
fn liburing_file_work_is_journaled_with_paths_and_alerted() {
    file_work_is_seen("files");
}

#[test]
fn rings_without_an_sq_array_are_read_too() {
    file_work_is_seen("nosqarray");
}

#[test]
fn sqpoll_submissions_are_attributed_to_the_program() {
    file_work_is_seen("sqpoll");
}

#[test]
fn paths_relative_to_a_directory_descriptor_resolve() {
    let mut agent = Agent::start(&["--rules", DEFAULT_RULES]);
    let pid = run("relative", None);
    op_event(&mut agent, pid, "openat", "/etc", false);
    let ev = op_event(&mut agent, pid, "openat", "/etc/shadow", false);
    assert_eq!(ev["event"]["io_uring"]["raw_path"], "shadow", "{ev}");
    op_event(&mut agent, pid, "read", "/etc/shadow", false);
    let read = agent.wait_for("file", |e, f| {
        of(e, pid) && f["path"] == "/etc/shadow" && f["syscall"] == "io_uring_openat"
    });
    assert_eq!(read["event"]["file"]["raw_path"], "shadow", "{read}");
    alert_for(&mut agent, "shadow_read", &read);
    alert_for(&mut agent, "io_uring_file_or_net_op", &ev);
}

#[test]
fn capture_disable_io_uring_turns_it_off() {
    let mut agent = Agent::start_with_config("capture:\n  disable: [io_uring]\n", &[]);
    let pid = run("relative", None);
    agent.wait_for("exit", |e, _| of(e, pid));
    // Stopping flushes every request still waiting for a completion.
    let (status, events) = agent.stop_with(libc::SIGTERM);
    assert!(status.success(), "agent: {status}");
    let uring: Vec<&Value> = events
        .iter()
        .filter(|e| {
            of(e, pid)
                && (e["event"].get("io_uring").is_some()
                    || e["event"].get("io_uring_setup").is_some())
        })
        .collect();
    assert!(uring.is_empty(), "io_uring capture was disabled: {uring:?}");
    assert!(
        events
            .iter()
            .any(|e| of(e, pid) && e["event"].get("exec").is_some()),
        "the program's exec is still recorded"
    );
}

#[test]
fn rings_set_up_before_the_agent_started_are_recorded_as_unresolved_and_alerted() {
    let dir = temp_dir("uring-late");
    let go = dir.join("go");
    let target = format!("/etc/auditloop-uring-{}", marker("late"));
    let _remove = Remove(target.clone());
    let mut child = Command::new(program())
        .arg("late")
        .arg(&go)
        .arg(&target)
        .spawn()
        .expect("spawning uring-prog");
    let pid = child.id();
    // The ring exists before the agent starts: its layout is never learnt.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut agent = Agent::start(&["--rules", DEFAULT_RULES]);
    std::fs::write(&go, "").expect("go file");
    let status = child.wait().expect("uring-prog");
    assert!(status.success(), "uring-prog late failed: {status}");

    let open = agent.wait_for("io_uring", |e, u| of(e, pid) && u["op"] == "openat");
    let u = &open["event"]["io_uring"];
    assert_eq!(open["process"]["comm"], COMM, "{open}");
    assert_eq!(u["opcode"], 18, "{open}");
    assert_eq!(u["ring_fd"], -1, "{open}");
    assert_eq!(
        u["unresolved"],
        serde_json::json!(["ring_unknown"]),
        "{open}"
    );
    assert_eq!(u["success"], true, "{open}");
    // Read requests look their descriptor up in the kernel: the fd is known, and its file from /proc.
    let read = agent.wait_for("io_uring", |e, u| of(e, pid) && u["op"] == "read");
    assert!(
        read["event"]["io_uring"]["fd"]
            .as_i64()
            .is_some_and(|fd| fd >= 0),
        "{read}"
    );
    alert_for(&mut agent, "io_uring_file_or_net_op", &open);
    // The sensitive read is still seen, by the fanotify watch.
    let shadow = agent.wait_for("file", |e, f| {
        of(e, pid) && f["path"] == "/etc/shadow" && f["op"] == "read"
    });
    assert_eq!(shadow["event"]["file"]["syscall"], "fanotify", "{shadow}");
    alert_for(&mut agent, "shadow_read", &shadow);
    let _ = std::fs::remove_dir_all(&dir);
}
