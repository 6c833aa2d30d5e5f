//! The rule statistics export over HTTP: noisiest first, never fired, narrowed to a group, as CSV.

use auditloop_model::{Alert, Event, EventBody, RulesLoaded, Severity};
use axum::http::StatusCode;
use serde_json::json;

use crate::groups::HostGroups;
use crate::http::rules::tests::{event, ship};
use crate::http::testutil::TestApp;

fn alert(at_s: u64, rule: &str, trigger_seq: u64) -> Event {
    let body = EventBody::Alert(Alert {
        rule: rule.into(),
        severity: Severity::Warning,
        output: format!("{rule} fired"),
        tags: Vec::new(),
        trigger_seq,
    });
    event(at_s, "/usr/bin/auditloop", "", body)
}

fn loaded(names: &[&str]) -> Event {
    let body = EventBody::RulesLoaded(RulesLoaded {
        path: "/etc/auditloop/rules".into(),
        rules: names.len() as u32,
        reason: "start".into(),
        names: names.iter().map(|n| (*n).to_owned()).collect(),
        ..RulesLoaded::default()
    });
    event(0, "/usr/bin/auditloop", "", body)
}

#[tokio::test]
async fn statistics_export_noisiest_first_and_never_fired() {
    let groups = HostGroups::from_pairs([("web", &["web-*"][..])]).unwrap();
    let app = TestApp::new().with_groups(groups);
    let names = ["quiet", "noisy", "=HYPERLINK(\"x\")", "never"];
    ship(
        &app,
        "web-1",
        vec![
            loaded(&names),
            alert(1, "noisy", 1),
            alert(2, "noisy", 1),
            alert(3, "quiet", 1),
            alert(4, "=HYPERLINK(\"x\")", 1),
        ],
    )
    .await;
    ship(
        &app,
        "db-1",
        vec![alert(5, "noisy", 1), alert(6, "noisy", 1)],
    )
    .await;
    let (status, body) = app.get("/v1/rules/stats").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rules: Vec<(&str, u64)> = body["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["rule"].as_str().unwrap(), r["hits"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        rules,
        [("noisy", 4), ("=HYPERLINK(\"x\")", 1), ("quiet", 1)]
    );
    assert_eq!(
        body["rules"][0]["hosts"],
        json!([{ "host": "db-1", "hits": 2 }, { "host": "web-1", "hits": 2 }])
    );
    assert_eq!(body["never_fired"], json!(["never"]));
    assert_eq!(body["truncated"], false);
    // A group narrows the hits to its hosts.
    let (status, body) = app.get("/v1/rules/stats?group=web").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rules"][0]["hits"], 2);
    let (status, csv) = app.get("/v1/rules/stats.csv").await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    let csv = csv.as_str().unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "rule,status,hits,last_24h,hosts,last");
    assert!(lines[1].starts_with("noisy,fired,4,"), "{csv}");
    assert!(lines[1].contains(",db-1:2 web-1:2,"), "{csv}");
    assert!(
        lines[2].starts_with("\"'=HYPERLINK(\"\"x\"\")\",fired,1,"),
        "a formula is defused and quoted: {csv}"
    );
    assert_eq!(lines[4], "never,never_fired,0,0,,");
    assert_eq!(lines.len(), 5);
}
