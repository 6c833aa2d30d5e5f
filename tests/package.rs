//! The Debian packages `cargo xtask package` builds, installed into a scratch root with dpkg: files, owners
//! and modes, registered conffiles, units `systemd-analyze verify` accepts, the installed agent capturing
//! with exactly the capabilities its unit grants, the collector serving as its unprivileged user, and
//! remove stopping them and purge leaving nothing behind.
//!
//! The packages come from `AUDITLOOP_DEB_AGENT` and `AUDITLOOP_DEB_COLLECTOR` (`cargo xtask test` sets
//! them); without them the tests fail.

#[path = "package/root.rs"]
mod root;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::{Agent, marker, require_root, temp_dir};
use root::{ScratchRoot, deb};

/// The capabilities a unit's `key=` line grants, as `setpriv --bounding-set` takes them (`-all,+bpf,…`).
fn unit_caps(unit: &Path, key: &str) -> String {
    let text = std::fs::read_to_string(unit).expect("unit file");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{}: no {key}= line", unit.display()));
    let mut set = String::from("-all");
    for cap in line.split_whitespace() {
        let name = cap.to_ascii_lowercase();
        set.push_str(",+");
        set.push_str(name.strip_prefix("cap_").unwrap_or(&name));
    }
    set
}

/// A child process killed when the test ends, passed or failed.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to `timeout` for `done`.
fn eventually(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_agent_package_installs_captures_with_its_unit_capabilities_and_purges_clean() {
    require_root();
    let package = deb("AUDITLOOP_DEB_AGENT");
    let root = ScratchRoot::new("pkg-agent");
    let out = root.dpkg(&[OsStr::new("-i"), package.as_os_str()]);
    let said = String::from_utf8_lossy(&out.stdout);
    for step in [
        "auditloop enroll",
        "systemctl enable --now auditloop",
        "auditloop status",
    ] {
        assert!(said.contains(step), "postinst names `{step}`:\n{said}");
    }

    root.assert_owned("usr/bin/auditloop", 0o755, 0, 0);
    root.assert_owned("lib/systemd/system/auditloop.service", 0o644, 0, 0);
    root.assert_owned("etc/auditloop", 0o755, 0, 0);
    root.assert_owned("etc/auditloop/rules.d", 0o755, 0, 0);
    root.assert_owned("etc/auditloop/config.yaml", 0o644, 0, 0);
    root.assert_owned("etc/auditloop/rules.d/default.yaml", 0o644, 0, 0);
    root.assert_owned("var/lib/auditloop", 0o700, 0, 0);
    let repo_rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/default.yaml");
    assert_eq!(
        std::fs::read(root.path("etc/auditloop/rules.d/default.yaml")).expect("packaged rules"),
        std::fs::read(&repo_rules).expect("repository rules"),
        "the packaged default rules are the repository's rules/default.yaml"
    );
    let conffiles = root
        .query("auditloop", "${Conffiles}")
        .expect("auditloop is installed");
    for file in [
        "/etc/auditloop/config.yaml",
        "/etc/auditloop/rules.d/default.yaml",
    ] {
        assert!(
            conffiles.contains(file),
            "{file} is a conffile: {conffiles}"
        );
    }
    let unit = root.path("lib/systemd/system/auditloop.service");
    root.verify_unit("auditloop.service");
    let bounding = unit_caps(&unit, "CapabilityBoundingSet");
    assert_eq!(
        bounding,
        unit_caps(&unit, "AmbientCapabilities"),
        "the unit grants what it bounds"
    );

    // The installed binary, config and rules, with no capability beyond the unit's and no new privileges
    // (strict modes on: the modes postinst set must satisfy the agent). The config names the system's
    // paths; the overrides point them into the scratch root.
    let mut command = Command::new("setpriv");
    command
        .arg(format!("--bounding-set={bounding}"))
        .args(["--inh-caps=-all", "--no-new-privs"])
        .arg(root.path("usr/bin/auditloop"))
        .args(["run", "--output", "json", "--config"])
        .arg(root.path("etc/auditloop/config.yaml"))
        .arg("--state-dir")
        .arg(root.path("var/lib/auditloop"))
        .arg("--rules")
        .arg(root.path("etc/auditloop/rules.d"));
    let mut agent = Agent::spawn(temp_dir("pkg-agent-run"), command);
    let mark = marker("pkg");
    assert!(
        Command::new("/bin/true")
            .arg(&mark)
            .status()
            .expect("/bin/true")
            .success()
    );
    let exec = agent.wait_for("exec", |_, x| {
        x["argv"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == mark.as_str()))
    });
    assert!(
        exec["event"]["exec"]["sha256"].is_string(),
        "hashed: {exec}"
    );
    // The packaged default rules are in force: a write below /etc alerts.
    let etc = Path::new("/etc").join(&mark);
    std::fs::write(&etc, "package test\n").expect("write below /etc");
    let _ = std::fs::remove_file(&etc);
    let etc_name = etc.display().to_string();
    agent.wait_for("alert", |_, a| {
        a["rule"] == "write_below_etc"
            && a["output"].as_str().is_some_and(|o| o.contains(&etc_name))
    });

    // Remove: prerm stops the agent (SIGTERM, a clean stop), the conffiles and state stay.
    root.dpkg(&[OsStr::new("-r"), OsStr::new("auditloop")]);
    let status = agent
        .try_wait()
        .expect("prerm waited until the agent exited");
    assert!(status.success(), "the agent stopped cleanly: {status:?}");
    agent.wait_for("agent_stop", |_, _| true);
    assert_eq!(
        root.running("usr/bin/auditloop"),
        Vec::<u32>::new(),
        "no agent left"
    );
    assert!(!root.path("usr/bin/auditloop").exists(), "binary removed");
    assert!(
        root.path("etc/auditloop/config.yaml").exists(),
        "conffiles kept until purge"
    );
    assert!(
        root.path("var/lib/auditloop").exists(),
        "state kept until purge"
    );

    // Purge: nothing of the agent remains.
    root.purge_leaves_nothing(
        "auditloop",
        &[
            "etc/auditloop",
            "var/lib/auditloop",
            "lib/systemd/system/auditloop.service",
        ],
    );
    let state = root.query("auditloop", "${db:Status-Status}");
    assert!(
        state.is_none() || state.as_deref() == Some("not-installed"),
        "dpkg still knows auditloop: {state:?}"
    );
}

#[test]
fn the_collector_package_runs_unprivileged_with_generated_tokens_and_purges_clean() {
    require_root();
    let package = deb("AUDITLOOP_DEB_COLLECTOR");
    let root = ScratchRoot::new("pkg-collector");
    let out = root.dpkg(&[OsStr::new("-i"), package.as_os_str()]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("auditloop enroll"),
        "postinst explains enrollment:\n{said}"
    );

    let (uid, gid) = root
        .user("auditloop-collector")
        .expect("postinst created the system user auditloop-collector");
    assert!(uid < 1000 && uid > 0, "a system uid: {uid}");
    root.assert_owned("usr/bin/auditloop-collector", 0o755, 0, 0);
    root.assert_owned(
        "lib/systemd/system/auditloop-collector.service",
        0o644,
        0,
        0,
    );
    root.assert_owned("etc/auditloop-collector", 0o750, 0, gid);
    root.assert_owned("var/lib/auditloop-collector", 0o750, uid, gid);
    let mut tokens = Vec::new();
    for name in ["admin", "enroll"] {
        let rel = format!("etc/auditloop-collector/{name}.token");
        root.assert_owned(&rel, 0o600, uid, gid);
        let token = std::fs::read_to_string(root.path(&rel)).expect("token");
        let token = token.trim().to_owned();
        assert!(
            token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()),
            "{rel}: 32 random bytes in hex: {token:?}"
        );
        tokens.push(token);
    }
    assert_ne!(tokens[0], tokens[1], "distinct tokens");
    root.verify_unit("auditloop-collector.service");
    let unit = root.path("lib/systemd/system/auditloop-collector.service");
    assert_eq!(
        unit_caps(&unit, "CapabilityBoundingSet"),
        "-all",
        "no capabilities"
    );

    // As the service user, with no capabilities and no new privileges; the packaged config when the
    // package has one (the flags override its paths into the scratch root).
    let mut command = Command::new("setpriv");
    command
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
            "--bounding-set=-all",
            "--inh-caps=-all",
            "--no-new-privs",
        ])
        .arg(root.path("usr/bin/auditloop-collector"));
    let config = root.path("etc/auditloop-collector/config.yaml");
    if config.exists() {
        command.arg("--config").arg(&config);
    }
    command
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(root.path("var/lib/auditloop-collector/collector.db"))
        .arg("--admin-token-file")
        .arg(root.path("etc/auditloop-collector/admin.token"))
        .arg("--enroll-token-file")
        .arg(root.path("etc/auditloop-collector/enroll.token"));
    let mut child = Reaped(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the installed collector"),
    );
    let mut lines = BufReader::new(child.0.stdout.take().expect("stdout")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    std::thread::spawn(move || lines.for_each(drop));
    let addr = first
        .strip_prefix("listening on ")
        .map(str::trim)
        .unwrap_or_else(|| {
            panic!("the installed collector did not listen: {first:?} (its stderr is above)")
        });
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");
    let health = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .expect("GET /healthz");
    assert_eq!(health.status().as_u16(), 200, "/healthz");
    let hosts = http
        .get(format!("http://{addr}/v1/hosts"))
        .bearer_auth(&tokens[0])
        .send()
        .expect("GET /v1/hosts");
    assert_eq!(
        hosts.status().as_u16(),
        200,
        "the generated admin token is the collector's"
    );

    // Remove: prerm stops it; purge removes its data and configuration (the system user stays).
    root.dpkg(&[OsStr::new("-r"), OsStr::new("auditloop-collector")]);
    eventually(Duration::from_secs(5), "the collector exits", || {
        child.0.try_wait().ok().flatten().is_some()
    });
    assert_eq!(
        root.running("usr/bin/auditloop-collector"),
        Vec::<u32>::new(),
        "no collector left"
    );
    root.purge_leaves_nothing(
        "auditloop-collector",
        &[
            "etc/auditloop-collector",
            "var/lib/auditloop-collector",
            "usr/bin/auditloop-collector",
        ],
    );
}
