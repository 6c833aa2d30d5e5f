//! Enrollment over HTTP: who may enroll, what a taken id answers, bad requests, re-enrollment by the
//! admin, and a first batch that must come from the enrolled key.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::http::testutil::{ADMIN, ENROLL_TOKEN, TestApp, attack, victim};
use crate::testutil::TestJournal;

#[tokio::test]
async fn the_first_batch_must_come_from_the_enrolled_key() {
    let app = TestApp::new();
    let mut real = TestJournal::new("web");
    let key = hex::encode(real.genesis_key());
    let (status, body) = app.register_as(Some(ADMIN), "web", &key, false).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A thief with the token but another journal (another genesis key).
    let mut other = TestJournal::new("web");
    other.execs(3);
    let cp = other.checkpoint();
    let (status, body) = attack(&app, "web", &app.token("web"), &other.batch(1, cp)).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "error": "refused", "damage": "wrong_key" })
        )
    );
    assert_eq!(app.host("web").await["status"], "enrolled");
    assert_eq!(app.records("web").await, 0);
    real.execs(1);
    let cp = real.checkpoint();
    assert_eq!(app.post("web", &real.batch(1, cp)).await.0, StatusCode::OK);
    assert_eq!(app.host("web").await["status"], "verified");
}

#[tokio::test]
async fn claiming_an_enrolled_host_id_fails() {
    let app = TestApp::new();
    let mut v = victim(&app).await;
    let before = app.host("victim").await;
    let mine = hex::encode(TestJournal::new("x").genesis_key());
    let theirs = hex::encode(v.genesis_key());
    for key in [&mine, &theirs] {
        let answer = app.enroll_as(Some(ENROLL_TOKEN), "victim", key).await;
        assert_eq!(
            answer,
            (StatusCode::CONFLICT, json!({ "error": "host_exists" }))
        );
        let answer = app.register_as(Some(ADMIN), "victim", key, false).await;
        assert_eq!(
            answer,
            (StatusCode::CONFLICT, json!({ "error": "host_exists" }))
        );
    }
    // `replace` means nothing on the enrollment route, and the enrollment token cannot use the admin's.
    let sneaky = json!({ "host_id": "victim", "genesis_public_key": mine, "replace": true });
    let answer = app
        .post_json(auditloop_protocol::api::ENROLL, Some(ENROLL_TOKEN), &sneaky)
        .await;
    assert_eq!(
        answer,
        (StatusCode::CONFLICT, json!({ "error": "host_exists" }))
    );
    let answer = app
        .post_json(auditloop_protocol::api::HOSTS, Some(ENROLL_TOKEN), &sneaky)
        .await;
    assert_eq!(answer.0, StatusCode::FORBIDDEN);
    // Same answer for the admin, no token issued, the victim's own token still works.
    assert_eq!(app.host("victim").await, before);
    v.execs(1);
    let cp = v.checkpoint();
    assert_eq!(app.post("victim", &v.batch(7, cp)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn enrolling_needs_the_enrollment_or_admin_token() {
    let app = TestApp::new();
    let key = hex::encode(TestJournal::new("a").genesis_key());
    assert_eq!(
        app.enroll_as(None, "a", &key).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.enroll_as(Some("guess"), "a", &key).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = app.enroll_as(Some(ENROLL_TOKEN), "a", &key).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["host_id"], "a");
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 64);
    assert_eq!(
        app.enroll_as(Some(&token), "b", &key).await.0,
        StatusCode::FORBIDDEN,
        "a host token enrolls nothing"
    );
    assert_eq!(
        app.enroll_as(Some(ADMIN), "b", &key).await.0,
        StatusCode::CREATED
    );
    // The enrollment token may not register or re-enroll, nor query.
    assert_eq!(
        app.register_as(Some(ENROLL_TOKEN), "a", &key, true).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.register_as(Some(&token), "c", &key, false).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get_as("/v1/hosts", Some(ENROLL_TOKEN)).await.0,
        StatusCode::FORBIDDEN
    );
    // Bad ids and keys name the problem.
    for (host, key, field) in [
        ("bad/id", key.as_str(), "host_id"),
        ("a@replaced-1", key.as_str(), "host_id"),
        ("c", "xyz", "genesis_public_key"),
        ("c", &key[..62], "genesis_public_key"),
        ("c", &"zz".repeat(32), "genesis_public_key"),
    ] {
        let (status, body) = app.enroll_as(Some(ENROLL_TOKEN), host, key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{host} {key}: {body}");
        assert!(body["error"].as_str().unwrap().contains(field), "{body}");
    }
    assert_eq!(app.get("/v1/hosts/c").await.0, StatusCode::NOT_FOUND);
    let host = app.host("a").await;
    assert_eq!(
        (host["status"].clone(), host["enrolled_key"].clone()),
        (json!("enrolled"), json!(key))
    );
    assert_eq!(
        (host["last_seen_ns"].clone(), host["last_hash"].clone()),
        (Value::Null, Value::Null)
    );
}

#[tokio::test]
async fn without_an_enrollment_token_only_the_admin_enrolls() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        std::sync::Arc::new(crate::store::SqliteStore::open(&dir.path().join("c.db")).unwrap());
    let tokens = crate::auth::Tokens::new(ADMIN, None).unwrap();
    let state = crate::http::AppState::new(store, tokens, 1024);
    let router = crate::http::app(state);
    let key = hex::encode([3u8; 32]);
    let body = json!({ "host_id": "a", "genesis_public_key": key }).to_string();
    let enroll = |token: &'static str| {
        let router = router.clone();
        let body = body.clone();
        async move {
            use tower::ServiceExt;
            let req = axum::http::Request::post("/v1/enroll")
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::from(body))
                .unwrap();
            router.oneshot(req).await.unwrap().status()
        }
    };
    assert_eq!(enroll(ENROLL_TOKEN).await, StatusCode::UNAUTHORIZED);
    assert_eq!(enroll(ADMIN).await, StatusCode::CREATED);
}

#[tokio::test]
async fn the_admin_re_enrolls_a_host_with_a_new_key() {
    let app = TestApp::new();
    let mut old = victim(&app).await;
    let old_token = app.token("victim");
    let mut new = TestJournal::new("victim");
    let (status, body) = app
        .register_as(Some(ADMIN), "victim", &hex::encode(new.genesis_key()), true)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_ne!(body["token"], old_token.as_str());
    old.execs(1);
    let (status, _) = app.post_with("victim", &old_token, &old.batch(7, 7)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old token is gone");
    new.execs(2);
    let cp = new.checkpoint();
    let (status, body) = app.post("victim", &new.batch(1, cp)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, hosts) = app.get("/v1/hosts").await;
    let hosts = hosts["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2);
    let kept = hosts.iter().find(|h| h["status"] == "replaced").unwrap();
    assert!(
        kept["host"]
            .as_str()
            .unwrap()
            .starts_with("victim@replaced-")
    );
    assert_eq!(kept["records"], 6, "the old chain stays stored");
    assert_eq!(app.host("victim").await["records"], cp);
}
