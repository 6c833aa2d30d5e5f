//! Config-driven capture: raw syscalls, unknown names, per-kind disable and path ignores, changed by
//! SIGHUP without a restart.

use std::process::Command;

use harness::{Agent, agent_bin, temp_dir};

#[test]
fn raw_syscall_from_config() {
    let mut agent = Agent::start_with_config("capture:\n  syscalls: [getppid]\n", &[]);
    // SAFETY: getppid has no preconditions.
    let ppid = unsafe { libc::getppid() };
    let me = u64::from(std::process::id());
    let ev = agent.wait_for("syscall", |e, s| {
        e["process"]["pid"] == me && s["name"] == "getppid"
    });
    assert_eq!(ev["event"]["syscall"]["ret"], i64::from(ppid), "{ev}");
    assert_eq!(ev["event"]["syscall"]["nr"], 110, "{ev}");
}

#[test]
fn unknown_raw_syscall_is_an_error_with_near_matches() {
    harness::require_root();
    let dir = temp_dir("badsys");
    std::fs::write(dir.join("c.yaml"), "capture:\n  syscalls: [getpdi]\n").expect("config");
    let out = Command::new(agent_bin())
        .args(["run", "--config"])
        .arg(dir.join("c.yaml"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .output()
        .expect("run");
    harness::remove_tree(&dir);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown syscall `getpdi`") && stderr.contains("getpid"),
        "{stderr}"
    );
}

#[test]
fn disabled_kinds_and_ignored_paths_change_on_sighup() {
    let dir = temp_dir("filters");
    let ignored = dir.join("ignored");
    std::fs::create_dir(&ignored).expect("dir");
    let config = format!(
        "capture:\n  disable: [mkdir]\n  ignore:\n    path_prefixes: [{}/]\n",
        ignored.display()
    );
    let mut agent = Agent::start_with_config(&config, &[]);
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();

    std::fs::create_dir(p("m1")).expect("mkdir");
    std::fs::write(ignored.join("quiet"), "x").expect("ignored write");
    std::fs::write(p("sync1"), "x").expect("sync write");
    agent.wait_for("file", |_, f| f["path"] == p("sync1"));
    let quiet = ignored.join("quiet").to_string_lossy().into_owned();
    assert!(
        !agent
            .seen()
            .iter()
            .any(|e| e["event"]["file"]["path"] == p("m1")),
        "mkdir was disabled"
    );
    assert!(
        !agent
            .seen()
            .iter()
            .any(|e| e["event"]["file"]["path"] == quiet.as_str()),
        "path was ignored"
    );

    std::fs::write(agent.dir.join("config.yaml"), "").expect("new config");
    agent.signal(libc::SIGHUP);
    // The reload is asynchronous: retry until mkdir shows up (bounded by the harness timeout).
    let deadline = std::time::Instant::now() + harness::EVENT_TIMEOUT;
    let mut n = 0;
    loop {
        n += 1;
        let name = p(&format!("m2-{n}"));
        std::fs::create_dir(&name).expect("mkdir");
        std::fs::write(p(&format!("sync2-{n}")), "x").expect("sync");
        agent.wait_for("file", |_, f| {
            f["path"] == p(&format!("sync2-{n}")).as_str()
        });
        if agent.seen().iter().any(|e| {
            e["event"]["file"]["op"] == "mkdir" && e["event"]["file"]["path"] == name.as_str()
        }) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "mkdir not recorded after SIGHUP"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    harness::remove_tree(&dir);
}
