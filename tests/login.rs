//! Login identity on the real kernel: a process whose audit login uid was set (as `pam_loginuid` does at
//! login) keeps it and its session after `setpriv` changes its uid, and `user.loginuid != user.uid`
//! matches; a process under an sshd carries the client's address from that sshd's TCP connection; a
//! process on a pseudo-terminal carries its name.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use harness::{Agent, marker, remove_tree, temp_dir};

/// The name `/etc/passwd` gives `uid`.
fn passwd_name(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    passwd
        .lines()
        .find_map(|l| {
            let cols: Vec<&str> = l.split(':').collect();
            (cols.get(2) == Some(&uid.to_string().as_str())).then(|| cols[0].to_owned())
        })
        .unwrap_or_else(|| panic!("no passwd entry for uid {uid}"))
}

#[test]
fn the_login_uid_and_session_survive_a_uid_change() {
    let dir = temp_dir("login");
    let mark = marker("loginuid");
    let rules = dir.join("rules.yaml");
    std::fs::write(
        &rules,
        format!(
            "- rule: acting_as_another_user\n  desc: t\n  condition: evt.kind = exec and user.loginuid != user.uid and proc.cmdline contains {mark}\n  output: \"%user.loginname (%user.loginuid, session %user.sessionid) runs as %user.uid\"\n  severity: notice\n"
        ),
    )
    .expect("rules");
    let mut agent = Agent::start(&["--rules", rules.to_str().expect("utf-8")]);
    // A login as uid 1: the shell sets its own audit login uid (the kernel then opens a new audit session),
    // notes the session id, and becomes nobody.
    // The marked shell lives a moment, so the agent reads its identity from /proc even when it is behind
    // (a process gone before the agent looks keeps its parent's identity: docs/events.md).
    let ses_file = dir.join("ses");
    let script = format!(
        "echo 1 > /proc/self/loginuid && cat /proc/self/sessionid > {} && exec setpriv --reuid=65534 --regid=65534 --clear-groups /bin/sh -c ': {mark}; sleep 0.5'",
        ses_file.display()
    );
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .status()
        .expect("sh");
    assert!(status.success(), "{status:?}");
    let session: u64 = std::fs::read_to_string(&ses_file)
        .expect("session id")
        .trim()
        .parse()
        .expect("a number");
    let inner = format!(": {mark}; sleep 0.5");
    let exec = agent.wait_for("exec", |_, x| x["success"] == true && x["argv"][2] == inner);
    let p = &exec["process"];
    assert_eq!(p["uid"], 65534, "{exec}");
    assert_eq!(p["loginuid"], 1, "the original login uid: {exec}");
    assert_eq!(p["sessionid"], session, "the login's session: {exec}");
    assert_eq!(p["loginname"], passwd_name(1), "{exec}");
    let alert = agent.wait_for("alert", |_, a| {
        a["rule"] == "acting_as_another_user" && a["trigger_seq"] == exec["seq"]
    });
    let output = alert["event"]["alert"]["output"].as_str().expect("output");
    assert_eq!(
        output,
        format!("{} (1, session {session}) runs as 65534", passwd_name(1)),
        "{alert}"
    );
    remove_tree(&dir);
}

/// Runs `sshd` (a copy of bash) holding one TCP connection to a listener of this test, as a session sshd
/// does, and a marked shell under it; returns the shell's exec event, the fake sshd's pid and the port.
fn under_fake_sshd(
    agent: &mut Agent,
    sshd: &std::path::Path,
    mark: &str,
) -> (serde_json::Value, u32, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let mut server = Command::new(sshd)
        .arg("-c")
        .arg(format!(
            "exec 3<>/dev/tcp/127.0.0.1/{port}; /bin/sh -c ': {mark}; true'; read -r _ <&3"
        ))
        .spawn()
        .expect("fake sshd");
    let (conn, _) = listener.accept().expect("accept");
    let inner = format!(": {mark}; true");
    let exec = agent.wait_for("exec", |_, x| x["success"] == true && x["argv"][2] == inner);
    // Let the fake sshd end: close the connection it reads from.
    let _ = conn.shutdown(std::net::Shutdown::Both);
    let _ = server.wait();
    assert_eq!(exec["process"]["ppid"], server.id(), "{exec}");
    (exec, server.id(), port)
}

#[test]
fn a_process_under_sshd_carries_the_client_address() {
    let dir = temp_dir("sshd");
    // A server named sshd that root installed (owned by root, writable by nobody else).
    let sshd = dir.join("sshd");
    std::fs::copy("/bin/bash", &sshd).expect("copy bash");
    std::fs::set_permissions(&sshd, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut agent = Agent::start(&[]);
    let (exec, server, port) = under_fake_sshd(&mut agent, &sshd, &marker("sshclient"));
    let p = &exec["process"];
    assert_eq!(p["ssh_client_address"], "127.0.0.1", "{exec}");
    assert_eq!(p["ssh_client_port"], port, "{exec}");
    let outside = agent.wait_for("exec", |e, _| e["process"]["pid"] == server);
    assert_eq!(
        outside["process"]["ssh_client_address"], "",
        "the sshd itself is not under an sshd: {outside}"
    );

    // The same program in a directory anyone may write to (so anyone could have put it there) speaks
    // for no client: its children carry none.
    let open = dir.join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let planted = open.join("sshd");
    std::fs::copy("/bin/bash", &planted).expect("copy bash");
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (exec, _, _) = under_fake_sshd(&mut agent, &planted, &marker("plantedsshd"));
    assert_eq!(exec["process"]["ssh_client_address"], "", "{exec}");
    assert!(exec["process"]["ssh_client_port"].is_null(), "{exec}");
    remove_tree(&dir);
}

#[test]
fn a_process_on_a_pseudo_terminal_names_it() {
    let mark = marker("tty");
    let mut agent = Agent::start(&[]);
    let status = Command::new("script")
        .args([
            "-qec",
            &format!("/bin/sh -c ': {mark}; tty; sleep 0.5'"),
            "/dev/null",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script");
    assert!(status.status.success(), "{status:?}");
    let printed = String::from_utf8_lossy(&status.stdout);
    let inner = format!(": {mark}; tty; sleep 0.5");
    let exec = agent.wait_for("exec", |_, x| x["success"] == true && x["argv"][2] == inner);
    let tty = exec["process"]["tty"].as_str().expect("tty");
    assert!(tty.starts_with("pts/"), "{exec}");
    assert!(
        printed.contains(&format!("/dev/{tty}")),
        "the shell's own tty(1) says {printed:?}, the event {tty}"
    );
}
