//! The three-step splice against a real agent's chain at a real collector: probe for the expected seq,
//! probe for the stored hash, then append a record chained to it. Tried with the enrollment token, with
//! another enrolled host's token and with the victim's own stolen token, it stores nothing the collector
//! serves as the victim's, discloses no stored hash, and the victim keeps shipping, verified.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use auditloop_journal::record::{SEGMENT_HEADER_LEN, read_frame};
use auditloop_protocol::batch::CONTENT_TYPE_JSON;
use harness::collector::{Collector, one_record_batch};
use harness::{Agent, marker, remove_tree, temp_dir};
use serde_json::Value;

/// Every record hash of `state`'s journal, in hex.
fn journal_hashes(state: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (_, path) in
        auditloop_journal::files::list_segments(&state.join("journal")).expect("segments")
    {
        let bytes = std::fs::read(&path).expect("segment");
        let mut off = SEGMENT_HEADER_LEN;
        while let Some(Ok(rec)) = bytes.get(off..).map(read_frame) {
            out.push(hex::encode(rec.hash));
            off += rec.len;
        }
    }
    out
}

/// The journal's `HEAD`: sequence number and hash.
fn head(state: &Path) -> (u64, [u8; 32]) {
    let text = std::fs::read_to_string(state.join("journal/HEAD")).expect("HEAD");
    let head: Value = serde_json::from_str(&text).expect("HEAD json");
    let mut hash = [0u8; 32];
    hex::decode_to_slice(head["hash"].as_str().expect("hash"), &mut hash).expect("hex");
    (head["seq"].as_u64().expect("seq"), hash)
}

/// A one-record batch at `seq` chained to `prev`, whose event claims the victim ran `argv0`.
fn forged(seq: u64, prev: [u8; 32], argv0: &str) -> Vec<u8> {
    one_record_batch(seq, prev, "forged", argv0)
}

#[test]
fn the_splice_stores_nothing_discloses_nothing_and_the_victim_ships_on() {
    harness::require_root();
    let dir = temp_dir("forgery");
    let collector = Collector::start(&dir.join("collector"), 0);
    let state = dir.join("victim");
    let victim_token = collector.enroll("victim", &state);
    let other_token = collector.enroll("other", &dir.join("other"));
    let read = |p: &Path| std::fs::read_to_string(p).expect("token").trim().to_owned();
    let enroll_token = read(&collector.enroll_token_file());
    let tokens = [
        ("enrollment", enroll_token),
        ("another host's", read(&other_token)),
        ("the victim's own stolen", read(&victim_token)),
    ];
    let config = format!(
        "ship:\n  collector: {}\n  token_file: {}\n  host_id: victim\n  batch_max_ms: 20\n",
        collector.url(),
        victim_token.display()
    );
    let mut agent =
        Agent::start_with_config(&config, &["--state-dir", state.to_str().expect("utf-8")]);
    collector.wait_host("victim", Duration::from_secs(30), |h| {
        h["last_verified_seq"].as_u64().unwrap_or(0) > 1
    });
    let forged_name = marker("forged-exec");
    for (who, token) in &tokens {
        let before = collector.host("victim").expect("victim");
        let (n, last_hash) = head(&state);
        let post = |seq, prev| {
            collector.post_batch(
                "victim",
                token,
                CONTENT_TYPE_JSON,
                forged(seq, prev, &forged_name),
            )
        };
        let answers = [
            post(1 << 62, [0; 32]),
            post(n.saturating_sub(1), [0; 32]),
            post(n + 1, last_hash),
        ];
        let hashes = journal_hashes(&state);
        for (i, (status, body)) in answers.iter().enumerate() {
            // With the host's own token, a record chained to the head is held as pending (never served as
            // verified) until the host's next signed batch replaces it.
            let pending = *who == "the victim's own stolen"
                && i == 2
                && *status == 200
                && body["verified_through"].as_u64() < Some(n + 1);
            assert!(
                pending || !(200..300).contains(status),
                "{who} token: a forged batch was accepted: {status} {body}"
            );
            let text = body.to_string();
            for h in &hashes {
                assert!(
                    !text.contains(h.as_str()),
                    "{who} token: answer discloses a stored hash: {text}"
                );
            }
            if *who != "the victim's own stolen" {
                assert!(
                    body.get("expected_seq").is_none(),
                    "{who} token: a 409 told another identity the victim's seq: {body}"
                );
            }
        }
        let after = collector.host("victim").expect("victim");
        assert_eq!(after["status"], "verified", "{who} token: {after}");
        assert!(
            after["last_seq"].as_u64() >= before["last_seq"].as_u64(),
            "{who} token: {before} → {after}"
        );
    }
    // The victim ships on: a new event arrives, verified, and nothing forged is served as the victim's.
    let name = marker("victim-after");
    let _ = Command::new("/bin/true").arg(&name).status();
    agent.wait_for("exec", |_, e| e["argv"][1] == name.as_str());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let events = collector.get("/v1/events?host=victim&kind=exec&limit=1000");
        let list = events["events"].as_array().expect("events").clone();
        assert!(
            !list
                .iter()
                .any(|e| e["event"]["event"]["exec"]["filename"] == forged_name.as_str()),
            "a forged event is served as the victim's"
        );
        if list
            .iter()
            .any(|e| e["event"]["event"]["exec"]["argv"][1] == name.as_str())
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the victim's new event never arrived"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let host = collector.wait_host("victim", Duration::from_secs(30), |h| {
        h["pending"].as_u64() == Some(0) || h["last_verified_seq"] == h["last_seq"]
    });
    assert_eq!(host["status"], "verified", "{host}");
    let all = collector.get(&format!(
        "/v1/events?host=victim&q={forged_name}&pending=true"
    ));
    assert_eq!(
        all["events"].as_array().map(Vec::len),
        Some(0),
        "the forged record is gone once the victim's own records replaced it: {all}"
    );
    let alerts = collector.get("/v1/alerts?host=victim&kind=forgery");
    let alerts = alerts["alerts"].as_array().expect("alerts").clone();
    assert_eq!(alerts.len(), 1, "one collapsed forgery row: {alerts:?}");
    assert!(alerts[0]["count"].as_u64() >= Some(2), "{alerts:?}");
    assert!(
        alerts[0]["detail"].to_string().contains("127.0.0.1"),
        "the peer is named: {alerts:?}"
    );
    let (status, _) = agent.stop_with(libc::SIGTERM);
    assert!(status.success());
    drop(collector);
    remove_tree(&dir);
}
