//! Reading stored events page by page within the budget, and the CSV of the statistics.

use axum::http::StatusCode;

use crate::http::testutil::TestApp;
use crate::testutil::TestJournal;
use crate::tuning::read::{Window, read_events};
use crate::tuning::{HostHits, RuleHits, RuleStats};

/// `host` enrolled and `n` execs of it stored, verified.
async fn stored(app: &TestApp, host: &str, n: u32) {
    let mut j = TestJournal::new(host);
    app.enroll(host, &mut j).await;
    j.execs(n);
    j.checkpoint();
    let (status, body) = app.post(host, &j.batch(1, j.last_seq())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn every_event_is_read_once_across_pages_and_hosts() {
    let app = TestApp::new();
    stored(&app, "a", 2_345).await;
    stored(&app, "b", 7).await;
    let hosts = ["a".to_owned(), "b".to_owned()];
    let mut seen: Vec<(String, u64)> = Vec::new();
    let read = read_events(
        app.store.as_ref(),
        &hosts,
        Window::default(),
        2_352,
        |h, e| seen.push((h.to_owned(), e.seq)),
    )
    .unwrap();
    assert_eq!(read.events, 2_352);
    assert!(
        !read.truncated,
        "a budget of exactly every event truncates nothing"
    );
    assert_eq!(read.undecodable, 0);
    assert_eq!(
        read.hosts.iter().map(|h| h.events).collect::<Vec<_>>(),
        [2_345, 7]
    );
    let a: Vec<u64> = seen
        .iter()
        .filter(|(h, _)| h == "a")
        .map(|(_, s)| *s)
        .collect();
    assert!(
        a.windows(2).all(|w| w[0] < w[1]),
        "in sequence order, once each"
    );
    assert_eq!(a.len(), 2_345);
    let read = read_events(
        app.store.as_ref(),
        &hosts,
        Window::default(),
        2_351,
        |_, _| {},
    )
    .unwrap();
    assert!(read.truncated);
    assert_eq!(read.events, 2_351);
    assert_eq!(read.hosts[1].events, 6);
}

#[test]
fn csv_cells_are_quoted_and_formulas_defused() {
    let stats = RuleStats {
        rules: vec![RuleHits {
            rule: "a,b".into(),
            hits: 3,
            hosts: vec![HostHits {
                host: "h".into(),
                hits: 3,
            }],
            last_24h: vec![1, 2],
            last: auditloop_model::WallTime(0),
        }],
        never_fired: vec!["-x".into(), "+y".into(), "@z".into(), "q\"".into()],
        alerts_read: 3,
        truncated: false,
    };
    let csv = stats.csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[1].starts_with("\"a,b\",fired,3,3,h:3,1970-01-01T00:00:00"),
        "{csv}"
    );
    assert_eq!(lines[2], "'-x,never_fired,0,0,,");
    assert_eq!(lines[3], "'+y,never_fired,0,0,,");
    assert_eq!(lines[4], "'@z,never_fired,0,0,,");
    assert_eq!(lines[5], "\"q\"\"\",never_fired,0,0,,");
}
