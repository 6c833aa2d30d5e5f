//! Hygiene: the agent refuses config, rules, token and state it cannot trust (strict modes), and a
//! webhook URL's secret never reaches its logs.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use harness::{Agent, agent_bin, temp_dir};

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Runs `auditloop run` with `args` and expects it to refuse to start, naming `what` in its error.
fn refused(args: &[&str], what: &str, why: &str) {
    let mut child = Command::new(agent_bin())
        .arg("run")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent started with {what} instead of refusing it");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
    assert!(
        stderr.contains(what) && stderr.contains(why),
        "the error names {what} and says {why}: {stderr}"
    );
}

#[test]
fn files_someone_other_than_root_could_change_are_refused() {
    harness::require_root();
    let dir = temp_dir("strict");
    chmod(&dir, 0o755);
    let config = dir.join("config.yaml");
    std::fs::write(&config, "").expect("config");
    chmod(&config, 0o644);
    let rules = dir.join("rules.yaml");
    std::fs::write(&rules, "").expect("rules");
    chmod(&rules, 0o644);
    let state = dir.join("state");
    std::fs::create_dir(&state).expect("state");
    chmod(&state, 0o700);
    let s = |p: &Path| p.to_str().expect("utf-8").to_owned();
    let base = |extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            "--config".to_owned(),
            s(&config),
            "--rules".to_owned(),
            s(&rules),
            "--state-dir".to_owned(),
            s(&state),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    };
    let run = |args: Vec<String>, what: &str, why: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&args, what, why);
    };

    // A config file others can write.
    chmod(&config, 0o666);
    run(
        base(&[]),
        "config.yaml (config file)",
        "writable by group or others",
    );
    chmod(&config, 0o644);
    // A config file owned by another user.
    std::os::unix::fs::chown(&config, Some(65534), None).expect("chown");
    run(base(&[]), "config.yaml (config file)", "owned by uid 65534");
    std::os::unix::fs::chown(&config, Some(0), None).expect("chown");
    // A rules file reached through a symlink into a world-writable directory.
    let open = dir.join("open");
    std::fs::create_dir(&open).expect("dir");
    chmod(&open, 0o777);
    let planted = open.join("rules.yaml");
    std::fs::write(&planted, "").expect("rules");
    chmod(&planted, 0o644);
    let link = dir.join("link.yaml");
    std::os::unix::fs::symlink(&planted, &link).expect("symlink");
    let mut args = base(&[]);
    args[3] = s(&link);
    run(args, "(rules)", "writable by group or others");
    // A rules directory with one file others can write.
    let rules_dir = dir.join("rules.d");
    std::fs::create_dir(&rules_dir).expect("dir");
    chmod(&rules_dir, 0o755);
    std::fs::write(rules_dir.join("a.yaml"), "").expect("rules");
    chmod(&rules_dir.join("a.yaml"), 0o646);
    let mut args = base(&[]);
    args[3] = s(&rules_dir);
    run(args, "a.yaml (rules)", "writable by group or others");
    // A state directory others can write.
    chmod(&state, 0o777);
    run(
        base(&[]),
        "state (state directory)",
        "writable by group or others",
    );
    chmod(&state, 0o700);
    // A token file others can read.
    let token = dir.join("token");
    std::fs::write(&token, "secret-token\n").expect("token");
    chmod(&token, 0o644);
    run(
        base(&[
            "--collector",
            "http://127.0.0.1:9",
            "--token-file",
            &s(&token),
        ]),
        "token (token file)",
        "readable by group or others",
    );

    // The same insecure config starts with --no-strict-modes.
    chmod(&config, 0o666);
    let mut child = Command::new(agent_bin())
        .arg("run")
        .args(base(&["--no-strict-modes"]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("agent");
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut first,
    )
    .expect("first event");
    assert!(first.contains("config_loaded"), "{first}");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(child.wait().expect("wait").success());
    harness::remove_tree(&dir);
}

#[test]
fn a_webhook_urls_secret_never_reaches_the_logs() {
    let dir = temp_dir("webhook-secret");
    let rules = dir.join("rules.yaml");
    let marker = harness::marker("webhook");
    std::fs::write(
        &rules,
        format!(
            "- rule: marker_exec\n  desc: test\n  condition: evt.kind = exec and proc.args contains {marker}\n  \
             output: \"marker ran\"\n  severity: warning\n"
        ),
    )
    .expect("rules");
    // Nothing listens on port 9: every delivery fails and is logged.
    let secret = "S3CR3T-T0K3N";
    let config = format!(
        "alerts:\n  webhook: http://user:pw-{secret}@127.0.0.1:9/hooks/{secret}?key={secret}\n"
    );
    let mut agent = Agent::start_with_config(&config, &["--rules", rules.to_str().expect("utf-8")]);
    Command::new("/bin/true")
        .arg(&marker)
        .status()
        .expect("true");
    agent.wait_for("alert", |_, a| a["rule"] == "marker_exec");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !agent.stderr().contains("alert not delivered") {
        assert!(
            std::time::Instant::now() < deadline,
            "no delivery failure logged: {}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let logged = agent.stderr();
    let (status, printed) = agent.stop_with(libc::SIGTERM);
    assert!(status.success());
    assert!(
        logged.contains("http://127.0.0.1:9"),
        "the log says which webhook: {logged}"
    );
    assert!(
        !logged.contains(secret),
        "the webhook's secret is in the log: {logged}"
    );
    for event in printed {
        assert!(
            !event.to_string().contains(secret),
            "the webhook's secret is in an event: {event}"
        );
    }
    harness::remove_tree(&dir);
}
