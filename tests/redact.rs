//! Secrets stay secret: a change of a redacted watched file (a shadow-format copy configured in
//! `watch.redact`, and the real `/etc/shadow` after `chpasswd`) reaches stdout, the journal on disk and a
//! webhook as hashes, metadata and the changed user names, never as the password hash.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Instant;

use harness::{Agent, temp_dir};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A crypt(3)-looking SHA-512 hash unique to this test run.
fn fake_hash(tag: &str) -> String {
    let seed = sha(harness::marker(tag).as_bytes());
    format!("$6${}${}{}", &seed[..16], seed, &seed[..22])
}

/// An HTTP listener on 127.0.0.1 that answers 200 to every request and passes on each body.
fn webhook_receiver() -> (u16, Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut len = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if tx
                .send(String::from_utf8_lossy(&body).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    (port, rx)
}

/// Config alerting every config change to the webhook on `port`, plus `watch` (YAML lines under `watch:`).
fn config(port: u16, watch: &str) -> String {
    format!("alerts:\n  webhook: http://127.0.0.1:{port}/hook\n{watch}")
}

/// A rules file alerting on every config change.
fn alert_rules() -> PathBuf {
    let rules = temp_dir("rules").join("changes.yaml");
    std::fs::write(
        &rules,
        "- rule: any_config_change\n  desc: t\n  condition: evt.kind = config_change\n  output: \"changed %change.path\"\n  severity: notice\n",
    )
    .expect("rules");
    rules
}

/// Waits for the webhook body of the alert on the config change of `path`; returns every body seen.
fn webhook_bodies_until(rx: &Receiver<String>, path: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    let deadline = Instant::now() + harness::EVENT_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let body = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no alert on {path} reached the webhook; got {bodies:?}"));
        let json: Value = serde_json::from_str(&body).expect("json body");
        let hit = json["event"]["event"]["config_change"]["path"] == path;
        bodies.push(body);
        if hit {
            return bodies;
        }
    }
}

/// Every byte of every file under `dir`, recursively.
fn all_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("list").filter_map(Result::ok) {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(all_bytes(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).expect("read")));
        }
    }
    out
}

/// Asserts that none of `secrets` appears in the events, the webhook bodies or the journal under `state`.
fn assert_nowhere(secrets: &[&str], events: &[Value], bodies: &[String], state: &Path) {
    for secret in secrets {
        for event in events {
            assert!(
                !event.to_string().contains(secret),
                "a password hash reached stdout: {event}"
            );
        }
        for body in bodies {
            assert!(
                !body.contains(secret),
                "a password hash reached the webhook: {body}"
            );
        }
        let segments = all_bytes(&state.join("journal"));
        assert!(!segments.is_empty(), "no journal under {}", state.display());
        for (file, bytes) in segments {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a password hash is in the journal file {}",
                file.display()
            );
        }
    }
}

#[test]
fn a_redacted_shadow_copy_changes_without_its_hashes() {
    let (port, rx) = webhook_receiver();
    let dir = temp_dir("redact");
    let file = dir.join("shadow");
    let path = file.to_str().expect("utf-8").to_owned();
    let (root_hash, old_hash, new_hash) = (fake_hash("r"), fake_hash("o"), fake_hash("n"));
    let line = |name: &str, hash: &str| format!("{name}:{hash}:19700:0:99999:7:::\n");
    let old = format!(
        "{}{}{}",
        line("root", &root_hash),
        line("alice", &old_hash),
        line("bob", "!")
    );
    std::fs::write(&file, &old).expect("shadow copy");
    let state = temp_dir("state");
    let watch = format!("watch:\n  paths: [{}]\n  redact: [{path}]\n", dir.display());
    let rules = alert_rules();
    let mut agent = Agent::start_with_config(
        &config(port, &watch),
        &[
            "--rules",
            rules.to_str().expect("utf-8"),
            "--state-dir",
            state.to_str().expect("utf-8"),
        ],
    );

    // As chpasswd does: write the new file beside it, rename it over.
    let new = format!(
        "{}{}{}",
        line("root", &root_hash),
        line("alice", &new_hash),
        line("bob", "!")
    );
    let staged = dir.join("shadow+");
    std::fs::write(&staged, &new).expect("staged");
    std::fs::rename(&staged, &file).expect("rename over");
    let want = sha(new.as_bytes());
    let ev = agent.wait_for("config_change", |_, c| {
        c["path"] == path.as_str() && c["new_sha256"] == want.as_str()
    });
    let change = &ev["event"]["config_change"];
    let bodies = webhook_bodies_until(&rx, &path);
    let (status, events) = agent.stop_with(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
    assert_nowhere(
        &[&root_hash, &old_hash, &new_hash],
        &events,
        &bodies,
        &state,
    );
    assert_eq!(change["redacted"], true, "{change}");
    assert_eq!(change["diff"], Value::Null, "{change}");
    assert_eq!(
        change["changed_entries"],
        serde_json::json!(["alice"]),
        "{change}"
    );
    assert_eq!(change["old_sha256"], sha(old.as_bytes()), "{change}");
    assert_eq!(change["size"], new.len(), "{change}");
    harness::remove_tree(&dir);
    harness::remove_tree(&state);
}

/// A local user for one test, removed (with `userdel`) when dropped.
struct TestUser(String);

impl TestUser {
    fn add(name: &str) -> TestUser {
        let status = Command::new("useradd")
            .args(["--no-create-home", "--shell", "/usr/sbin/nologin", name])
            .status()
            .expect("useradd");
        assert!(status.success(), "useradd {name}: {status:?}");
        TestUser(name.to_owned())
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.0).status();
    }
}

#[test]
fn chpasswd_keeps_the_new_hash_out_of_events_journal_and_webhook() {
    let (port, rx) = webhook_receiver();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let user = TestUser::add(&format!("alt{}x{nanos:x}", std::process::id()));
    let hash = fake_hash("chpasswd");
    let state = temp_dir("state");
    let rules = alert_rules();
    // Default watch list and redaction: `/etc/shadow` is both watched and redacted.
    let mut agent = Agent::start_with_config(
        &config(port, ""),
        &[
            "--rules",
            rules.to_str().expect("utf-8"),
            "--state-dir",
            state.to_str().expect("utf-8"),
        ],
    );
    let mut chpasswd = Command::new("chpasswd")
        .arg("--encrypted")
        .stdin(Stdio::piped())
        .spawn()
        .expect("chpasswd");
    chpasswd
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{}:{hash}\n", user.0).as_bytes())
        .expect("write to chpasswd");
    assert!(chpasswd.wait().expect("chpasswd").success());
    let shadow = std::fs::read("/etc/shadow").expect("/etc/shadow");
    assert!(
        String::from_utf8_lossy(&shadow).contains(&hash),
        "chpasswd set the hash"
    );
    let want = sha(&shadow);
    let ev = agent.wait_for("config_change", |_, c| {
        c["path"] == "/etc/shadow" && c["new_sha256"] == want.as_str()
    });
    let change = ev["event"]["config_change"].clone();
    let bodies = webhook_bodies_until(&rx, "/etc/shadow");
    let name = user.0.clone();
    drop(user);
    let (status, events) = agent.stop_with(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
    assert_nowhere(&[&hash], &events, &bodies, &state);
    assert_eq!(change["redacted"], true, "{change}");
    assert_eq!(change["diff"], Value::Null, "{change}");
    assert!(
        change["changed_entries"]
            .as_array()
            .is_some_and(|names| names.iter().any(|n| *n == name.as_str())),
        "changed_entries names {name}: {change}"
    );
    harness::remove_tree(&state);
}
