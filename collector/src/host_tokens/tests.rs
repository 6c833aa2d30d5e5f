//! Upgrading a database made by the schema of collectors with a shared agent token (version 3): opening
//! it migrates it, `issue-host-tokens` gives every stored host a token of its own, and the host ships on
//! with it from where it stood.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use auditloop_journal::record::{Payload, decode_payload};
use axum::http::StatusCode;
use serde_json::json;

use super::{IssueError, issue_host_tokens};
use crate::http::testutil::TestApp;
use crate::ingest::{HostState, check};
use crate::store::{AlertQuery, SqliteStore, Store};
use crate::testutil::TestJournal;

/// The schema of version 3, as those collectors created it.
const SCHEMA_V3: &str = "
CREATE TABLE hosts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    next_seq INTEGER NOT NULL,
    last_hash BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    epoch_key BLOB,
    genesis_key BLOB,
    next_segment INTEGER,
    segment_generation INTEGER NOT NULL,
    last_checkpoint_seq INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    anchor_key BLOB,
    generation INTEGER,
    clean_stop INTEGER NOT NULL,
    spool_overflowing INTEGER NOT NULL,
    status TEXT NOT NULL,
    records INTEGER NOT NULL DEFAULT 0,
    events INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    batches INTEGER NOT NULL DEFAULT 0,
    created_ns INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL,
    last_checkpoint_ns INTEGER,
    silence_alerted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE records (
    id INTEGER PRIMARY KEY,
    host_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    kind TEXT NOT NULL,
    time_ns INTEGER,
    pid INTEGER,
    path TEXT,
    summary TEXT,
    payload BLOB NOT NULL,
    stored_ns INTEGER NOT NULL
);
CREATE UNIQUE INDEX records_host_seq ON records (host_id, seq);
CREATE INDEX records_time ON records (time_ns);
CREATE INDEX records_kind ON records (kind);
CREATE TABLE checkpoints (
    host_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    head_seq INTEGER NOT NULL,
    stored_ns INTEGER NOT NULL,
    PRIMARY KEY (host_id, seq)
) WITHOUT ROWID;
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    host TEXT NOT NULL,
    kind TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    seq INTEGER,
    detail TEXT NOT NULL
);
CREATE INDEX alerts_host ON alerts (host);
CREATE INDEX alerts_kind ON alerts (kind);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta (key, value) VALUES ('db_id', lower(hex(randomblob(16))));
PRAGMA user_version = 3;
";

/// Writes a version 3 file at `path` holding host `web` with records `1..=last` of `j` as a version 3
/// collector stored them (every record, its chain position after `last`), and three gap alerts.
fn version_3_file(path: &Path, j: &mut TestJournal, last: u64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(SCHEMA_V3).unwrap();
    let batch = j.batch(1, last);
    let v = check(&HostState::enrolled(j.genesis_key()), &batch, |_| None).unwrap();
    let r = v.state.to_record();
    conn.execute(
        "INSERT INTO hosts (id, name, next_seq, last_hash, epoch, epoch_key, genesis_key, next_segment, \
         segment_generation, last_checkpoint_seq, first_seq, anchor_key, generation, clean_stop, \
         spool_overflowing, status, records, events, duplicates, batches, created_ns, last_seen_ns, \
         last_checkpoint_ns, silence_alerted) VALUES (5, 'web', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, \
         ?10, ?11, ?12, 'verified', ?13, ?14, 0, 1, 100, 200, 200, 0)",
        rusqlite::params![
            r.next_seq as i64,
            &r.last_hash[..],
            r.epoch as i64,
            r.epoch_key.map(|k| k.to_vec()),
            r.genesis_key.map(|k| k.to_vec()),
            r.next_segment.map(|n| n as i64),
            r.segment_generation as i64,
            r.last_checkpoint_seq as i64,
            r.first_seq as i64,
            r.generation.map(|g| g as i64),
            r.clean_stop,
            r.spool_overflowing,
            v.records.len() as i64,
            v.events as i64,
        ],
    )
    .unwrap();
    for rec in batch.records() {
        let rec = rec.unwrap();
        let kind = match decode_payload(rec.payload).unwrap() {
            Payload::SegmentStart(_) => "segment_start",
            Payload::Checkpoint(_) => "checkpoint",
            Payload::Event(e) => e.kind().as_str(),
        };
        conn.execute(
            "INSERT INTO records (host_id, seq, hash, kind, payload, stored_ns) VALUES (5, ?1, ?2, ?3, ?4, 200)",
            rusqlite::params![rec.seq as i64, &rec.hash[..], kind, rec.payload],
        )
        .unwrap();
    }
    for (time, seq) in [(10, 4), (20, 5), (30, 6)] {
        conn.execute(
            "INSERT INTO alerts (host, kind, time_ns, seq, detail) VALUES ('web', 'gap', ?1, ?2, '{}')",
            rusqlite::params![time, seq],
        )
        .unwrap();
    }
}

/// The token in `file`, checking its mode.
fn token_in(file: &Path) -> String {
    let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", file.display());
    std::fs::read_to_string(file).unwrap().trim().to_owned()
}

#[tokio::test]
async fn a_version_3_database_gets_host_tokens_and_its_hosts_ship_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("collector.db");
    let mut j = TestJournal::new("web");
    j.execs(3);
    let cp = j.checkpoint();
    j.execs(2);
    version_3_file(&db, &mut j, cp + 2);

    let out = dir.path().join("tokens");
    let token = {
        let store = SqliteStore::open(&db).unwrap();
        let web = store.host("web").unwrap().unwrap();
        assert_eq!(
            web.record.enrolled_key,
            Some(j.genesis_key()),
            "the stored genesis key is its identity"
        );
        assert_eq!(
            (web.records, web.record.pending()),
            (cp + 2, 2),
            "every record kept; the tail pending"
        );
        let gaps = store
            .alerts(&AlertQuery {
                limit: 10,
                ..AlertQuery::default()
            })
            .unwrap();
        assert_eq!(
            (
                gaps.len(),
                gaps[0].count,
                gaps[0].time_ns,
                gaps[0].last_time_ns
            ),
            (1, 3, 10, 30)
        );

        let issued = issue_host_tokens(&store, &out, None).unwrap();
        assert_eq!(issued.len(), 1);
        assert_eq!(
            (issued[0].host.as_str(), issued[0].file.clone()),
            ("web", out.join("web.token"))
        );
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let token = token_in(&out.join("web.token"));
        assert_eq!(
            store.host_token("web").unwrap(),
            Some(crate::auth::digest(&token))
        );
        // Run again: every host has a token, nothing is written or changed.
        assert!(issue_host_tokens(&store, &out, None).unwrap().is_empty());
        assert_eq!(token_in(&out.join("web.token")), token);
        token
    };

    // The collector on the migrated file: the host ships on with its new token, from where it stood.
    let app = TestApp::over(&db);
    let (_, verified) = app.get("/v1/events?host=web").await;
    let seqs: Vec<_> = verified["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].clone())
        .collect();
    assert_eq!(
        seqs,
        [json!(2), json!(3), json!(4)],
        "records covered by the stored checkpoint are verified"
    );
    let cp2 = j.checkpoint();
    let (status, body) = app.post_with("web", &token, &j.batch(cp + 1, cp2)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["duplicates"].clone(),
            body["stored"].clone(),
            body["pending"].clone()
        ),
        (json!(2), json!(1), json!(0))
    );
    let host = app.host("web").await;
    assert_eq!(
        (host["status"].clone(), host["records"].clone()),
        (json!("verified"), json!(cp2))
    );
    let (status, _) = app
        .post_with("web", "agent-secret-token", &j.batch(1, 2))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no shared token any more");
}

#[test]
fn tokens_are_written_only_where_nothing_is() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("collector.db");
    let mut j = TestJournal::new("web");
    j.execs(1);
    version_3_file(&db, &mut j, 2);
    let store = SqliteStore::open(&db).unwrap();
    let out = dir.path().join("tokens");
    std::fs::create_dir(&out).unwrap();
    // A file (or a symlink, even dangling) where a token would go stops the command before anything.
    let victim = dir.path().join("victim");
    std::os::unix::fs::symlink(&victim, out.join("web.token")).unwrap();
    let err = issue_host_tokens(&store, &out, None).unwrap_err();
    assert!(
        matches!(err, IssueError::Exists(ref p) if p == &out.join("web.token")),
        "{err}"
    );
    assert!(err.to_string().contains("web.token"), "{err}");
    assert!(!victim.exists(), "nothing written through the symlink");
    assert_eq!(store.host_token("web").unwrap(), None, "no token stored");
    std::fs::remove_file(out.join("web.token")).unwrap();
    // An output directory that is a symlink is refused; an unknown --host is named.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&out, &link).unwrap();
    assert!(matches!(
        issue_host_tokens(&store, &link, None),
        Err(IssueError::BadDir { .. })
    ));
    let err = issue_host_tokens(&store, &out, Some("nope")).unwrap_err();
    assert_eq!(err.to_string(), "host \"nope\" is not in the database");
    // --host replaces a host's token: the old one stops working.
    let first = issue_host_tokens(&store, &out, None).unwrap();
    let old = token_in(&first[0].file);
    std::fs::remove_file(&first[0].file).unwrap();
    let again = issue_host_tokens(&store, &out, Some("web")).unwrap();
    let new = token_in(&again[0].file);
    assert_ne!(old, new);
    assert_eq!(store.token_owner(&crate::auth::digest(&old)).unwrap(), None);
    assert_eq!(
        store.token_owner(&crate::auth::digest(&new)).unwrap(),
        Some("web".into())
    );
}
