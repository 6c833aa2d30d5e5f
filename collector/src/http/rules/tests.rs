//! Fleet-wide learning, rules diffs and rule statistics over HTTP, with a SQLite store: what they answer
//! and what they refuse.

use auditloop_model::{Event, EventBody, Exec, File, FileOp, Process, WallTime};
use auditloop_protocol::api::rules::{MAX_DIFF_BODY, RULES_DIFF};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};

use crate::groups::HostGroups;
use crate::http::testutil::{ADMIN, ENROLL_TOKEN, PEER, TestApp, VIEWER};
use crate::testutil::TestJournal;

/// The first event's time.
const T0: u64 = 1_700_000_000_000_000_000;
const SEC: u64 = 1_000_000_000;

pub(super) fn event(at_s: u64, exe: &str, parent: &str, body: EventBody) -> Event {
    Event {
        seq: 0,
        time: WallTime(T0 + at_s * SEC),
        mono_ns: 0,
        process: Process {
            pid: 100 + at_s as u32,
            tid: 100 + at_s as u32,
            comm: "c".into(),
            exe: exe.into(),
            parent_exe: parent.into(),
            ..Process::default()
        },
        event: body,
    }
}

fn exec(at_s: u64, parent: &str, program: &str) -> Event {
    let body = EventBody::Exec(Exec {
        filename: program.into(),
        argv: vec![program.into()],
        success: true,
        ..Exec::default()
    });
    event(at_s, program, parent, body)
}

fn config_write(at_s: u64, writer: &str, path: &str) -> Event {
    let body = EventBody::File(File {
        op: FileOp::Open,
        path: path.into(),
        success: true,
        ..File::default()
    });
    event(at_s, writer, "/usr/lib/systemd/systemd", body)
}

/// Ships `events` for `host` (enrolled now), covered by a checkpoint.
pub(super) async fn ship(app: &TestApp, host: &str, events: Vec<Event>) -> TestJournal {
    let mut j = TestJournal::new(host);
    app.enroll(host, &mut j).await;
    for e in events {
        j.append(e);
    }
    j.checkpoint();
    let (status, body) = app.post(host, &j.batch(1, j.last_seq())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    j
}

/// Three hosts: `web-1` and `web-2`, whose nginx starts logger (4 and 3 times, seconds 1.. and 11..),
/// `web-1` writing its config; `db-1`, whose postgres starts pg_dump. Groups `web` (`web-*`) and `db`.
async fn fleet() -> TestApp {
    let groups = HostGroups::from_pairs([("web", &["web-*"][..]), ("db", &["db-*"][..])]).unwrap();
    let app = TestApp::new().with_groups(groups);
    let mut web1: Vec<Event> = (1..=4)
        .map(|s| exec(s, "/usr/sbin/nginx", "/usr/bin/logger"))
        .collect();
    web1.push(config_write(5, "/usr/sbin/nginx", "/etc/nginx/nginx.conf"));
    ship(&app, "web-1", web1).await;
    let web2 = (11..=13)
        .map(|s| exec(s, "/usr/sbin/nginx", "/usr/bin/logger"))
        .collect();
    ship(&app, "web-2", web2).await;
    let db = (21..=25)
        .map(|s| exec(s, "/usr/sbin/postgres", "/usr/bin/pg_dump"))
        .collect();
    ship(&app, "db-1", db).await;
    app
}

/// `text` percent-encoded for a query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn hosts_of(body: &Value) -> Vec<(String, u64)> {
    body["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap().to_owned(),
                h["events"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn post_diff(app: &TestApp, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
    app.post_json(RULES_DIFF, token, body).await
}

const LOGGER_RULE: &str = "- rule: logger_started\n  condition: evt.kind = exec and exec.filename = /usr/bin/logger\n  output: \"logger by %proc.pexe\"\n";
const DUMP_RULE: &str = "- rule: dump_started\n  condition: evt.kind = exec and exec.filename = /usr/bin/pg_dump\n  output: dump\n";

#[tokio::test]
async fn a_group_learns_one_baseline_from_its_hosts_only() {
    let app = fleet().await;
    let (status, body) = app.get("/v1/rules/learn?group=web").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["selection"], "group web");
    assert_eq!(
        hosts_of(&body),
        [("web-1".to_owned(), 5), ("web-2".to_owned(), 3)]
    );
    assert_eq!(body["events"], 8);
    assert_eq!(body["truncated"], false);
    assert_eq!(body["baseline"]["events"], 8);
    assert_eq!(body["baseline"]["parents"], 1, "{body}");
    assert_eq!(body["baseline"]["config_paths"], 1, "{body}");
    let yaml = body["yaml"].as_str().unwrap();
    assert!(yaml.starts_with("# Learned by auditloop-collector from the stored events of group web (2 hosts: web-1, web-2)"), "{yaml}");
    assert!(yaml.contains("/usr/bin/logger"), "{yaml}");
    assert!(
        !yaml.contains("pg_dump") && !yaml.contains("postgres"),
        "{yaml}"
    );
    let rules = body["rules"].as_array().unwrap();
    let exec_rule = rules
        .iter()
        .find(|r| r["flags"] == "exec_under_parent")
        .unwrap_or_else(|| panic!("no exec rule: {body}"));
    assert_eq!(exec_rule["subjects"], json!(["/usr/sbin/nginx"]));
    assert_eq!(exec_rule["support"], 7);
    assert!(body["skipped"].is_array());
    // The proposal compiles, and the group's own window raises nothing on it.
    let (status, diff) = post_diff(
        &app,
        Some(ADMIN),
        &json!({ "old": "", "new": yaml, "group": "web" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    assert_eq!(diff["added"], 0, "{diff}");
}

#[tokio::test]
async fn the_proposal_downloads_as_yaml() {
    let app = fleet().await;
    let req = Request::get("/v1/rules/learn.yaml?group=db")
        .header(header::AUTHORIZATION, format!("Bearer {VIEWER}"))
        .body(Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), req)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "application/yaml; charset=utf-8"
    );
    assert!(
        headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains("learned.yaml")
    );
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let yaml = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(yaml.contains("/usr/bin/pg_dump"), "{yaml}");
    assert!(!yaml.contains("logger"), "{yaml}");
    auditloop_rules::RuleSet::parse("learned.yaml", &yaml).unwrap();
}

#[tokio::test]
async fn windows_and_the_event_budget_bound_the_read() {
    let app = fleet().await;
    let since = T0 + 11 * SEC;
    let (status, body) = app
        .get(&format!("/v1/rules/learn?group=web&since={since}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        hosts_of(&body),
        [("web-1".to_owned(), 0), ("web-2".to_owned(), 3)]
    );
    let (status, body) = app.get("/v1/rules/learn?group=web&max_events=2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["events"], 2);
    assert_eq!(body["truncated"], true);
    assert_eq!(
        hosts_of(&body),
        [("web-1".to_owned(), 2), ("web-2".to_owned(), 0)]
    );
    let yaml = body["yaml"].as_str().unwrap();
    assert!(
        yaml.contains("# TRUNCATED at max_events=2") && yaml.contains("hosts not read: web-2"),
        "{yaml}"
    );
    for (query, wanted) in [
        ("group=web&max_events=0", "max_events=0: 1 to 1000000"),
        ("group=web&max_events=1000001", "1 to 1000000"),
        ("group=web&since=20&until=10", "is not before until"),
        ("group=web&since=yesterday", "since=\"yesterday\""),
        ("group=web&config_paths=etc", "not an absolute path"),
    ] {
        let (status, body) = app.get(&format!("/v1/rules/learn?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(wanted), "{query}: {error}");
    }
}

#[tokio::test]
async fn a_diff_reports_added_and_removed_alerts_per_rule_with_hosts() {
    let app = fleet().await;
    let (status, body) = post_diff(
        &app,
        Some(VIEWER),
        &json!({ "old": DUMP_RULE, "new": LOGGER_RULE, "hosts": "*", "examples": 2 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["selection"], "hosts=*");
    assert_eq!(body["events"], 13);
    assert_eq!(
        (body["added"].as_u64(), body["removed"].as_u64()),
        (Some(7), Some(5))
    );
    let rules = body["rules"].as_array().unwrap();
    assert_eq!(rules[0]["rule"], "logger_started");
    assert_eq!(rules[0]["status"], "added");
    assert_eq!(rules[0]["added"], 7);
    let examples = rules[0]["added_examples"].as_array().unwrap();
    assert_eq!(examples.len(), 2);
    assert_eq!(examples[0]["host"], "web-1");
    assert_eq!(examples[0]["output"], "logger by /usr/sbin/nginx");
    assert_eq!(rules[1]["rule"], "dump_started");
    assert_eq!(rules[1]["status"], "removed");
    assert_eq!(rules[1]["removed_examples"][0]["host"], "db-1");
    // Within the web group, only web hosts replay.
    let (status, body) = post_diff(
        &app,
        Some(ADMIN),
        &json!({ "old": DUMP_RULE, "new": LOGGER_RULE, "group": "web", "hosts": "*" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["removed"], 0, "{body}");
    assert_eq!(body["added"], 7);
}

#[tokio::test]
async fn bad_rules_are_a_400_naming_file_line_and_column() {
    let app = fleet().await;
    let new = "- rule: r\n  condition: exec.filname = /bin/sh\n  output: o\n";
    let (status, body) = post_diff(
        &app,
        Some(ADMIN),
        &json!({ "old": "", "new": new, "group": "web" }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.starts_with("new.yaml:2:14:"), "{error}");
    let (status, body) = post_diff(
        &app,
        Some(ADMIN),
        &json!({ "old": "- rule: [unclosed\n", "new": "", "group": "web" }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("old.yaml:"),
        "{body}"
    );
    let (status, body) = post_diff(
        &app,
        Some(ADMIN),
        &json!({ "old": "", "new": "", "group": "web", "examples": 51 }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = post_diff(&app, Some(ADMIN), &json!({ "old": "" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn an_oversized_diff_body_is_refused_unread() {
    let app = fleet().await;
    let huge = "#".repeat(MAX_DIFF_BODY);
    let (status, body) = post_diff(
        &app,
        Some(ADMIN),
        &json!({ "old": "", "new": huge, "group": "web" }),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("body exceeds"),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_groups_and_empty_choices_say_so() {
    let app = fleet().await;
    let (status, body) = app.get("/v1/rules/learn?group=mail").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        body["error"],
        "unknown host group \"mail\" (configured: db, web)"
    );
    let (status, body) = post_diff(
        &app,
        Some(ADMIN),
        &json!({ "old": "", "new": "", "group": "mail" }),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = app.get("/v1/rules/learn").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("group="), "{body}");
    let (status, body) = app.get("/v1/rules/learn?hosts=web-%5B").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("invalid host pattern"),
        "{body}"
    );
    let (status, body) = app.get("/v1/rules/learn?hosts=mail-*").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "no stored host matches hosts=mail-*");
}

#[tokio::test]
async fn a_pattern_cannot_reach_outside_its_group() {
    let app = fleet().await;
    for pattern in ["db-*", "db-1", "*db*", "{db-1,web-9}"] {
        let (status, body) = app
            .get(&format!(
                "/v1/rules/learn?group=web&hosts={}",
                encode(pattern)
            ))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{pattern}: {body}");
        let (status, body) = post_diff(
            &app,
            Some(ADMIN),
            &json!({ "old": "", "new": DUMP_RULE, "group": "web", "hosts": pattern }),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{pattern}: {body}");
    }
    let (status, body) = app.get("/v1/rules/learn?group=web&hosts=*-2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(hosts_of(&body), [("web-2".to_owned(), 3)]);
}

#[tokio::test]
async fn only_people_may_learn_diff_or_export() {
    let app = fleet().await;
    let host_token = app.token("web-1");
    let diff = json!({ "old": "", "new": "", "group": "web" });
    for uri in [
        "/v1/rules/learn?group=web",
        "/v1/rules/learn.yaml?group=web",
        "/v1/rules/stats",
        "/v1/rules/stats.csv",
    ] {
        assert_eq!(
            app.get_as(uri, None).await.0,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
        assert_eq!(
            app.get_as(uri, Some("nobody")).await.0,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
        assert_eq!(
            app.get_as(uri, Some(&host_token)).await.0,
            StatusCode::FORBIDDEN,
            "{uri}"
        );
        assert_eq!(
            app.get_as(uri, Some(ENROLL_TOKEN)).await.0,
            StatusCode::FORBIDDEN,
            "{uri}"
        );
        assert_eq!(
            app.get_as(uri, Some(VIEWER)).await.0,
            StatusCode::OK,
            "{uri}"
        );
    }
    assert_eq!(
        post_diff(&app, None, &diff).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post_diff(&app, Some(&host_token), &diff).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post_diff(&app, Some(ENROLL_TOKEN), &diff).await.0,
        StatusCode::FORBIDDEN
    );
    // Refused before the body is read: an oversized body from a stranger is a 401, not a 413.
    let huge = json!({ "old": "#".repeat(MAX_DIFF_BODY), "new": "" });
    assert_eq!(
        post_diff(&app, None, &huge).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_session_diff_needs_its_csrf_token() {
    let app = fleet().await;
    let now = WallTime::now().0;
    let key = app.state.session_key();
    let cookie = crate::session::issue(&key, crate::auth::Role::Viewer, now).unwrap();
    let body = json!({ "old": "", "new": "", "group": "web" }).to_string();
    let send = |csrf: Option<String>| {
        let mut req = Request::post(RULES_DIFF)
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::COOKIE,
                format!("{}={cookie}", crate::session::COOKIE),
            );
        if let Some(csrf) = csrf {
            req = req.header(crate::session::CSRF_HEADER, csrf);
        }
        req.body(Body::from(body.clone())).unwrap()
    };
    let (status, answer) = app.send(send(None), PEER).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let token = crate::session::csrf_token(&key, &cookie);
    let (status, answer) = app.send(send(Some(token)), PEER).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn replays_beyond_the_bound_are_told_to_retry() {
    let app = fleet().await;
    let turns: Vec<_> = std::iter::from_fn(|| app.state.replay_turn()).collect();
    assert_eq!(turns.len(), crate::http::state::MAX_REPLAYS);
    let (status, body) = app.get("/v1/rules/learn?group=web").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    drop(turns);
    assert_eq!(app.get("/v1/rules/learn?group=web").await.0, StatusCode::OK);
}
