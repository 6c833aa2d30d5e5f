//! The collector's console, driven by Debian's headless Chromium (Playwright, `tests/ui/console.mjs`)
//! against a collector filled by a real agent: login, the live alert feed and acknowledging, search, the
//! process tree, "verify now" before and after a record is tampered with; and, over HTTP, that nothing
//! answers without auth, that a viewer cannot change anything and that a session's POST without its CSRF
//! token is refused. Screenshots are saved under `target/ui-shots/`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::collector::{Collector, free_port};
use harness::{Agent, temp_dir};
use serde_json::{Value, json};

const APPROVER: &str = "approver-secret-token";
const VIEWER: &str = "viewer-secret-token";

/// The workspace's `target/` (screenshots go under it).
fn target_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target"))
}

/// Debian's Chromium; the test fails (never skips) without it.
fn chromium() -> PathBuf {
    let path = PathBuf::from("/usr/bin/chromium");
    assert!(
        path.exists(),
        "{} is missing: `cargo xtask setup` installs Debian's chromium",
        path.display()
    );
    path
}

/// `tests/ui` with its node modules installed (`npm ci`, from the lock file).
fn ui_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    if !dir.join("node_modules/playwright-core").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("running npm ci (node and npm must be installed)");
        assert!(status.success(), "npm ci in {} failed", dir.display());
    }
    dir
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

struct Setup {
    _agent: Agent,
    collector: Collector,
    dir: PathBuf,
    host: &'static str,
}

fn start(rules: &str) -> Setup {
    let dir = temp_dir("console");
    std::fs::write(dir.join("approver.token"), APPROVER).expect("token");
    std::fs::write(dir.join("viewer.token"), VIEWER).expect("token");
    let collector = Collector::start_with(
        &dir.join("collector"),
        free_port(),
        &[
            "--approver-token-file",
            dir.join("approver.token").to_str().expect("utf-8"),
            "--viewer-token-file",
            dir.join("viewer.token").to_str().expect("utf-8"),
        ],
    );
    let state = dir.join("state");
    let host = "ui-host";
    let token = collector.enroll(host, &state);
    std::fs::write(dir.join("rules.yaml"), rules).expect("rules");
    let agent = Agent::start(&[
        "--state-dir",
        state.to_str().expect("utf-8"),
        "--rules",
        dir.join("rules.yaml").to_str().expect("utf-8"),
        "--collector",
        &collector.url(),
        "--token-file",
        token.to_str().expect("utf-8"),
        "--host-id",
        host,
    ]);
    collector.wait_host(host, Duration::from_secs(60), |h| {
        h["last_verified_seq"].as_u64().is_some()
    });
    Setup {
        _agent: agent,
        collector,
        dir,
        host,
    }
}

#[test]
fn the_console_shows_alerts_live_searches_verifies_and_finds_tampering() {
    let chromium = chromium();
    let ui = ui_dir();
    let dir = temp_dir("console-bin");
    let trigger = dir.join("ui-alert.sh");
    script(&trigger, "echo ui-alert > /dev/null");
    let held = dir.join("held");
    let markers = dir.join("markers");
    std::fs::create_dir_all(&held).expect("held dir");
    std::fs::create_dir_all(&markers).expect("markers dir");
    let hold_trigger = held.join("ui-hold.sh");
    script(
        &hold_trigger,
        &format!("touch {}/marker-$1", markers.display()),
    );
    let rules = format!(
        "- rule: ui_marker_exec\n  desc: the console test's marker ran\n  condition: evt.kind = exec and \
         exec.success = true and (exec.filename = {t} or exec.raw_filename = {t})\n  output: \"ran %exec.filename\"\n  severity: critical\n  \
         tags: [T1059]\n\
         - rule: ui_hold\n  desc: programs of the held directory wait for a person\n  condition: evt.kind = exec \
         and exec.filename startswith {h}/\n  output: \"held %exec.filename\"\n  severity: warning\n  \
         actions: [hold]\n  hold: {{timeout: 20s, default: deny}}\n",
        t = trigger.display(),
        h = held.display()
    );
    let s = start(&rules);
    let shots = target_dir().join("ui-shots");
    let config = json!({
        "url": s.collector.url(),
        "chromium": chromium,
        "shots": shots,
        "host": s.host,
        "approver_token": APPROVER,
        "alert_rule": "ui_marker_exec",
        "alert_trigger": trigger,
        "alert_text": "ui-alert.sh",
        "db": s.collector.dir.join("collector.db"),
        "hold_trigger": hold_trigger,
        "hold_markers": markers,
    });
    let config_file = s.dir.join("ui.json");
    std::fs::write(&config_file, config.to_string()).expect("config");
    let out = Command::new("node")
        .arg(ui.join("console.mjs"))
        .arg(&config_file)
        .current_dir(&ui)
        .output()
        .expect("running node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let alerts = s.collector.get("/v1/fleet/alerts");
        let execs = s
            .collector
            .get("/v1/events?kind=exec&q=ui-alert&pending=true");
        panic!(
            "the browser test failed:\n{stdout}\n{stderr}\nfleet alerts: {alerts}\nexecs: {execs}"
        );
    }
    assert!(stdout.contains("ui: all steps passed"), "{stdout}");
    for name in [
        "fleet",
        "alerts-live",
        "search",
        "event",
        "verify-tampered",
        "rules",
    ] {
        let file = shots.join(format!("{name}.png"));
        let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "screenshot {} missing or empty", file.display());
    }
    // The acknowledgement is on record at the collector, with who and why.
    let alerts = s.collector.get("/v1/fleet/alerts?rule=ui_marker_exec");
    let alert = &alerts["alerts"][0];
    assert_eq!(alert["state"], "acknowledged", "{alerts}");
    assert_eq!(alert["state_by"], "approver", "{alerts}");
    assert_eq!(alert["state_comment"], "looked at it from the console");
    // The holds' verdicts and outcomes are on record: who decided each, and the timeout.
    let holds = s.collector.get("/v1/holds?host=ui-host");
    let outcome = |state: &str| {
        holds
            .as_array()
            .into_iter()
            .flatten()
            .find(|h| h["state"] == state)
            .unwrap_or_else(|| panic!("no {state} hold: {holds}"))
            .clone()
    };
    assert_eq!(
        outcome("approved")["decided_by"],
        "collector:approver",
        "{holds}"
    );
    assert_eq!(
        outcome("approved")["verdict"]["comment"],
        "expected maintenance"
    );
    assert_eq!(
        outcome("denied")["decided_by"],
        "collector:approver",
        "{holds}"
    );
    assert_eq!(outcome("timed_out")["decided_by"], "timeout", "{holds}");
    // And the tamper alert names the record.
    let chain = s.collector.get("/v1/fleet/alerts?source=chain&rule=tamper");
    assert_eq!(chain["alerts"][0]["state"], "open", "{chain}");
}

/// What `request` answers (status, and the `Location` header of a redirect).
fn status(request: reqwest::blocking::RequestBuilder) -> (u16, String) {
    let r = request.send().expect("request");
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (r.status().as_u16(), location)
}

#[test]
fn nothing_answers_without_auth_viewers_change_nothing_and_posts_need_the_csrf_token() {
    let s = start(
        "- rule: never\n  condition: evt.kind = exec and exec.filename = /nonexistent/never\n  output: never\n",
    );
    let url = s.collector.url();
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let gets = [
        "/",
        "/alerts",
        "/alerts/feed",
        "/alerts/1",
        "/search",
        "/event/ui-host/1",
        "/rules",
        "/rules/x/events.jsonl",
        "/holds",
        "/assets/console.js",
        "/v1/hosts",
        "/v1/hosts/ui-host",
        "/v1/events",
        "/v1/alerts",
        "/v1/lineage?host=ui-host&seq=1",
        "/v1/fleet/alerts",
        "/v1/fleet/alerts/1",
        "/v1/holds",
        "/v1/hosts/ui-host/verdicts",
    ];
    for path in gets {
        let (code, location) = status(http.get(format!("{url}{path}")));
        assert!(
            code == 401 || (code == 303 && location == "/login"),
            "GET {path} without auth answered {code} {location}"
        );
    }
    let posts = [
        "/alerts/1/state",
        "/hosts/ui-host/verify",
        "/holds/ui-host/1/verdict",
        "/logout",
        "/v1/fleet/alerts/1/state",
        "/v1/holds/ui-host/1/verdict",
        "/v1/hosts",
    ];
    for path in posts {
        let (code, location) = status(http.post(format!("{url}{path}")).form(&[("x", "1")]));
        assert!(
            code == 401 || (code == 303 && location == "/login"),
            "POST {path} without auth answered {code} {location}"
        );
    }
    // The host's own token is not a person's.
    let host_token = std::fs::read_to_string(s.collector.dir.join("ui-host.token")).expect("token");
    let (code, _) = status(
        http.get(format!("{url}/v1/fleet/alerts"))
            .bearer_auth(host_token.trim()),
    );
    assert_eq!(code, 403, "a host token reads no fleet alerts");
    let (code, _) = status(
        http.get(format!("{url}/v1/hosts/ui-host/verdicts"))
            .bearer_auth(host_token.trim()),
    );
    assert_eq!(code, 200, "a host pulls its own verdicts");
    let (code, _) = status(
        http.get(format!("{url}/v1/hosts/other-host/verdicts"))
            .bearer_auth(host_token.trim()),
    );
    assert_eq!(code, 403, "a host pulls no other host's verdicts");
    let (code, _) = status(
        http.get(format!("{url}/v1/hosts/ui-host/verdicts"))
            .bearer_auth(APPROVER),
    );
    assert_eq!(code, 403, "verdicts are pulled with the host's token only");
    // A viewer reads, and may not decide a hold or change an alert.
    let (code, _) = status(
        http.get(format!("{url}/v1/fleet/alerts"))
            .bearer_auth(VIEWER),
    );
    assert_eq!(code, 200);
    let (code, _) = status(
        http.post(format!("{url}/v1/holds/ui-host/1/verdict"))
            .bearer_auth(VIEWER)
            .json(&json!({ "decision": "approve" })),
    );
    assert_eq!(code, 403, "a viewer cannot decide a hold");
    let (code, _) = status(
        http.post(format!("{url}/v1/fleet/alerts/1/state"))
            .bearer_auth(VIEWER)
            .json(&json!({ "state": "resolved" })),
    );
    assert_eq!(code, 403, "a viewer cannot change an alert");
    // Sessions: a viewer's session posting with its CSRF token is still refused (403); an approver's
    // session without the token is refused before the handler, and with the token reaches it.
    for (token, expect_with_csrf) in [(VIEWER, 403), (APPROVER, 404)] {
        let r = http
            .post(format!("{url}/login"))
            .form(&[("token", token)])
            .send()
            .expect("login");
        assert_eq!(r.status().as_u16(), 303);
        let cookie = r
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .expect("a session cookie")
            .to_owned();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let pair = cookie.split(';').next().expect("cookie pair").to_owned();
        let page = http
            .get(format!("{url}/alerts"))
            .header("cookie", &pair)
            .send()
            .expect("page")
            .text()
            .expect("body");
        let csrf = page
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the page carries a CSRF token")
            .to_owned();
        let path = format!("{url}/holds/ui-host/999/verdict");
        let (code, _) = status(
            http.post(&path)
                .header("cookie", &pair)
                .form(&[("decision", "approve")]),
        );
        assert_eq!(code, 403, "{token}: a POST without the CSRF token");
        let (code, _) = status(
            http.post(&path)
                .header("cookie", &pair)
                .form(&[("decision", "approve"), ("csrf", "0000")]),
        );
        assert_eq!(code, 403, "{token}: a POST with a wrong CSRF token");
        let (code, _) = status(
            http.post(&path)
                .header("cookie", &pair)
                .form(&[("decision", "approve"), ("csrf", csrf.as_str())]),
        );
        assert_eq!(code, expect_with_csrf, "{token}: with the CSRF token");
    }
    // A forged session (the role raised) is no session.
    let (code, location) = status(http.get(format!("{url}/")).header(
        "cookie",
        "auditloop_session=admin.99999999999999999999.00.00",
    ));
    assert!(code == 303 && location == "/login", "{code} {location}");
    let _: Value = s.collector.get("/v1/fleet/alerts");
}
