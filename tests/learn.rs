//! Learning on the real kernel: a scripted "normal week" (seven compressed days of a server's children,
//! listener and upstream, and a deployer writing its config) is recorded into a real journal; `learn`
//! proposes rules that raise nothing on that window, and a scripted intrusion then fires exactly the
//! proposed rules for its departures. `rules diff` over the same journal counts a change's alerts as
//! counted by hand, and its exit codes gate the change.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use harness::Agent;

/// A server stand-in: listens on a port, dials an upstream, runs its children, exits.
const WEBD: &str = r#"
import socket, subprocess, sys
port, dest, up = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(4)
c = socket.create_connection((dest, up), timeout=5)
c.close()
for prog in sys.argv[4:]:
    subprocess.run([prog], stdout=subprocess.DEVNULL, check=False)
s.close()
"#;

fn now() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    out
}

/// Runs `argv` as a child of `sh` (an interactive-shell parent the learner leaves out, so the test
/// runner's own program starts are no subject).
fn via_sh(argv: &[&str]) -> Output {
    run(Command::new("/bin/sh")
        .args(["-c", "\"$@\"; exit $?", "sh"])
        .args(argv))
}

/// What one recording left: the journal, the test's directory, the window's bounds, the programs.
struct Recording {
    /// Stopped; its directory (holding the journal) is removed when it is dropped.
    agent: Agent,
    dir: PathBuf,
    start: String,
    week_end: String,
    webd: String,
    rogue: String,
    conf: String,
}

fn copy_exe(from: &str, to: &Path) {
    let real = std::fs::canonicalize(from).expect("canonical");
    std::fs::copy(real, to).expect("copy program");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Records the normal week, then the intrusion; waits until the journal holds both.
fn record() -> Recording {
    let mut agent = Agent::start(&[]);
    let dir = harness::temp_dir("learn");
    let dir = std::fs::canonicalize(&dir).expect("canonical dir");
    std::fs::create_dir_all(dir.join("etc")).expect("etc");
    std::fs::create_dir_all(dir.join("staging")).expect("staging");
    std::fs::write(dir.join("staging/app.conf"), "workers = 4\n").expect("staging conf");
    std::fs::write(
        dir.join("staging/evil.conf"),
        "workers = 4\nhook = /tmp/x\n",
    )
    .expect("evil");
    let webd = dir.join("webd");
    let rogue = dir.join("rogue");
    let deployer = dir.join("deployer");
    copy_exe("/usr/bin/python3", &webd);
    copy_exe("/usr/bin/python3", &rogue);
    copy_exe("/usr/bin/cp", &deployer);
    std::fs::write(dir.join("webd.py"), WEBD).expect("script");
    let upstream = TcpListener::bind("0.0.0.0:0").expect("upstream");
    let up = upstream.local_addr().expect("addr").port().to_string();
    let port = free_port().to_string();
    let script = dir.join("webd.py");
    let (webd_s, script_s) = (webd.display().to_string(), script.display().to_string());
    let conf = dir.join("etc/app.conf").display().to_string();
    let staging = dir.join("staging/app.conf").display().to_string();

    std::thread::sleep(Duration::from_millis(500));
    let start = now();
    for _day in 0..7 {
        via_sh(&[
            &webd_s,
            &script_s,
            &port,
            "127.0.0.1",
            &up,
            "/usr/bin/date",
            "/usr/bin/true",
        ]);
        via_sh(&[&deployer.display().to_string(), &staging, &conf]);
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_millis(500));
    let week_end = now();
    std::thread::sleep(Duration::from_millis(500));
    // The intrusion: a new program under the server, on a new port, to a new destination ...
    let port2 = free_port().to_string();
    via_sh(&[&webd_s, &script_s, &port2, "127.0.0.2", &up, "/usr/bin/id"]);
    // ... a new listener ...
    let rogue_port = free_port().to_string();
    via_sh(&[
        &rogue.display().to_string(),
        &script_s,
        &rogue_port,
        "127.0.0.1",
        &up,
    ]);
    // ... and a new writer of the config file.
    via_sh(&[
        "/usr/bin/cp",
        &dir.join("staging/evil.conf").display().to_string(),
        &conf,
    ]);
    // The agent prints an event after journaling it: once the last one is printed, the journal has all.
    let conf_q = conf.clone();
    agent.wait_for("file", |e, f| {
        f["path"] == conf_q.as_str() && e["process"]["exe"] == "/usr/bin/cp"
    });
    drop(upstream);
    // Stopped, so the analysis below (which runs auditloop itself) is not recorded.
    agent.signal(libc::SIGTERM);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = agent.try_wait() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "agent stop: {status:?}");
    Recording {
        agent,
        dir,
        start,
        week_end,
        webd: webd_s,
        rogue: rogue.display().to_string(),
        conf,
    }
}

fn journal(r: &Recording) -> PathBuf {
    r.agent.dir.join("state/journal")
}

fn auditloop(args: &[&str]) -> Output {
    Command::new(harness::agent_bin())
        .args(args)
        .output()
        .expect("running auditloop")
}

/// `rules test` output lines `TIME seq=N RULE [severity] OUTPUT` since `since`.
fn fired(rules: &Path, r: &Recording, since: &str) -> Vec<(String, String)> {
    let j = journal(r).display().to_string();
    let out = auditloop(&[
        "rules",
        "test",
        &rules.display().to_string(),
        "--journal",
        &j,
        "--since",
        since,
    ]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(4, ' ');
            let (_, _, rule, rest) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            Some((rule.to_owned(), rest.to_owned()))
        })
        .collect()
}

#[test]
fn a_normal_week_proposes_silent_rules_and_an_intrusion_fires_them() {
    let r = record();
    let out_file = r.dir.join("learned.yaml");
    // A config path given as --config that does not exist is a usage error, named.
    let bad = auditloop(&[
        "learn",
        "--journal",
        &journal(&r).display().to_string(),
        "--config",
        "/nonexistent-ok",
    ]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("/nonexistent-ok: no such file"),
        "{bad:?}"
    );
    let etc = format!("{}/etc/", r.dir.display());
    let j = journal(&r).display().to_string();
    let out = auditloop(&[
        "learn",
        "--journal",
        &j,
        "--since",
        &r.start,
        "--until",
        &r.week_end,
        "--out",
        &out_file.display().to_string(),
        "--config-path",
        &etc,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("raised 0 alerts"), "{stderr}");
    let yaml = std::fs::read_to_string(&out_file).expect("proposal written");
    // The server's children are a list with their support; the deployer is the config's writer.
    assert!(yaml.contains("\"/usr/bin/date\"  # 7 times, "), "{yaml}");
    assert!(
        yaml.contains(&format!(
            "\"{}\"  # 7 times",
            r.dir.join("deployer").display()
        )),
        "{yaml}"
    );
    // It passes `rules check`.
    let check = auditloop(&["rules", "check", &out_file.display().to_string()]);
    assert!(check.status.success(), "{check:?}");
    // `learn` replayed the whole window (every process on the host) and saw no alert; replayed from the
    // week's start, the test's own processes raise alerts only after the week.
    let dir = r.dir.display().to_string();
    let ours_since = |since: &str| -> Vec<(String, String)> {
        fired(&out_file, &r, since)
            .into_iter()
            .filter(|(_, o)| o.contains(&dir) || o.contains("/usr/bin/id"))
            .collect()
    };
    let all = ours_since(&r.start);
    let ours = ours_since(&r.week_end);
    assert_eq!(all, ours, "alerts in the learning window");
    let mine = |rule: &str| ours.iter().filter(|(n, _)| n == rule).count();
    let names: std::collections::BTreeSet<&str> = ours.iter().map(|(n, _)| n.as_str()).collect();
    let expected: std::collections::BTreeSet<&str> = [
        "learned_exec_under_webd",
        "learned_listen_port_webd",
        "learned_server_destination_webd",
        "learned_new_listener",
        "learned_config_writer_app_conf",
    ]
    .into_iter()
    .collect();
    assert_eq!(names, expected, "{ours:#?}\n{yaml}");
    let said = |rule: &str, what: &str| {
        assert!(
            ours.iter().any(|(n, o)| n == rule && o.contains(what)),
            "{rule} should name {what}: {ours:#?}"
        )
    };
    // A damaged journal is a usage error naming it, and an unwritable --out too; nothing is half-written.
    let copy = r.dir.join("journal-copy");
    run(Command::new("cp").arg("-a").arg(journal(&r)).arg(&copy));
    let segment = std::fs::read_dir(&copy)
        .expect("copy")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "alj"))
        .min()
        .expect("a segment");
    let mut bytes = std::fs::read(&segment).expect("segment");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&segment, bytes).expect("damage");
    let damaged = auditloop(&[
        "learn",
        "--journal",
        &copy.display().to_string(),
        "--config-path",
        &etc,
    ]);
    assert_eq!(damaged.status.code(), Some(2), "{damaged:?}");
    assert!(
        String::from_utf8_lossy(&damaged.stderr).contains(&copy.display().to_string()),
        "{damaged:?}"
    );
    let unwritable = auditloop(&["learn", "--journal", &j, "--out", "/proc/learned.yaml"]);
    assert_eq!(unwritable.status.code(), Some(2), "{unwritable:?}");
    assert!(
        String::from_utf8_lossy(&unwritable.stderr).contains("cannot write /proc/learned.yaml"),
        "{unwritable:?}"
    );
    said("learned_exec_under_webd", "/usr/bin/id");
    said("learned_server_destination_webd", "127.0.0.2");
    said("learned_new_listener", &r.rogue);
    said("learned_config_writer_app_conf", "/usr/bin/cp");
    said("learned_config_writer_app_conf", &r.conf);
    assert_eq!(mine("learned_listen_port_webd"), 1, "{ours:#?}");
    assert!(r.webd.ends_with("/webd"));
    harness::remove_tree(&r.dir);
}

const OLD: &str = "- rule: webd_children\n  condition: evt.kind = exec and proc.pexe = WEBD and exec.filename = /usr/bin/date\n  output: \"%exec.filename\"\n";
const NEW: &str = "- rule: webd_children\n  condition: evt.kind = exec and proc.pexe = WEBD and exec.filename in (/usr/bin/date, /usr/bin/id)\n  output: \"%exec.filename\"\n- rule: webd_true\n  condition: evt.kind = exec and proc.pexe = WEBD and exec.filename = /usr/bin/true\n  output: \"%exec.filename\"\n";

#[test]
fn rules_diff_counts_a_change_as_by_hand_and_gates_it() {
    let r = record();
    let old = r.dir.join("old.yaml");
    let new = r.dir.join("new.yaml");
    std::fs::write(&old, OLD.replace("WEBD", &r.webd)).expect("old");
    std::fs::write(&new, NEW.replace("WEBD", &r.webd)).expect("new");
    let j = journal(&r).display().to_string();
    let diff = |a: &Path, b: &Path, json: bool| {
        let (a, b) = (a.display().to_string(), b.display().to_string());
        let mut args = vec![
            "rules",
            "diff",
            &a,
            &b,
            "--journal",
            &j,
            "--since",
            &r.start,
        ];
        if json {
            args.push("--json");
        }
        auditloop(&args)
    };
    // By hand: the week ran date and true 7 times under webd, the intrusion ran id once.
    // old -> new: webd_children +1 (id), 7 unchanged; webd_true is new: +7.
    let out = diff(&old, &new, true);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let row = |name: &str| {
        report["rules"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["rule"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing: {report:#}"))
    };
    let children = row("webd_children");
    assert_eq!(
        (
            children["added"].as_u64(),
            children["removed"].as_u64(),
            children["unchanged"].as_u64()
        ),
        (Some(1), Some(0), Some(7)),
        "{report:#}"
    );
    assert!(
        children["added_examples"][0]["output"]
            .as_str()
            .is_some_and(|o| o == "/usr/bin/id"),
        "{report:#}"
    );
    let t = row("webd_true");
    assert_eq!(
        (t["status"].as_str(), t["added"].as_u64()),
        (Some("added"), Some(7)),
        "{report:#}"
    );
    assert_eq!(
        (report["added"].as_u64(), report["removed"].as_u64()),
        (Some(8), Some(0))
    );
    // new -> old: only removals, so the gate passes (exit 0); the text names the counts.
    let back = diff(&new, &old, false);
    assert_eq!(back.status.code(), Some(0), "{back:?}");
    let text = String::from_utf8_lossy(&back.stdout);
    assert!(text.contains("-1  webd_children"), "{text}");
    assert!(text.contains("-7  webd_true (rule removed)"), "{text}");
    // Identical sets: nothing to report, exit 0.
    assert_eq!(diff(&old, &old, false).status.code(), Some(0));
    // Usage errors exit 2 and name the problem: a missing file, a rule with a bad field (file:line:col).
    let missing = diff(&old, &r.dir.join("nope.yaml"), false);
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.yaml: no such file"));
    let broken = r.dir.join("broken.yaml");
    std::fs::write(
        &broken,
        "- rule: x\n  condition: evt.kind = exec and proc.nmae = a\n  output: x\n",
    )
    .expect("broken");
    let bad = diff(&old, &broken, false);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("broken.yaml:2:"),
        "{bad:?}"
    );
    let no_journal = auditloop(&[
        "rules",
        "diff",
        &old.display().to_string(),
        &new.display().to_string(),
        "--journal",
        "/nonexistent-journal",
    ]);
    assert_eq!(no_journal.status.code(), Some(2), "{no_journal:?}");
    harness::remove_tree(&r.dir);
}
