//! Query parameters, and the query API over HTTP: filters, paging and the served JSON.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{DEFAULT_LIMIT, MAX_LIMIT, limit, parse_time};
use crate::http::testutil::TestApp;
use crate::testutil::TestJournal;

#[test]
fn times_parse_as_ns_or_rfc3339() {
    assert_eq!(
        parse_time("1700000000000000000"),
        Ok(1_700_000_000_000_000_000)
    );
    let z = parse_time("2023-11-14T22:13:20Z").unwrap();
    assert_eq!(z, 1_700_000_000_000_000_000);
    assert_eq!(
        parse_time("2023-11-14T22:13:20.5Z").unwrap(),
        z + 500_000_000
    );
    assert_eq!(parse_time("2023-11-15T00:13:20+02:00").unwrap(), z);
    assert_eq!(parse_time("2023-11-14T21:13:20-01:00").unwrap(), z);
    assert!(parse_time("yesterday").is_err());
    assert!(parse_time("2023-13-14T22:13:20Z").is_err());
}

#[test]
fn limits_are_clamped() {
    assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
    assert_eq!(limit(Some("")).unwrap(), DEFAULT_LIMIT);
    assert_eq!(limit(Some("5000")).unwrap(), MAX_LIMIT);
    assert_eq!(limit(Some("0")).unwrap(), 1);
    assert!(limit(Some("x")).is_err());
}

/// Two hosts: `a` with execs by pids 100..=109 and file events, `b` with 5 execs, each covered by a
/// checkpoint.
async fn two_hosts() -> TestApp {
    let app = TestApp::new();
    let mut a = TestJournal::new("a");
    app.enroll("a", &mut a).await;
    a.execs(10);
    a.file(7, "/etc/passwd");
    a.file(7, "/etc/shadow");
    a.file(8, "/var/log/x");
    a.checkpoint();
    let mut b = TestJournal::new("b");
    app.enroll("b", &mut b).await;
    b.execs(5);
    b.checkpoint();
    assert_eq!(
        app.post("a", &a.batch(1, a.last_seq())).await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.post("b", &b.batch(1, b.last_seq())).await.0,
        StatusCode::OK
    );
    app
}

async fn events(app: &TestApp, query: &str) -> (Vec<Value>, Value) {
    let (status, body) = app.get(&format!("/v1/events?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    (
        body["events"].as_array().unwrap().clone(),
        body["next"].clone(),
    )
}

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn events_filter_by_host_kind_pid_path_and_text() {
    let app = two_hosts().await;
    let (all, next) = events(&app, "").await;
    assert_eq!(
        all.len(),
        18,
        "events only, no segment starts or checkpoints"
    );
    assert_eq!(next, Value::Null);
    let first = &all[0];
    assert_eq!(first["host"], "a");
    assert_eq!(first["seq"], 2);
    assert_eq!(first["kind"], "exec");
    assert!(first["stored_ns"].as_u64().unwrap() > 0);
    assert_eq!(first["event"]["seq"], 2);
    assert_eq!(first["event"]["process"]["pid"], 100);
    assert_eq!(first["event"]["event"]["exec"]["filename"], "/bin/true");

    assert_eq!(events(&app, "host=b").await.0.len(), 5);
    assert_eq!(events(&app, "host=nope").await.0.len(), 0);
    assert_eq!(events(&app, "host=a&kind=file").await.0.len(), 3);
    assert_eq!(seqs(&events(&app, "pid=7").await.0), [12, 13]);
    assert_eq!(seqs(&events(&app, "path=/etc/shadow").await.0), [13]);
    assert_eq!(seqs(&events(&app, "path=/etc/*").await.0), [12, 13]);
    assert_eq!(
        events(&app, "q=prog101").await.0.len(),
        2,
        "exe of pid 101 on both hosts"
    );
    assert_eq!(seqs(&events(&app, "q=/var/log").await.0), [14]);
    // Empty parameters count as absent.
    assert_eq!(events(&app, "host=&kind=&pid=&q=").await.0.len(), 18);

    let (cps, _) = events(&app, "kind=checkpoint&host=a").await;
    assert_eq!(cps.len(), 1);
    assert_eq!(cps[0]["record"]["epoch"], 0);
    assert_eq!(cps[0]["record"]["head_seq"], 14);
    let (starts, _) = events(&app, "kind=segment_start&host=b").await;
    assert_eq!(starts[0]["record"]["host"], "b");
}

#[tokio::test]
async fn events_filter_by_time() {
    let app = two_hosts().await;
    // Test events are stamped 1_700_000_000_000_000_000 + pid.
    let base = 1_700_000_000_000_000_000u64;
    let (hits, _) = events(&app, &format!("since={}&until={}", base + 100, base + 102)).await;
    assert_eq!(hits.len(), 4, "pids 100 and 101 on both hosts");
    let (hits, _) = events(&app, "until=2023-11-14T22:13:20.000000008Z").await;
    assert_eq!(seqs(&hits), [12, 13]);
    let (status, body) = app.get("/v1/events?since=tomorrow").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().starts_with("since="),
        "{body}"
    );
    assert_eq!(app.get("/v1/events?pid=x").await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn events_page_with_the_next_cursor() {
    let app = two_hosts().await;
    for filter in ["", "host=a&", "kind=exec&"] {
        let (all, _) = events(&app, filter).await;
        let mut paged = Vec::new();
        let mut after = String::new();
        loop {
            let (page, next) = events(&app, &format!("{filter}limit=4{after}")).await;
            assert!(page.len() <= 4);
            paged.extend(page);
            match next.as_i64() {
                Some(cursor) => after = format!("&after={cursor}"),
                None => break,
            }
        }
        assert_eq!(paged, all, "{filter}");
    }
}

#[tokio::test]
async fn hosts_and_alerts_are_listed() {
    let app = two_hosts().await;
    let (status, body) = app.get("/v1/hosts").await;
    assert_eq!(status, StatusCode::OK);
    let hosts = body["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2);
    let a = &hosts[0];
    assert_eq!(a["host"], "a");
    assert_eq!(
        (a["first_seq"].clone(), a["last_seq"].clone()),
        (json!(1), json!(15))
    );
    assert_eq!(
        (a["records"].clone(), a["events"].clone()),
        (json!(15), json!(13))
    );
    assert_eq!(a["next_seq"], 16);
    assert_eq!(a["status"], "verified");
    assert!(a["last_seen"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        (a["pending"].clone(), a["last_verified_seq"].clone()),
        (json!(0), json!(15))
    );
    assert_eq!(app.get("/v1/hosts/zz").await.0, StatusCode::NOT_FOUND);

    let mut j = TestJournal::new("c");
    app.enroll("c", &mut j).await;
    j.execs(20);
    app.post("c", &j.batch(3, 4)).await;
    app.post("a", &j.batch(18, 19)).await;
    let (_, body) = app.get("/v1/alerts?kind=gap").await;
    assert_eq!(body["alerts"].as_array().unwrap().len(), 2);
    let (_, body) = app.get("/v1/alerts?host=c").await;
    let alerts = body["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["kind"], "gap");
    assert_eq!(alerts[0]["detail"]["expected_seq"], 1);
    let (_, body) = app.get("/v1/alerts?limit=1").await;
    assert_eq!(body["alerts"].as_array().unwrap().len(), 1);
    let next = body["next"].as_i64().unwrap();
    let (_, body) = app.get(&format!("/v1/alerts?limit=1&after={next}")).await;
    assert_eq!(body["alerts"][0]["host"], "a");
    assert_eq!(body["next"], Value::Null);
    let (_, body) = app.get("/v1/alerts?since=2999-01-01T00:00:00Z").await;
    assert!(body["alerts"].as_array().unwrap().is_empty());
    assert_eq!(
        app.get("/v1/alerts?kind=nope").await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn pending_records_are_served_only_when_asked_for() {
    let app = TestApp::new();
    let mut j = TestJournal::new("p");
    app.enroll("p", &mut j).await;
    j.execs(3);
    let cp = j.checkpoint();
    j.execs(2);
    let (status, receipt) = app.post("p", &j.batch(1, cp + 2)).await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    assert_eq!(
        (
            receipt["verified_through"].clone(),
            receipt["pending"].clone()
        ),
        (json!(cp), json!(2))
    );
    let (verified, _) = events(&app, "host=p").await;
    assert_eq!(seqs(&verified), [2, 3, 4]);
    assert!(verified.iter().all(|e| e["verified"] == true));
    let (all, _) = events(&app, "host=p&pending=true").await;
    assert_eq!(seqs(&all), [2, 3, 4, cp + 1, cp + 2]);
    assert_eq!(all[3].get("verified_ns"), None, "pending: not verified yet");
    let flags: Vec<_> = all
        .iter()
        .map(|e| e["verified"].as_bool().unwrap())
        .collect();
    assert_eq!(flags, [true, true, true, false, false]);
    assert_eq!(events(&app, "host=p&pending=false").await.0.len(), 3);
    assert_eq!(
        app.get("/v1/events?pending=yes").await.0,
        StatusCode::BAD_REQUEST
    );
    let host = app.host("p").await;
    assert_eq!(
        (host["pending"].clone(), host["last_verified_seq"].clone()),
        (json!(2), json!(cp))
    );

    // The next batch's checkpoint covers them.
    let cp2 = j.checkpoint();
    let (_, receipt) = app.post("p", &j.batch(cp + 1, cp2)).await;
    assert_eq!(
        (
            receipt["verified_through"].clone(),
            receipt["pending"].clone()
        ),
        (json!(cp2), json!(0))
    );
    let (verified, _) = events(&app, "host=p").await;
    assert_eq!(seqs(&verified), [2, 3, 4, cp + 1, cp + 2]);
    assert!(verified.iter().all(|e| e["verified"] == true));
    let when: Vec<_> = verified
        .iter()
        .map(|e| e["verified_ns"].as_u64().unwrap())
        .collect();
    assert!(
        when[2] < when[3],
        "later records were verified by the later checkpoint: {when:?}"
    );
    assert!(
        verified
            .iter()
            .all(|e| e["verified_ns"].as_u64() >= e["stored_ns"].as_u64())
    );
    assert_eq!(app.host("p").await["pending"], 0);
}
