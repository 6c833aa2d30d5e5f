//! Hostile batches over HTTP: the three-step splice of issue 13 with every kind of token, token thieves,
//! a host that lost records, and what each leaves behind (nothing stored, no stored hash in any answer,
//! the victim's status, last contact and next batch untouched, one collapsed `forgery` alert naming the
//! token and the peer). Claims of enrolled ids are in `http/enroll/tests.rs`.

use auditloop_journal::record::Hash;
use auditloop_protocol::batch::CONTENT_TYPE_BINARY;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::http::testutil::{
    ADMIN, ATTACKER, ENROLL_TOKEN, PEER, TestApp, attack, foreign_payload, forged, stored_hex,
    victim,
};
use crate::store::Store;
use crate::testutil::TestJournal;

/// The three steps of the splice against `victim` with `token`; the answers.
async fn splice(app: &TestApp, token: &str) -> Vec<(StatusCode, Value)> {
    let payload = foreign_payload();
    let mut answers =
        vec![attack(app, "victim", token, &forged(1 << 62, &[0; 32], &payload)).await];
    let n = answers[0].1["expected_seq"].as_u64().unwrap_or(7);
    answers.push(attack(app, "victim", token, &forged(n - 1, &[7; 32], &payload)).await);
    let leaked = answers[1].1["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let guess = hex::decode(
        leaked
            .split_whitespace()
            .find(|w| w.len() == 64)
            .unwrap_or_default(),
    )
    .ok()
    .and_then(|b| <Hash>::try_from(b.as_slice()).ok())
    .unwrap_or([0; 32]);
    answers.push(attack(app, "victim", token, &forged(n, &guess, &payload)).await);
    answers
}

/// Asserts the victim is as `victim` left it, and its next real batch is stored and verified.
async fn victim_unharmed(app: &TestApp, v: &mut TestJournal, before: &Value) {
    let now = app.host("victim").await;
    for field in [
        "status",
        "records",
        "next_seq",
        "last_hash",
        "last_seen_ns",
        "pending",
        "silent",
    ] {
        assert_eq!(now[field], before[field], "{field}: {now}");
    }
    v.execs(2);
    let cp = v.checkpoint();
    let (status, body) = app.post("victim", &v.batch(7, cp)).await;
    assert_eq!(status, StatusCode::OK, "the victim keeps shipping: {body}");
    let host = app.host("victim").await;
    assert_eq!(
        (host["status"].clone(), host["records"].clone()),
        (json!("verified"), json!(cp))
    );
    let (_, events) = app.get("/v1/events?host=victim&pending=true").await;
    let events = events["events"].as_array().unwrap();
    assert!(
        events.iter().all(|e| e["event"]["process"]["pid"] != 666),
        "the forged event is not served: {events:?}"
    );
    assert!(
        events.iter().any(|e| e["seq"] == cp - 1),
        "the victim's new events are"
    );
}

/// The forgery alert of the victim.
async fn forgery(app: &TestApp) -> Value {
    let alerts = app.alerts("forgery").await;
    assert_eq!(alerts.len(), 1, "one collapsed forgery alert: {alerts:?}");
    alerts[0].clone()
}

#[tokio::test]
async fn the_splice_with_the_enrollment_token_stores_nothing_and_discloses_no_hash() {
    let app = TestApp::new();
    let mut v = victim(&app).await;
    let before = app.host("victim").await;
    let stored = stored_hex(&app, "victim");
    let answers = splice(&app, ENROLL_TOKEN).await;
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(
            body.get("expected_seq"),
            None,
            "no chain position to a foreign token"
        );
        for hash in &stored {
            assert!(!body.to_string().contains(hash), "{body}");
        }
    }
    assert_eq!(stored_hex(&app, "victim"), stored, "nothing stored");
    let alert = forgery(&app).await;
    assert_eq!(alert["host"], "victim");
    assert_eq!(alert["count"], 3);
    assert_eq!(alert["detail"]["token"], "enrollment");
    assert_eq!(alert["detail"]["role"], "enrollment");
    assert_eq!(alert["detail"]["peer"], ATTACKER);
    assert_eq!(alert["detail"]["refused"], "foreign_token");
    victim_unharmed(&app, &mut v, &before).await;
}

#[tokio::test]
async fn the_splice_with_another_hosts_token_stores_nothing_and_discloses_no_hash() {
    let app = TestApp::new();
    let mut v = victim(&app).await;
    let mut evil = TestJournal::new("evil");
    let token = app.enroll("evil", &mut evil).await;
    let before = app.host("victim").await;
    let stored = stored_hex(&app, "victim");
    let answers = splice(&app, &token).await;
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::FORBIDDEN, "{body}");
        for hash in &stored {
            assert!(!body.to_string().contains(hash), "{body}");
        }
    }
    assert_eq!(stored_hex(&app, "victim"), stored);
    let alert = forgery(&app).await;
    assert_eq!(
        (alert["host"].clone(), alert["count"].clone()),
        (json!("victim"), json!(3))
    );
    assert_eq!(alert["detail"]["token"], "evil");
    assert_eq!(alert["detail"]["role"], "host");
    assert_eq!(alert["detail"]["peer"], ATTACKER);
    assert_eq!(
        app.host("evil").await["status"],
        "enrolled",
        "the attacker's own host is untouched"
    );
    victim_unharmed(&app, &mut v, &before).await;
}

#[tokio::test]
async fn the_splice_with_the_admin_token_is_refused_too() {
    let app = TestApp::new();
    let mut v = victim(&app).await;
    let before = app.host("victim").await;
    for (status, _) in splice(&app, ADMIN).await {
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let alert = forgery(&app).await;
    assert_eq!(
        (
            alert["detail"]["token"].clone(),
            alert["detail"]["role"].clone()
        ),
        (json!("admin"), json!("admin"))
    );
    victim_unharmed(&app, &mut v, &before).await;
}

#[tokio::test]
async fn the_splice_with_the_hosts_own_stolen_token_stores_nothing_and_discloses_no_hash() {
    let app = TestApp::new();
    let mut v = victim(&app).await;
    let before = app.host("victim").await;
    let stored = stored_hex(&app, "victim");
    let token = app.token("victim");
    let answers = splice(&app, &token).await;
    assert_eq!(answers[0].0, StatusCode::CONFLICT, "{}", answers[0].1);
    assert_eq!(
        answers[0].1["expected_seq"], 7,
        "the host's own next seq, to its own token"
    );
    assert_eq!(
        answers[1],
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "error": "refused", "damage": "chain_fork" })
        )
    );
    assert_eq!(
        answers[2],
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "error": "refused", "damage": "broken_link" })
        )
    );
    for (_, body) in &answers {
        for hash in &stored {
            assert!(!body.to_string().contains(hash), "{body}");
        }
    }
    assert_eq!(stored_hex(&app, "victim"), stored);
    let alert = forgery(&app).await;
    assert_eq!(alert["count"], 2, "the gap is a gap alert, not a forgery");
    assert_eq!(alert["detail"]["token"], "victim");
    assert_eq!(alert["detail"]["peer"], ATTACKER);
    assert_eq!(app.alerts("gap").await.len(), 1);
    victim_unharmed(&app, &mut v, &before).await;
}

#[tokio::test]
async fn a_token_thief_who_knows_the_last_hash_cannot_lock_the_host_out() {
    let app = TestApp::new();
    let mut v = victim(&app).await;
    let token = app.token("victim");
    // The strongest thief: the victim's token and its last hash (read on the host, say).
    let last: Hash = app.store.host_record("victim").unwrap().unwrap().last_hash;
    let (status, body) = attack(
        &app,
        "victim",
        &token,
        &forged(7, &last, &foreign_payload()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an unsigned record that chains is stored, as pending: {body}"
    );
    assert_eq!(
        (body["verified_through"].clone(), body["pending"].clone()),
        (json!(6), json!(1))
    );
    let (_, served) = app.get("/v1/events?host=victim").await;
    assert!(
        served["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["seq"] != 7),
        "never served as verified"
    );
    // The victim's own record 7 differs; with no checkpoint yet it is asked to resend from 7 ...
    v.execs(2);
    let (status, body) = app.post("victim", &v.batch(7, 8)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["expected_seq"], 7);
    // ... and its next checkpoint replaces the unsigned record.
    let cp = v.checkpoint();
    let (status, body) = app.post("victim", &v.batch(7, cp)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["stored"].clone(), body["verified_through"].clone()),
        (json!(3), json!(cp))
    );
    let host = app.host("victim").await;
    assert_eq!(
        (
            host["status"].clone(),
            host["records"].clone(),
            host["pending"].clone()
        ),
        (json!("verified"), json!(cp), json!(0))
    );
    let (_, all) = app.get("/v1/events?host=victim&pending=true").await;
    assert!(
        all["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["event"]["process"]["pid"] != 666)
    );
    let alert = forgery(&app).await;
    assert_eq!(alert["detail"]["refused"], "pending_fork");
    assert_eq!(alert["count"], 2, "asked to resend, then replaced");
}

#[tokio::test]
async fn a_host_that_lost_its_unsynced_records_keeps_shipping() {
    let app = TestApp::new();
    let mut v = TestJournal::new("victim");
    app.enroll("victim", &mut v).await;
    v.execs(2);
    let cp = v.checkpoint();
    let mut after_loss = v.fork();
    v.execs(3);
    assert_eq!(
        app.post("victim", &v.batch(1, cp + 3)).await.0,
        StatusCode::OK
    );
    // Power loss: the host restarts from its checkpoint and writes other records.
    after_loss.execs(2);
    let cp2 = after_loss.checkpoint();
    let (status, body) = app.post("victim", &after_loss.batch(cp + 1, cp2)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let host = app.host("victim").await;
    assert_eq!(
        (host["records"].clone(), host["next_seq"].clone()),
        (json!(cp2), json!(cp2 + 1))
    );
    assert_eq!(app.alerts("unexpected_restart").await.len(), 1);
}

#[tokio::test]
async fn replays_refusals_and_pending_batches_do_not_refresh_last_seen() {
    use std::time::Duration;

    use crate::silence::check_silence;

    let app = TestApp::new();
    let mut v = victim(&app).await;
    let seen = app.host("victim").await["last_seen_ns"].as_u64().unwrap();
    let mut evil = TestJournal::new("evil");
    let evil_token = app.enroll("evil", &mut evil).await;
    std::thread::sleep(Duration::from_millis(5));
    let replay = v.batch(1, 6);
    assert_eq!(app.post("victim", &replay).await.0, StatusCode::OK);
    assert_eq!(
        attack(&app, "victim", &evil_token, &replay).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        attack(
            &app,
            "victim",
            &app.token("victim"),
            &forged(7, &[1; 32], b"x")
        )
        .await
        .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    v.execs(1);
    assert_eq!(app.post("victim", &v.batch(7, 7)).await.0, StatusCode::OK);
    assert_eq!(
        app.host("victim").await["last_seen_ns"],
        seen,
        "no new checkpoint, no contact"
    );
    // A stopped agent goes silent even while its old batches are replayed.
    let silence = Duration::from_secs(300);
    let later = seen + 301_000_000_000;
    assert_eq!(
        check_silence(app.store.as_ref(), later, silence).unwrap(),
        ["victim"]
    );
    assert_eq!(app.post("victim", &replay).await.0, StatusCode::OK);
    assert_eq!(app.host("victim").await["silent"], true);
    // A heartbeat (a new checkpoint and nothing else) is contact.
    let cp = v.checkpoint();
    assert_eq!(app.post("victim", &v.batch(8, cp)).await.0, StatusCode::OK);
    let host = app.host("victim").await;
    assert!(host["last_seen_ns"].as_u64().unwrap() > seen);
    assert_eq!(host["silent"], false);
}

#[tokio::test]
async fn forgery_alerts_collapse_into_one_row_per_host() {
    let app = TestApp::new();
    victim(&app).await;
    let mut other = TestJournal::new("other");
    app.enroll("other", &mut other).await;
    let batch = forged(7, &[0; 32], b"x");
    for _ in 0..4 {
        assert_eq!(
            attack(&app, "victim", ENROLL_TOKEN, &batch).await.0,
            StatusCode::FORBIDDEN
        );
    }
    let body = batch.encode_binary(1).unwrap();
    let (status, _) = app
        .post_from(PEER, "victim", Some(ADMIN), CONTENT_TYPE_BINARY, body)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        attack(&app, "other", ENROLL_TOKEN, &batch).await.0,
        StatusCode::FORBIDDEN
    );
    let alerts = app.alerts("forgery").await;
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    let victim = alerts.iter().find(|a| a["host"] == "victim").unwrap();
    assert_eq!(victim["count"], 5);
    assert!(victim["last_time_ns"].as_u64() >= victim["time_ns"].as_u64());
    assert!(victim["last_time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(victim["detail"]["token"], "admin", "the last one's detail");
    assert_eq!(victim["detail"]["peer"], PEER);
    // A foreign token aimed at an id nobody enrolled: refused, no alert row, no host.
    assert_eq!(
        attack(&app, "ghost", ENROLL_TOKEN, &batch).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.alerts("forgery").await.len(), 2);
    assert_eq!(app.get("/v1/hosts/ghost").await.0, StatusCode::NOT_FOUND);
}
