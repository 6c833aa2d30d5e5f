//! The ingest contract over HTTP: statuses, JSON answers, what is stored and which alerts are raised.

use auditloop_model::LossStage;
use auditloop_protocol::batch::{CONTENT_TYPE_BINARY, CONTENT_TYPE_JSON};
use axum::http::StatusCode;
use serde_json::json;

use crate::http::testutil::{ADMIN, AGENT, MAX_BODY, TestApp, WEB};
use crate::testutil::{TestJournal, batch_of, tampered, with_bad_signature};

#[tokio::test]
async fn a_batch_is_stored_once_and_replays_are_idempotent() {
    let app = TestApp::new();
    let mut j = TestJournal::new("web");
    j.execs(20);
    j.checkpoint();
    let last = j.last_seq();
    let batch = j.batch(1, last);
    let (status, body) = app.post("web", &batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({ "stored": last, "duplicates": 0, "next_seq": last + 1 })
    );
    let (status, body) = app.post("web", &batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({ "stored": 0, "duplicates": last, "next_seq": last + 1 })
    );
    let host = app.host("web").await;
    assert_eq!(host["records"], last);
    assert_eq!(host["events"], 20);
    assert_eq!(host["duplicates"], last);
    assert_eq!(host["status"], "verified");
    assert_eq!(host["last_checkpoint_seq"], last);
    assert!(host["last_checkpoint_ns"].as_u64().is_some());
    assert_eq!(
        host["genesis_key"],
        hex::encode(j.journal().genesis_public_key())
    );
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
    j.execs(30);
    assert_eq!(app.post("h1", &j.batch(1, 10)).await.0, StatusCode::OK);
    let body = j.batch(6, 31).encode_json().unwrap();
    let (status, body) = app
        .post_raw("h1", Some(AGENT), CONTENT_TYPE_JSON, body)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({ "stored": 21, "duplicates": 5, "next_seq": 32 })
    );
    assert_eq!(app.records("h1").await, 31);
}

#[tokio::test]
async fn a_tampered_batch_is_refused_whole() {
    let app = TestApp::new();
    let mut j = TestJournal::new("h1");
    j.execs(10);
    assert_eq!(app.post("h1", &j.batch(1, 5)).await.0, StatusCode::OK);
    let mut frames = j.frames();
    frames[8] = tampered(&frames[8]);
    let (status, body) = app.post("h1", &batch_of(&frames, 6, 11)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["damage"], "hash_mismatch");
    assert_eq!(body["seq"], 9);
    assert!(body["error"].as_str().unwrap().contains("seq 9"), "{body}");
    assert_eq!(
        app.records("h1").await,
        5,
        "records 6..8 before the damage are not stored either"
    );
    assert_eq!(app.host("h1").await["status"], "tampered");
    let alerts = app.alerts("tamper").await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        (alerts[0]["host"].clone(), alerts[0]["seq"].clone()),
        (json!("h1"), json!(9))
    );
    // The intact batch is still accepted afterwards.
    let (status, body) = app.post("h1", &j.batch(6, 11)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.host("h1").await["status"], "verified");
}

#[tokio::test]
async fn a_gap_is_409_with_the_expected_seq() {
    let app = TestApp::new();
    let mut j = TestJournal::new("h1");
    j.execs(10);
    let (status, body) = app.post("h1", &j.batch(4, 8)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["expected_seq"], 1);
    assert_eq!(app.post("h1", &j.batch(1, 3)).await.0, StatusCode::OK);
    let (status, body) = app.post("h1", &j.batch(6, 8)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["expected_seq"], 4);
    assert!(body["error"].is_string());
    assert_eq!(app.alerts("gap").await.len(), 2);
    assert_eq!(app.records("h1").await, 3);
}

#[tokio::test]
async fn a_fork_is_422_with_a_chain_fork_alert() {
    let app = TestApp::new();
    let mut a = TestJournal::new("h1");
    a.execs(5);
    let mut b = TestJournal::new("h1");
    b.execs(8);
    assert_eq!(app.post("h1", &a.batch(1, 6)).await.0, StatusCode::OK);
    let (status, body) = app.post("h1", &b.batch(1, 9)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["damage"], "chain_fork");
    assert_eq!(body["seq"], 1);
    assert_eq!(app.alerts("chain_fork").await.len(), 1);
    assert_eq!(app.host("h1").await["status"], "forked");
    assert_eq!(app.records("h1").await, 6);
}

#[tokio::test]
async fn a_bad_checkpoint_signature_is_422() {
    let app = TestApp::new();
    let mut j = TestJournal::new("h1");
    j.execs(3);
    let cp = j.checkpoint();
    let mut frames = j.frames();
    let i = frames.iter().position(|f| f.seq == cp).unwrap();
    frames[i] = with_bad_signature(&frames[i]);
    let (status, body) = app.post("h1", &batch_of(&frames, 1, cp)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["damage"], "bad_signature");
    assert_eq!(body["seq"], cp);
    assert_eq!(app.records("h1").await, 0);
    assert_eq!(app.alerts("tamper").await.len(), 1);
}

#[tokio::test]
async fn tokens_are_checked_per_host_and_role() {
    let app = TestApp::new();
    let mut j = TestJournal::new("web");
    j.execs(2);
    let body = j.batch(1, 3).encode_binary(3).unwrap();
    let post = |host: &'static str, token: Option<&'static str>| {
        app.post_raw(host, token, CONTENT_TYPE_BINARY, body.clone())
    };
    let (status, body_401) = post("web", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body_401["error"].is_string());
    assert_eq!(post("web", Some("wrong")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(post("web", Some(ADMIN)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(post("db", Some(WEB)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(post("web", Some(WEB)).await.0, StatusCode::OK);
    assert_eq!(post("web", Some(AGENT)).await.0, StatusCode::OK);
    assert_eq!(
        post("bad%2Fname", Some(AGENT)).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.get_as("/v1/hosts", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get_as("/v1/hosts", Some("x")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get_as("/v1/events", Some(AGENT)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get_as("/v1/alerts", Some(WEB)).await.0,
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
    let (status, body) = app
        .post_raw(
            "h1",
            Some(AGENT),
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
            .post_raw("h1", Some(AGENT), content_type, body.to_vec())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{content_type}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(reason), "{error}");
    }
    let mut j = TestJournal::new("h1");
    j.execs(3);
    let mut batch = j.batch(1, 4);
    batch.last_seq = 9;
    let (status, answer) = app.post("h1", &batch).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("header says"),
        "{answer}"
    );
}

#[tokio::test]
async fn an_anchored_first_batch_is_trusted_on_first_use() {
    let app = TestApp::new();
    let mut j = TestJournal::new("h1");
    j.execs(3);
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
    assert_eq!(host["status"], "anchored_tofu");
    assert_eq!(host["first_seq"], start);
    assert_eq!(host["records"], last - start + 1);
    assert!(host["anchor_key"].is_string());
    assert_eq!(host["genesis_key"], serde_json::Value::Null);
    assert_eq!(host["last_checkpoint_seq"], last);
    // Without the anchor, an unknown host must start at seq 1.
    let (status, body) = app.post("h2", &j.batch(start, last)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["expected_seq"], 1);
}

#[tokio::test]
async fn restarts_and_spool_overflows_raise_alerts() {
    let app = TestApp::new();
    let mut j = TestJournal::new("h1");
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
async fn silent_hosts_are_reported_once_until_they_ship_again() {
    use std::time::Duration;

    use crate::silence::check_silence;

    let app = TestApp::new();
    let mut j = TestJournal::new("h1");
    j.execs(2);
    assert_eq!(app.post("h1", &j.batch(1, 3)).await.0, StatusCode::OK);
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
    j.execs(1);
    assert_eq!(app.post("h1", &j.batch(4, 4)).await.0, StatusCode::OK);
    assert_eq!(app.host("h1").await["silent"], false);
    assert_eq!(
        check_silence(store.as_ref(), later + 2, silence).unwrap(),
        ["h1"]
    );
    assert_eq!(app.alerts("silence").await.len(), 2);
}

#[tokio::test]
async fn concurrent_batches_of_one_host_are_serialized() {
    let app = TestApp::new();
    let mut j = TestJournal::new("h1");
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
}
