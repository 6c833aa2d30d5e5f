//! The ingest contract over HTTP: statuses, JSON answers, what is stored and which alerts are raised.

use auditloop_model::LossStage;
use auditloop_protocol::batch::{CONTENT_TYPE_BINARY, CONTENT_TYPE_JSON};
use axum::http::StatusCode;
use serde_json::json;

use crate::http::testutil::{ADMIN, ENROLL_TOKEN, MAX_BODY, TestApp};
use crate::testutil::{TestJournal, batch_of, tampered, with_bad_signature};

#[tokio::test]
async fn a_batch_is_stored_once_and_replays_are_idempotent() {
    let app = TestApp::new();
    let mut j = TestJournal::new("web");
    app.enroll("web", &mut j).await;
    j.execs(20);
    j.checkpoint();
    let last = j.last_seq();
    let batch = j.batch(1, last);
    let (status, body) = app.post("web", &batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({ "stored": last, "duplicates": 0, "next_seq": last + 1,
                "verified_through": last, "pending": 0 })
    );
    let (status, body) = app.post("web", &batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({ "stored": 0, "duplicates": last, "next_seq": last + 1,
                "verified_through": last, "pending": 0 })
    );
    let host = app.host("web").await;
    assert_eq!(host["records"], last);
    assert_eq!(host["events"], 20);
    assert_eq!(host["duplicates"], last);
    assert_eq!(host["status"], "verified");
    assert_eq!(host["last_checkpoint_seq"], last);
    assert_eq!(host["last_verified_seq"], last);
    assert_eq!(host["pending"], 0);
    assert!(host["last_checkpoint_ns"].as_u64().is_some());
    let key = hex::encode(j.journal().genesis_public_key());
    assert_eq!(host["genesis_key"], key);
    assert_eq!(host["enrolled_key"], key);
    assert_eq!(host["generation"], 1);
    assert!(
        app.get("/v1/alerts").await.1["alerts"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn overlapping_batches_store_the_new_part_and_json_batches_work() {
    let app = TestApp::new();
    let mut j = TestJournal::new("h1");
    let token = app.enroll("h1", &mut j).await;
    j.execs(30);
    assert_eq!(app.post("h1", &j.batch(1, 10)).await.0, StatusCode::OK);
    let body = j.batch(6, 31).encode_json().unwrap();
    let (status, body) = app
        .post_raw("h1", Some(&token), CONTENT_TYPE_JSON, body)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({ "stored": 21, "duplicates": 5, "next_seq": 32, "verified_through": 0, "pending": 31 })
    );
    assert_eq!(app.records("h1").await, 31);
}

#[tokio::test]
async fn a_tampered_batch_is_refused_whole_and_the_host_stays_verified() {
    let app = TestApp::new();
    let mut j = TestJournal::new("h1");
    app.enroll("h1", &mut j).await;
    j.execs(4);
    j.checkpoint();
    j.execs(5);
    assert_eq!(app.post("h1", &j.batch(1, 6)).await.0, StatusCode::OK);
    let seen = app.host("h1").await["last_seen_ns"].clone();
    let mut frames = j.frames();
    frames[8] = tampered(&frames[8]);
    let (status, body) = app.post("h1", &batch_of(&frames, 7, 11)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body,
        json!({ "error": "refused", "damage": "hash_mismatch" })
    );
    assert_eq!(
        app.records("h1").await,
        6,
        "records 7..8 before the damage are not stored either"
    );
    let host = app.host("h1").await;
    assert_eq!(host["status"], "verified", "a refusal changes no status");
    assert_eq!(host["last_seen_ns"], seen, "a refusal is no contact");
    let alerts = app.alerts("forgery").await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["host"], "h1");
    assert_eq!(alerts[0]["seq"], 9);
    assert_eq!(alerts[0]["detail"]["refused"], "hash_mismatch");
    assert_eq!(alerts[0]["detail"]["token"], "h1");
    assert!(app.alerts("tamper").await.is_empty());
    // The intact batch is still accepted afterwards.
    let (status, body) = app.post("h1", &j.batch(7, 11)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.host("h1").await["status"], "verified");
}

#[tokio::test]
async fn a_gap_is_409_with_the_expected_seq() {
    let app = TestApp::new();
    let mut j = TestJournal::new("h1");
    app.enroll("h1", &mut j).await;
    j.execs(10);
    let (status, body) = app.post("h1", &j.batch(4, 8)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["expected_seq"], 1);
    assert_eq!(app.post("h1", &j.batch(1, 3)).await.0, StatusCode::OK);
    let (status, body) = app.post("h1", &j.batch(6, 8)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["expected_seq"], 4);
    assert!(body["error"].is_string());
    let gaps = app.alerts("gap").await;
    assert_eq!(gaps.len(), 1, "gaps of one host collapse: {gaps:?}");
    assert_eq!(gaps[0]["count"], 2);
    assert_eq!(gaps[0]["seq"], 4);
    assert_eq!(app.records("h1").await, 3);
}

#[tokio::test]
async fn a_fork_is_422_with_a_forgery_alert() {
    let app = TestApp::new();
    let mut a = TestJournal::new("h1");
    app.enroll("h1", &mut a).await;
    a.execs(5);
    let mut b = TestJournal::new("h1");
    b.execs(8);
    assert_eq!(app.post("h1", &a.batch(1, 6)).await.0, StatusCode::OK);
    let (status, body) = app.post("h1", &b.batch(1, 9)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body, json!({ "error": "refused", "damage": "chain_fork" }));
    let alerts = app.alerts("forgery").await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["detail"]["refused"], "chain_fork");
    assert_eq!(app.host("h1").await["status"], "verified");
    assert_eq!(app.records("h1").await, 6);
}

#[tokio::test]
async fn a_bad_checkpoint_signature_is_422() {
    let app = TestApp::new();
    let mut j = TestJournal::new("h1");
    app.enroll("h1", &mut j).await;
    j.execs(3);
    let cp = j.checkpoint();
    let mut frames = j.frames();
    let i = frames.iter().position(|f| f.seq == cp).unwrap();
    frames[i] = with_bad_signature(&frames[i]);
    let (status, body) = app.post("h1", &batch_of(&frames, 1, cp)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["damage"], "bad_signature");
    assert_eq!(app.records("h1").await, 0);
    assert_eq!(app.host("h1").await["status"], "enrolled");
    assert_eq!(app.alerts("forgery").await.len(), 1);
}

#[tokio::test]
async fn tokens_are_checked_per_host_and_role() {
    let app = TestApp::new();
    let mut j = TestJournal::new("web");
    let web = app.enroll("web", &mut j).await;
    let mut d = TestJournal::new("db");
    let db = app.enroll("db", &mut d).await;
    j.execs(2);
    let body = j.batch(1, 3).encode_binary(3).unwrap();
    let post = |host: &'static str, token: Option<&'static str>| {
        app.post_raw(host, token, CONTENT_TYPE_BINARY, body.clone())
    };
    let web: &'static str = Box::leak(web.into_boxed_str());
    let db: &'static str = Box::leak(db.into_boxed_str());
    let (status, body_401) = post("web", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body_401["error"].is_string());
    assert_eq!(post("web", Some("wrong")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(post("web", Some(ADMIN)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        post("web", Some(ENROLL_TOKEN)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(post("web", Some(db)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(post("db", Some(web)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        post("nobody", Some(web)).await.0,
        StatusCode::FORBIDDEN,
        "an id that is not enrolled is never created"
    );
    assert_eq!(
        post("nobody", Some("wrong")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(post("web", Some(web)).await.0, StatusCode::OK);
    assert_eq!(
        post("bad%2Fname", Some(web)).await.0,
        StatusCode::BAD_REQUEST
    );
    let (status, _) = app.get("/v1/hosts/nobody").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get_as("/v1/hosts", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get_as("/v1/hosts", Some("x")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get_as("/v1/events", Some(ENROLL_TOKEN)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get_as("/v1/alerts", Some(web)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.get_as("/v1/hosts", Some(ADMIN)).await.0, StatusCode::OK);
    assert_eq!(
        app.get_as("/healthz", None).await,
        (StatusCode::OK, json!("ok"))
    );
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = TestApp::new();
    let mut j = TestJournal::new("h1");
    let token = app.enroll("h1", &mut j).await;
    let (status, body) = app
        .post_raw(
            "h1",
            Some(&token),
            CONTENT_TYPE_BINARY,
            vec![0; MAX_BODY + 1],
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("exceeds"),
        "{body}"
    );
}

#[tokio::test]
async fn malformed_bodies_are_400_with_the_reason() {
    let app = TestApp::new();
    let mut j = TestJournal::new("h1");
    let token = app.enroll("h1", &mut j).await;
    let cases: [(&str, &[u8], &str); 4] = [
        ("text/plain", b"x", "unsupported content type"),
        (CONTENT_TYPE_BINARY, b"not zstd", "zstd"),
        (CONTENT_TYPE_JSON, b"{", "malformed batch"),
        (
            CONTENT_TYPE_JSON,
            br#"{"first_seq":0,"last_seq":0,"anchor":null,"frames":"00"}"#,
            "invalid batch",
        ),
    ];
    for (content_type, body, reason) in cases {
        let (status, answer) = app
            .post_raw("h1", Some(&token), content_type, body.to_vec())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{content_type}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(reason), "{error}");
    }
    j.execs(3);
    let mut batch = j.batch(1, 4);
    batch.last_seq = 9;
    let (status, answer) = app.post("h1", &batch).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("header says"),
        "{answer}"
    );
    assert!(
        app.alerts("forgery").await.is_empty(),
        "malformed is no forgery"
    );
}

#[tokio::test]
async fn an_anchored_first_batch_is_verified_along_its_ladder() {
    let app = TestApp::new();
    let mut j = TestJournal::new("h1");
    app.enroll("h1", &mut j).await;
    j.execs(3);
    j.checkpoint();
    j.stop_and_restart();
    j.execs(4);
    // The new generation's segment start (payload tag 0): where a journal retained from there begins.
    let start = j
        .frames()
        .iter()
        .rev()
        .find(|f| f.bytes[44] == 0)
        .unwrap()
        .seq;
    assert!(start > 1);
    j.checkpoint();
    let last = j.last_seq();
    let (status, body) = app.post("h1", &j.anchored_batch(start, last)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let host = app.host("h1").await;
    assert_eq!(host["status"], "verified");
    assert_eq!(host["first_seq"], start);
    assert_eq!(host["records"], last - start + 1);
    assert!(host["anchor_key"].is_string());
    assert_eq!(host["genesis_key"], serde_json::Value::Null);
    assert_eq!(host["last_checkpoint_seq"], last);
    // Without the anchor, a host that stored nothing must start at seq 1.
    let mut k = TestJournal::new("h2");
    app.enroll("h2", &mut k).await;
    let (status, body) = app.post("h2", &j.batch(start, last)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["expected_seq"], 1);
    // With h1's anchor and ladder but h2's enrolled key: refused, nothing stored.
    let (status, body) = app.post("h2", &j.anchored_batch(start, last)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["damage"], "wrong_key");
    assert_eq!(app.records("h2").await, 0);
}

#[tokio::test]
async fn restarts_and_spool_overflows_raise_alerts() {
    let app = TestApp::new();
    let mut j = TestJournal::new("h1");
    app.enroll("h1", &mut j).await;
    j.execs(2);
    j.stop_and_restart();
    j.execs(1);
    assert_eq!(
        app.post("h1", &j.batch(1, j.last_seq())).await.0,
        StatusCode::OK
    );
    assert!(app.alerts("unexpected_restart").await.is_empty());
    let from = j.last_seq() + 1;
    j.crash_and_restart();
    j.loss(LossStage::SpoolOverflow);
    assert_eq!(
        app.post("h1", &j.batch(from, j.last_seq())).await.0,
        StatusCode::OK
    );
    let restarts = app.alerts("unexpected_restart").await;
    assert_eq!(restarts.len(), 1);
    assert_eq!(restarts[0]["detail"]["generation"], 3);
    let overflows = app.alerts("spool_overflow").await;
    assert_eq!(overflows.len(), 1);
    assert_eq!(overflows[0]["seq"], j.last_seq());
    assert_eq!(overflows[0]["detail"]["count"], 10);
}

#[tokio::test]
async fn silent_hosts_are_reported_once_until_they_send_a_new_checkpoint() {
    use std::time::Duration;

    use crate::silence::check_silence;

    let app = TestApp::new();
    let mut j = TestJournal::new("h1");
    app.enroll("h1", &mut j).await;
    j.execs(2);
    j.checkpoint();
    assert_eq!(app.post("h1", &j.batch(1, 4)).await.0, StatusCode::OK);
    let store = app.store.clone();
    let silence = Duration::from_secs(300);
    let now = auditloop_model::WallTime::now().0;
    assert!(
        check_silence(store.as_ref(), now, silence)
            .unwrap()
            .is_empty()
    );
    let later = now + 301_000_000_000;
    assert_eq!(
        check_silence(store.as_ref(), later, silence).unwrap(),
        ["h1"]
    );
    assert!(
        check_silence(store.as_ref(), later + 1, silence)
            .unwrap()
            .is_empty()
    );
    assert_eq!(app.alerts("silence").await.len(), 1);
    assert_eq!(app.host("h1").await["silent"], true);
    // Events without a checkpoint are pending: no contact yet.
    j.execs(1);
    assert_eq!(app.post("h1", &j.batch(5, 5)).await.0, StatusCode::OK);
    assert_eq!(app.host("h1").await["silent"], true);
    let cp = j.checkpoint();
    assert_eq!(app.post("h1", &j.batch(5, cp)).await.0, StatusCode::OK);
    assert_eq!(app.host("h1").await["silent"], false);
    assert_eq!(
        check_silence(store.as_ref(), later + 2, silence).unwrap(),
        ["h1"]
    );
    let silences = app.alerts("silence").await;
    assert_eq!(
        (silences.len(), silences[0]["count"].clone()),
        (1, json!(2))
    );
}

#[tokio::test]
async fn concurrent_batches_of_one_host_are_serialized() {
    let app = TestApp::new();
    let mut j = TestJournal::new("h1");
    app.enroll("h1", &mut j).await;
    j.execs(50);
    let batch = j.batch(1, 51);
    let (a, b, c) = tokio::join!(
        app.post("h1", &batch),
        app.post("h1", &batch),
        app.post("h1", &batch)
    );
    for (status, body) in [&a, &b, &c] {
        assert_eq!(*status, StatusCode::OK, "{body}");
    }
    let stored: u64 = [a, b, c]
        .iter()
        .map(|r| r.1["stored"].as_u64().unwrap())
        .sum();
    assert_eq!(stored, 51);
    assert_eq!(app.records("h1").await, 51);
    assert!(app.state.ingest().locks().is_empty());
}
