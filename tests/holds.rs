//! Holds on the real kernel: an exec matching a `hold` rule is stopped in the kernel before the new program
//! runs an instruction (state `T`, its marker file absent) until `auditloop holds approve|deny` or the
//! timeout decides; a userspace rule holds through a pidfd; a verdict pulled from the collector decides a
//! hold; rules that could hold PID 1, systemd or the agent are refused at load, naming file:line:col.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{Agent, agent_bin, temp_dir};
use serde_json::Value;

/// A `hold` rule on execs below `dir`.
fn hold_rule(dir: &Path, hold: &str) -> String {
    format!(
        "- rule: hold_test_bin\n  desc: test\n  condition: evt.kind = exec and exec.filename startswith {}/\n  output: \"held %exec.filename\"\n  actions: [hold]\n{hold}",
        dir.display()
    )
}

/// An executable script in `dir` whose first action creates `marker`.
fn script(dir: &Path, marker: &Path) -> PathBuf {
    let bin = dir.join("job");
    std::fs::write(&bin, format!("#!/bin/sh\ntouch {}\n", marker.display())).expect("script");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    bin
}

/// An agent with `rules` (YAML) and its state directory.
fn agent_with(rules: &str, config: &str) -> (Agent, PathBuf) {
    let file = temp_dir("holdrules").join("hold.yaml");
    std::fs::write(&file, rules).expect("rules");
    let agent = Agent::start_with_config(config, &["--rules", file.to_str().expect("utf-8")]);
    let state = agent.dir.join("state");
    (agent, state)
}

/// The `/proc/<pid>/stat` state letter.
fn state_of(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().next().map(str::to_owned)
}

/// Waits until `pid` is stopped (state `T`); fails the test after 5 s.
fn wait_stopped(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while state_of(pid).as_deref() != Some("T") {
        assert!(
            Instant::now() < deadline,
            "pid {pid} never stopped: state {:?}",
            state_of(pid)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `auditloop holds ARGS --state-dir STATE`.
fn holds(state: &Path, args: &[&str]) -> Output {
    Command::new(agent_bin())
        .arg("holds")
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("auditloop holds")
}

/// The `hold` event of `id` in `state`.
fn hold_event(agent: &mut Agent, id: &Value, state: &str) -> Value {
    agent.wait_for("hold", |_, h| h["id"] == *id && h["state"] == state)
}

/// Starts the script, waits for its `requested` hold, checks it is stopped before its first instruction.
fn start_held(agent: &mut Agent, bin: &Path, marker: &Path) -> (Child, Value) {
    let child = Command::new(bin).spawn().expect("spawn the script");
    let pid = child.id();
    let requested = agent.wait_for("hold", |_, h| {
        h["target_pid"] == u64::from(pid) && h["state"] == "requested"
    });
    let body = &requested["event"]["hold"];
    assert_eq!(body["stopped_by"], "kernel", "{requested}");
    assert_eq!(body["rule"], "hold_test_bin", "{requested}");
    assert_eq!(body["ok"], true, "{requested}");
    let path = bin.to_str().expect("utf-8");
    let exec = agent.wait_for("exec", |_, x| {
        x["raw_filename"] == path && x["held_by_rule"] == 0
    });
    assert_eq!(body["exe"], path, "{requested}");
    assert_eq!(body["id"], exec["seq"], "the hold's id is the exec's seq");
    wait_stopped(pid);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(state_of(pid).as_deref(), Some("T"), "still stopped");
    assert!(
        !marker.exists(),
        "the held program ran: {} exists",
        marker.display()
    );
    (child, body["id"].clone())
}

#[test]
fn approve_continues_a_process_held_in_the_kernel() {
    let dir = temp_dir("holdbin");
    let marker = dir.with_extension("marker");
    let bin = script(&dir, &marker);
    let (mut agent, state) = agent_with(
        &hold_rule(&dir, "  hold: {timeout: 5m, default: deny}\n"),
        "",
    );
    let (mut child, id) = start_held(&mut agent, &bin, &marker);
    let listed = holds(&state, &["list"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{listed:?}");
    assert!(
        text.contains(&format!("{id}  rule=hold_test_bin  pid={}", child.id())),
        "{text}"
    );
    assert!(text.contains("<- "), "the parent chain is listed: {text}");
    let json = holds(&state, &["list", "--json"]);
    let listed: Value = serde_json::from_slice(&json.stdout).expect("list json");
    assert_eq!(listed[0]["id"], id, "{listed}");
    assert_eq!(listed[0]["state"], "T", "{listed}");
    assert!(
        listed[0]["remaining_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 200_000),
        "{listed}"
    );
    let id_text = id.to_string();
    let approved = holds(&state, &["approve", &id_text, "--comment", "known job"]);
    assert!(approved.status.success(), "{approved:?}");
    let status = child.wait().expect("wait");
    assert!(
        status.success(),
        "the approved script ran to its end: {status:?}"
    );
    assert!(marker.exists(), "the approved program ran");
    let done = hold_event(&mut agent, &id, "approved");
    let body = &done["event"]["hold"];
    assert_eq!(body["decided_by"], "local:uid0", "{done}");
    assert_eq!(body["comment"], "known job", "{done}");
    assert_eq!(body["decision"], "approve", "{done}");
    assert!(
        body["latency_us"].as_u64().is_some_and(|us| us > 0),
        "{done}"
    );
    // Decided already: a second decision is refused.
    let again = holds(&state, &["deny", &id_text]);
    assert!(!again.status.success(), "{again:?}");
}

#[test]
fn deny_kills_a_held_process_before_it_runs() {
    let dir = temp_dir("holddeny");
    let marker = dir.with_extension("marker");
    let bin = script(&dir, &marker);
    let (mut agent, state) = agent_with(&hold_rule(&dir, ""), "");
    let (mut child, id) = start_held(&mut agent, &bin, &marker);
    let denied = holds(&state, &["deny", &id.to_string()]);
    assert!(denied.status.success(), "{denied:?}");
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(9), "killed: {status:?}");
    assert!(!marker.exists(), "the denied program never ran");
    let done = hold_event(&mut agent, &id, "denied");
    assert_eq!(done["event"]["hold"]["decision"], "deny", "{done}");
    // The rule's default timeout is 5 minutes.
    assert_eq!(done["event"]["hold"]["timeout_ms"], 300_000, "{done}");
}

#[test]
fn the_timeout_applies_deny_by_default() {
    let dir = temp_dir("holdtimeout");
    let marker = dir.with_extension("marker");
    let bin = script(&dir, &marker);
    let (mut agent, _) = agent_with(
        &hold_rule(&dir, "  hold: {timeout: 2s, default: deny}\n"),
        "",
    );
    let started = Instant::now();
    let (mut child, id) = start_held(&mut agent, &bin, &marker);
    let status = child.wait().expect("wait");
    assert_eq!(
        status.signal(),
        Some(9),
        "killed at the timeout: {status:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "not before the timeout"
    );
    assert!(!marker.exists());
    let done = hold_event(&mut agent, &id, "timed_out");
    let body = &done["event"]["hold"];
    assert_eq!(
        (&body["decided_by"], &body["decision"]),
        (&Value::from("timeout"), &Value::from("deny")),
        "{done}"
    );
    assert!(
        body["latency_us"]
            .as_u64()
            .is_some_and(|us| us >= 1_900_000),
        "{done}"
    );
}

#[test]
fn the_timeout_applies_approve_when_that_is_the_default() {
    let dir = temp_dir("holdapprove");
    let marker = dir.with_extension("marker");
    let bin = script(&dir, &marker);
    let (mut agent, _) = agent_with(
        &hold_rule(&dir, "  hold: {timeout: 1s, default: approve}\n"),
        "",
    );
    let (mut child, id) = start_held(&mut agent, &bin, &marker);
    let status = child.wait().expect("wait");
    assert!(status.success(), "continued at the timeout: {status:?}");
    assert!(marker.exists(), "the program ran after the timeout");
    let done = hold_event(&mut agent, &id, "timed_out");
    assert_eq!(done["event"]["hold"]["decision"], "approve", "{done}");
}

#[test]
fn a_userspace_rule_holds_through_a_pidfd() {
    let dir = temp_dir("holdfile");
    let marker = dir.with_extension("marker");
    let rules = format!(
        "- rule: hold_writer\n  desc: t\n  condition: evt.kind = file and file.op = open and file.path startswith {}/\n  output: \"%proc.name wrote %file.path\"\n  actions: [hold]\n  hold: {{timeout: 1m, default: deny}}\n",
        dir.display()
    );
    let (mut agent, state) = agent_with(&rules, "");
    // The shell writes into the held directory, then (after a pause the hold outlasts) the marker.
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            ": > {}/f; sleep 0.5; : > {}",
            dir.display(),
            marker.display()
        ))
        .spawn()
        .expect("sh");
    let pid = child.id();
    let requested = agent.wait_for("hold", |_, h| {
        h["target_pid"] == u64::from(pid) && h["state"] == "requested"
    });
    assert_eq!(
        requested["event"]["hold"]["stopped_by"], "pidfd",
        "{requested}"
    );
    wait_stopped(pid);
    std::thread::sleep(Duration::from_millis(800));
    assert!(!marker.exists(), "the held shell went on");
    let id = requested["event"]["hold"]["id"].clone();
    let approved = holds(&state, &["approve", &id.to_string()]);
    assert!(approved.status.success(), "{approved:?}");
    assert!(child.wait().expect("wait").success());
    assert!(marker.exists(), "the approved shell went on");
    hold_event(&mut agent, &id, "approved");
}

/// A collector stand-in: refuses batches (503, counted with their arrival time) and answers the verdicts
/// long poll with the verdicts the test puts in.
struct FakeCollector {
    addr: String,
    posts: Arc<Mutex<Vec<Instant>>>,
    polls: Arc<Mutex<Vec<String>>>,
    verdicts: Arc<Mutex<Vec<Value>>>,
}

impl FakeCollector {
    fn start() -> FakeCollector {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = format!("http://{}", listener.local_addr().expect("addr"));
        let fake = FakeCollector {
            addr,
            posts: Arc::default(),
            polls: Arc::default(),
            verdicts: Arc::default(),
        };
        let (posts, polls, verdicts) = (
            Arc::clone(&fake.posts),
            Arc::clone(&fake.polls),
            Arc::clone(&fake.verdicts),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (posts, polls, verdicts) = (
                    Arc::clone(&posts),
                    Arc::clone(&polls),
                    Arc::clone(&verdicts),
                );
                std::thread::spawn(move || serve_one(stream, &posts, &polls, &verdicts));
            }
        });
        fake
    }
}

fn serve_one(
    mut stream: std::net::TcpStream,
    posts: &Mutex<Vec<Instant>>,
    polls: &Mutex<Vec<String>>,
    verdicts: &Mutex<Vec<Value>>,
) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut head = String::new();
    let mut length = 0usize;
    let mut auth = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("authorization:") {
            auth = line.trim().to_owned();
        }
        if head.is_empty() {
            head = line.trim().to_owned();
        }
    }
    let mut body = vec![0u8; length];
    let _ = reader.read_exact(&mut body);
    let (status, answer) = if head.starts_with("POST ") {
        if let Ok(mut p) = posts.lock() {
            p.push(Instant::now());
        }
        ("503 Service Unavailable", r#"{"error":"busy"}"#.to_owned())
    } else if head.starts_with("GET /v1/hosts/h1/verdicts?") {
        if let Ok(mut p) = polls.lock() {
            p.push(format!("{head} {auth}"));
        }
        // A short long poll: answer at once when there is something, else after 200 ms.
        let deadline = Instant::now() + Duration::from_millis(200);
        loop {
            let page: Vec<Value> = verdicts.lock().map(|v| v.clone()).unwrap_or_default();
            if !page.is_empty() || Instant::now() >= deadline {
                break (
                    "200 OK",
                    serde_json::json!({ "verdicts": page }).to_string(),
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    } else {
        ("404 Not Found", r#"{"error":"no"}"#.to_owned())
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    );
}

#[test]
fn a_collector_verdict_decides_a_hold_and_the_request_ships_at_once() {
    let fake = FakeCollector::start();
    let dir = temp_dir("holdverdict");
    let marker = dir.with_extension("marker");
    let bin = script(&dir, &marker);
    let token = dir.with_extension("token");
    std::fs::write(&token, "host-token\n").expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    // Batches wait a minute to fill: only the hold's flush ships them sooner.
    let config = format!(
        "ship:\n  collector: {}\n  token_file: {}\n  host_id: h1\n  batch_max_ms: 60000\n",
        fake.addr,
        token.display()
    );
    let (mut agent, _) = agent_with(
        &hold_rule(&dir, "  hold: {timeout: 5m, default: approve}\n"),
        &config,
    );
    std::thread::sleep(Duration::from_millis(500));
    let posted_before = fake.posts.lock().map(|p| p.len()).unwrap_or(0);
    let (mut child, id) = start_held(&mut agent, &bin, &marker);
    let requested_at = Instant::now();
    let deadline = requested_at + Duration::from_secs(5);
    while fake.posts.lock().map(|p| p.len()).unwrap_or(0) <= posted_before {
        assert!(
            Instant::now() < deadline,
            "the hold request was not shipped promptly"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A verdict for another hold is ignored; the one for this hold applies.
    let hold = id.as_u64().expect("id");
    if let Ok(mut v) = fake.verdicts.lock() {
        v.push(serde_json::json!({"id": 1, "host": "h1", "hold": hold + 1000, "decision": "approve", "by": "mallory", "comment": "", "time_ns": 1}));
        v.push(serde_json::json!({"id": 2, "host": "h1", "hold": hold, "decision": "deny", "by": "alice", "comment": "not ours", "time_ns": 2}));
    }
    let status = child.wait().expect("wait");
    assert_eq!(
        status.signal(),
        Some(9),
        "denied by the collector's verdict: {status:?}"
    );
    assert!(!marker.exists());
    let done = hold_event(&mut agent, &id, "denied");
    assert_eq!(
        done["event"]["hold"]["decided_by"], "collector:alice",
        "{done}"
    );
    assert_eq!(done["event"]["hold"]["comment"], "not ours", "{done}");
    let polls = fake.polls.lock().map(|p| p.clone()).unwrap_or_default();
    assert!(
        polls
            .iter()
            .any(|p| p.contains("after=0&wait_ms=30000") && p.contains("Bearer host-token")),
        "the agent polls with its token, its cursor and the longest wait: {polls:?}"
    );
    assert!(
        !agent
            .seen()
            .iter()
            .any(|e| e["event"]["hold"]["decided_by"] == "collector:mallory"),
        "the verdict for a hold that does not wait was ignored"
    );
}

/// `auditloop rules check` of one file.
fn check(text: &str) -> (bool, String, PathBuf) {
    let file = temp_dir("holdcheck").join("r.yaml");
    std::fs::write(&file, text).expect("rules");
    let out = Command::new(agent_bin())
        .args(["rules", "check"])
        .arg(&file)
        .output()
        .expect("rules check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text, file)
}

#[test]
fn rules_that_could_hold_init_systemd_or_the_agent_are_refused_at_load() {
    let hostile = [
        ("evt.kind = exec", "PID 1"),
        (
            "evt.kind = exec and exec.filename startswith /usr/lib/systemd/",
            "systemd",
        ),
        ("evt.kind = exec and proc.name = auditloop", "the agent"),
        ("proc.pid < 10", "PID 1"),
        ("evt.kind = file and proc.name in (systemd, init)", "PID 1"),
        (
            "evt.kind = exec and exec.filename endswith /auditloop",
            "the agent",
        ),
    ];
    for (condition, who) in hostile {
        let rules = format!(
            "- list: x\n  items: [a]\n- rule: greedy\n  condition: {condition}\n  output: o\n  actions: [hold]\n"
        );
        let (ok, text, file) = check(&rules);
        assert!(!ok, "{condition}: accepted\n{text}");
        assert!(
            text.contains(&format!("{}:3:9", file.display())),
            "{condition}: names file:line:col\n{text}"
        );
        assert!(
            text.contains("rule `greedy`"),
            "{condition}: names the rule\n{text}"
        );
        assert!(text.contains(who), "{condition}: names {who}\n{text}");
    }
    // The agent refuses them too, before it loads anything.
    let file = temp_dir("holdrefuse").join("r.yaml");
    std::fs::write(
        &file,
        "- rule: greedy\n  condition: evt.kind = exec\n  output: o\n  actions: [hold]\n",
    )
    .expect("rules");
    let state = temp_dir("holdrefusestate");
    let out = Command::new(agent_bin())
        .args(["run", "--rules"])
        .arg(&file)
        .arg("--state-dir")
        .arg(&state)
        .arg("--config")
        .arg(state.join("none.yaml"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rule `greedy`") && err.contains("PID 1"),
        "{err}"
    );
    // A narrow hold rule is accepted, and `rules check` says what it does here.
    let (ok, text, _) = check(
        "- rule: narrow\n  condition: evt.kind = exec and exec.filename = /opt/tool/run\n  output: o\n  actions: [hold]\n  hold: {timeout: 30s, default: approve}\n",
    );
    assert!(ok, "{text}");
    assert!(text.contains("SIGSTOP at sys_enter_execve"), "{text}");
    assert!(
        text.contains("30s without a decision it is continued"),
        "{text}"
    );
    // Settings without the action, and hold beside kill, are errors.
    let (ok, text, _) = check(
        "- rule: a\n  condition: evt.kind = exec and exec.filename = /opt/x\n  output: o\n  hold: {timeout: 1m}\n",
    );
    assert!(!ok && text.contains("need `hold` in `actions`"), "{text}");
    let (ok, text, _) = check(
        "- rule: a\n  condition: evt.kind = exec and exec.filename = /opt/x\n  output: o\n  actions: [hold, kill]\n",
    );
    assert!(!ok && text.contains("cannot be combined"), "{text}");
}
