//! The rules page's learn and diff forms, through the console's router.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use crate::groups::HostGroups;
use crate::http::testutil::{TestApp, VIEWER};
use crate::testutil::TestJournal;

/// A collector with group `web` and host `web-1`, which ran `/bin/true` 5 times; the console's router.
async fn console() -> (TestApp, Router) {
    let groups = HostGroups::from_pairs([("web", &["web-*"][..])]).unwrap();
    let app = TestApp::new().with_groups(groups);
    let mut j = TestJournal::new("web-1");
    app.enroll("web-1", &mut j).await;
    j.execs(5);
    j.checkpoint();
    assert_eq!(
        app.post("web-1", &j.batch(1, j.last_seq())).await.0,
        StatusCode::OK
    );
    let router = crate::console::router(app.state.clone());
    (app, router)
}

async fn send(router: &Router, req: Request<Body>) -> (StatusCode, String) {
    let response = router.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {VIEWER}"))
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn the_rules_page_offers_both_forms_and_the_exports() {
    let (_app, router) = console().await;
    let (status, html) = send(&router, get("/rules")).await;
    assert_eq!(status, StatusCode::OK);
    for part in [
        "id=\"learn-form\"",
        "id=\"diff-form\"",
        "href=\"/v1/rules/stats\"",
        "href=\"/v1/rules/stats.csv\"",
        "<option value=\"web\"",
    ] {
        assert!(html.contains(part), "{part}: {html}");
    }
}

#[tokio::test]
async fn a_learn_shows_the_proposal_and_its_download() {
    let (_app, router) = console().await;
    let (status, html) = send(&router, get("/rules/learn?group=web&hosts=&since=")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("id=\"learn-yaml\""), "{html}");
    assert!(
        html.contains("href=\"/v1/rules/learn.yaml?group=web\""),
        "{html}"
    );
    assert!(
        html.contains("Learned from <strong>5</strong> events"),
        "{html}"
    );
    let (status, html) = send(&router, get("/rules/learn?group=mail")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        html.contains("unknown host group &quot;mail&quot; (configured: web)"),
        "{html}"
    );
}

fn form(fields: &[(&str, &str)]) -> Request<Body> {
    let body = serde_urlencoded::to_string(fields).unwrap();
    Request::post("/rules/diff")
        .header(header::AUTHORIZATION, format!("Bearer {VIEWER}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn a_diff_shows_added_alerts_per_rule_and_escapes_what_it_echoes() {
    let (_app, router) = console().await;
    let new = "- rule: true_ran\n  condition: evt.kind = exec and exec.filename = /bin/true\n  output: \"<b>ran</b> %exec.filename\"\n";
    let (status, html) = send(
        &router,
        form(&[
            ("old", ""),
            ("new", new),
            ("group", "web"),
            ("examples", "1"),
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("data-rule=\"true_ran\""), "{html}");
    assert!(html.contains("+5"), "{html}");
    assert!(html.contains("href=\"/event/web-1/"), "{html}");
    assert!(
        html.contains("&lt;b&gt;ran&lt;/b&gt; /bin/true") && !html.contains("<b>ran"),
        "outputs and the echoed rules are escaped: {html}"
    );
    let bad = "- rule: r\n  condition: exec.filname = /bin/sh\n  output: o\n";
    let (status, html) = send(
        &router,
        form(&[("old", ""), ("new", bad), ("group", "web")]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("new.yaml:2:14:"), "{html}");
}
