//! Opening files of older schema versions: version 1 (per-row path and pid indexes), version 2 (each
//! host's chain state as JSON) and version 5 (record ids a deleted record's successor could take again),
//! built here with the SQL those versions used.

use auditloop_protocol::api::HostStatus;

use super::{
    Tail, commit_rows, found, indexed_everywhere, indexed_ids, record_ids, store_files,
    user_version,
};
use crate::store::backend::Store;
use crate::store::error::StoreError;
use crate::store::host::HostRecord;
use crate::store::query::PathFilter;
use crate::store::sqlite::SqliteStore;
use crate::store::sqlite::schema::SCHEMA_VERSION;

/// The tables and indexes of schema versions 1 and 2, as those collectors created them.
const SCHEMA_V2: &str = "
CREATE TABLE IF NOT EXISTS hosts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    next_seq INTEGER NOT NULL,
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
CREATE TABLE IF NOT EXISTS records (
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
CREATE UNIQUE INDEX IF NOT EXISTS records_host_seq ON records (host_id, seq);
CREATE INDEX IF NOT EXISTS records_time ON records (time_ns);
CREATE INDEX IF NOT EXISTS records_kind ON records (kind);
CREATE TABLE IF NOT EXISTS checkpoints (
    host_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    head_seq INTEGER NOT NULL,
    stored_ns INTEGER NOT NULL,
    PRIMARY KEY (host_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    host TEXT NOT NULL,
    kind TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    seq INTEGER,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_host ON alerts (host);
CREATE INDEX IF NOT EXISTS alerts_kind ON alerts (kind);
";

/// Version 2's `meta` table.
const META_V2: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('db_id', lower(hex(randomblob(16))));
";

/// A host state as version 2 wrote it (`serde_json` of the ingest state, with every field set): a host
/// past a checkpoint, with an anchor key, stopped cleanly and overflowing.
const STATE_FULL: &str = r#"{"chain":{"next_seq":42,"last_hash":[171,171,171,171,171,171,171,171,171,171,171,171,171,171,171,171,171,171,171,171,171,171,171,171,171,171,171,171,171,171,171,171],"epoch":3,"key":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31],"genesis":[7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7],"next_segment":2,"generation":5,"last_checkpoint_seq":40},"first_seq":1,"anchor_key":[9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9],"generation":5,"clean_stop":true,"spool_overflowing":true}"#;

/// The same for an anchored host that has stored nothing past its anchor yet (every option unset); written
/// before `spool_overflowing` existed, so without it.
const STATE_BARE: &str = r#"{"chain":{"next_seq":10,"last_hash":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"epoch":2,"key":null,"genesis":null,"next_segment":null,"generation":0,"last_checkpoint_seq":0},"first_seq":10,"anchor_key":null,"generation":null,"clean_stop":false}"#;

/// What [`STATE_FULL`] holds.
fn full_record() -> HostRecord {
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = i as u8;
    }
    HostRecord {
        next_seq: 42,
        last_hash: [0xab; 32],
        epoch: 3,
        epoch_key: Some(key),
        genesis_key: Some([7; 32]),
        next_segment: Some(2),
        segment_generation: 5,
        last_checkpoint_seq: 40,
        first_seq: 1,
        anchor_key: Some([9; 32]),
        generation: Some(5),
        clean_stop: true,
        spool_overflowing: true,
        enrolled_key: Some([7; 32]),
        tofu: true,
        at_checkpoint: None,
    }
}

/// What [`STATE_BARE`] holds.
fn bare_record() -> HostRecord {
    HostRecord {
        next_seq: 10,
        last_hash: [1; 32],
        epoch: 2,
        epoch_key: None,
        genesis_key: None,
        next_segment: None,
        segment_generation: 0,
        last_checkpoint_seq: 0,
        first_seq: 10,
        anchor_key: None,
        generation: None,
        clean_stop: false,
        spool_overflowing: false,
        enrolled_key: None,
        tofu: false,
        at_checkpoint: None,
    }
}

/// Builds a version 2 file at `path` holding host `web` (row id 7, [`STATE_FULL`], two stored records) and
/// host `db` (row id 3, `state`).
fn version_2_file(path: &std::path::Path, db_state: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!("{SCHEMA_V2} {META_V2} PRAGMA user_version = 2;"))
        .unwrap();
    let host = "INSERT INTO hosts (id, name, state, next_seq, status, records, events, duplicates, \
                batches, created_ns, last_seen_ns, last_checkpoint_ns, silence_alerted) \
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
    conn.execute(
        host,
        rusqlite::params![
            7, "web", STATE_FULL, 42, "tampered", 41, 30, 4, 6, 100, 200, 150, 1
        ],
    )
    .unwrap();
    conn.execute(
        host,
        rusqlite::params![
            3,
            "db",
            db_state,
            10,
            "anchored_tofu",
            0,
            0,
            0,
            1,
            300,
            400,
            None::<i64>,
            0
        ],
    )
    .unwrap();
    for seq in [40i64, 41] {
        conn.execute(
            "INSERT INTO records (host_id, seq, hash, kind, time_ns, pid, path, summary, payload, stored_ns) \
             VALUES (7, ?1, ?2, 'file', ?1, 9, '/etc/hosts', 'vi /etc/hosts', x'00', 200)",
            rusqlite::params![seq, vec![seq as u8; 32]],
        )
        .unwrap();
    }
    // Alerts as version 2 kept them, one row each: three gaps and a tamper of web, a gap of db.
    for (host, kind, time, seq) in [
        ("web", "gap", 10, 1),
        ("db", "gap", 11, 2),
        ("web", "tamper", 12, 3),
        ("web", "gap", 13, 4),
        ("web", "gap", 14, 5),
    ] {
        conn.execute(
            "INSERT INTO alerts (host, kind, time_ns, seq, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![host, kind, time, seq, format!("{{\"n\":{seq}}}")],
        )
        .unwrap();
    }
}

#[test]
fn a_version_2_database_is_migrated_and_reads_the_same_host_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    version_2_file(&path, STATE_BARE);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    assert_eq!(store.host_record("web").unwrap(), Some(full_record()));
    assert_eq!(store.host_record("db").unwrap(), Some(bare_record()));

    let hosts = store.hosts().unwrap();
    assert_eq!(hosts.len(), 2);
    let (db, web) = (&hosts[0], &hosts[1]);
    assert_eq!(
        (db.name.as_str(), db.status),
        ("db", HostStatus::AnchoredTofu)
    );
    assert_eq!(
        (db.batches, db.last_seen_ns, db.last_checkpoint_ns),
        (1, 400, None)
    );
    assert!(!db.silent);
    assert_eq!(
        (web.name.as_str(), web.status),
        ("web", HostStatus::Tampered)
    );
    assert_eq!(web.record, full_record());
    assert_eq!(
        (web.records, web.events, web.duplicates, web.batches),
        (41, 30, 4, 6)
    );
    assert_eq!((web.last_seen_ns, web.last_checkpoint_ns), (200, Some(150)));
    assert!(web.silent);

    // The stored records still belong to their host (row ids are kept).
    let hashes = store.stored_hashes("web", 1, 41).unwrap();
    assert_eq!(hashes, [(40, [40; 32]), (41, [41; 32])]);
    // Record 41 follows the last verified checkpoint (40): it is pending.
    assert_eq!(found(&store, Some(9), None), [40]);
    // The chain continues from the migrated position, and the JSON column is gone.
    assert_eq!(store_files(&store, "web", &[(9, "/etc/hosts")], 500), 42);
    assert_eq!(
        store.host_record("web").unwrap().map(|r| r.next_seq),
        Some(43)
    );
    let columns: Vec<String> = store
        .read(|conn| {
            let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('hosts')")?;
            let rows = stmt.query_map([], |row| row.get(0))?;
            Ok(rows.map(Result::unwrap).collect())
        })
        .unwrap();
    assert!(!columns.iter().any(|c| c == "state"), "{columns:?}");
    // The hosts' keys are their enrolled identity (web's genesis key; db had none stored); no tokens yet.
    assert_eq!(
        store.host_record("web").unwrap().unwrap().enrolled_key,
        Some([7; 32])
    );
    assert_eq!(store.host_token("web").unwrap(), None);
    // Alerts of one host and kind collapsed into the newest, counted, with the first and last time.
    let alerts = store
        .alerts(&crate::store::AlertQuery {
            limit: 100,
            ..crate::store::AlertQuery::default()
        })
        .unwrap();
    let got: Vec<_> = alerts
        .iter()
        .map(|a| {
            (
                a.host.as_str(),
                a.kind.as_str(),
                a.count,
                a.time_ns,
                a.last_time_ns,
                a.seq,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("db", "gap", 1, 11, 11, Some(2)),
            ("web", "tamper", 1, 12, 12, Some(3)),
            ("web", "gap", 3, 10, 14, Some(5)),
        ]
    );
    assert_eq!(alerts[2].detail, serde_json::json!({ "n": 5 }));
    drop(store);
    // Reopening a migrated file changes nothing.
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.host_record("db").unwrap(), Some(bare_record()));
}

#[test]
fn an_unreadable_version_2_state_leaves_the_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    version_2_file(&path, r#"{"chain":{"next_seq":"ten"}}"#);
    let err = SqliteStore::open(&path).err().unwrap();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(err.to_string().contains("host db"), "{err}");
    assert_eq!(user_version(&path), 2, "the migration rolled back");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let state: String = conn
        .query_row("SELECT state FROM hosts WHERE name = 'web'", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(state, STATE_FULL);
}

#[test]
fn a_version_1_database_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "{SCHEMA_V2} CREATE INDEX records_pid ON records (pid) WHERE pid IS NOT NULL; \
             CREATE INDEX records_path ON records (path) WHERE path IS NOT NULL; \
             PRAGMA user_version = 1;",
        ))
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let indexes: Vec<String> = store
        .read(|conn| {
            let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'index'")?;
            let rows = stmt.query_map([], |row| row.get(0))?;
            Ok(rows.map(Result::unwrap).collect())
        })
        .unwrap();
    assert!(
        !indexes
            .iter()
            .any(|n| n == "records_path" || n == "records_pid"),
        "{indexes:?}"
    );
    store_files(&store, "h", &[(9, "/after/migration")], 1);
    assert_eq!(found(&store, Some(9), None).len(), 1);
    assert_eq!(user_version(&path), SCHEMA_VERSION);
}

/// The records file of schema version 5, as those collectors created it (the columns version 5 added
/// written out; `ALTER TABLE` left them in this order).
const SCHEMA_V5: &str = "
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
    silence_alerted INTEGER NOT NULL DEFAULT 0,
    enrolled_key BLOB,
    tofu INTEGER NOT NULL DEFAULT 0,
    token_digest BLOB,
    cp_last_hash BLOB,
    cp_epoch INTEGER,
    cp_epoch_key BLOB,
    cp_next_segment INTEGER,
    cp_segment_generation INTEGER,
    cp_generation INTEGER,
    cp_clean_stop INTEGER,
    cp_spool_overflowing INTEGER
);
CREATE UNIQUE INDEX hosts_token ON hosts (token_digest);
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
    stored_ns INTEGER NOT NULL,
    loginuid INTEGER,
    local_addr TEXT,
    local_port INTEGER,
    remote_addr TEXT,
    remote_port INTEGER,
    role TEXT,
    role_pid INTEGER,
    role_start_ns INTEGER
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
    detail TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 1,
    last_time_ns INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX alerts_host_kind ON alerts (host, kind);
CREATE INDEX alerts_kind ON alerts (kind);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta (key, value) VALUES ('db_id', 'v5-database');
PRAGMA user_version = 5;
";

/// The search file of a version 5 collector (search version 1) beside [`SCHEMA_V5`]'s file, the tables
/// this test fills.
const SEARCH_V1: &str = "
CREATE TABLE path_index (path TEXT NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (path, id)) WITHOUT ROWID;
CREATE TABLE pid_index (pid INTEGER NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (pid, id)) WITHOUT ROWID;
CREATE TABLE search_state (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    db_id TEXT NOT NULL,
    upto INTEGER NOT NULL
);
PRAGMA user_version = 1;
";

/// Builds a version 5 file at `path` (and its search file) as reused ids left it: host `h` stored records 1
/// to 4, the last two pending, and its search file indexed all four; then the host replaced its pending
/// records with one, which got the id of a deleted record (3), below the search file's mark, so it was
/// never indexed, and the entries of the deleted records stayed.
fn version_5_file_with_a_reused_id(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(SCHEMA_V5).unwrap();
    conn.execute(
        "INSERT INTO hosts (id, name, next_seq, last_hash, epoch, segment_generation, \
         last_checkpoint_seq, first_seq, clean_stop, spool_overflowing, status, records, events, \
         batches, created_ns, last_seen_ns, enrolled_key) \
         VALUES (1, 'h', 4, ?1, 0, 0, 3, 1, 0, 0, 'verified', 3, 3, 3, 1, 1, ?2)",
        rusqlite::params![vec![0u8; 32], vec![3u8; 32]],
    )
    .unwrap();
    for (id, pid, path) in [(1i64, 9, "/a"), (2, 9, "/a"), (3, 10, "/reused")] {
        conn.execute(
            "INSERT INTO records (id, host_id, seq, hash, kind, time_ns, pid, path, summary, payload, \
             stored_ns) VALUES (?1, 1, ?1, ?2, 'file', ?1, ?3, ?4, ?4, ?5, 1)",
            rusqlite::params![id, vec![id as u8; 32], pid, path, path.as_bytes()],
        )
        .unwrap();
    }
    let search = rusqlite::Connection::open(path.with_extension("search.db")).unwrap();
    search
        .execute_batch(&format!(
            "{SEARCH_V1} INSERT INTO search_state VALUES (1, 'v5-database', 4); \
             INSERT INTO path_index VALUES ('/a', 1), ('/a', 2), ('/deleted', 3), ('/deleted', 4); \
             INSERT INTO pid_index VALUES (9, 1), (9, 2), (9, 3), (9, 4);"
        ))
        .unwrap();
}

#[test]
fn a_version_5_database_never_reuses_ids_and_is_indexed_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    version_5_file_with_a_reused_id(&path);
    let store = SqliteStore::open_indexing(&path, None).unwrap();
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    assert_eq!(record_ids(&store), [1, 2, 3], "ids are kept");
    let exact = |path: &str| Some(PathFilter::Exact(path.into()));
    let check = |store: &SqliteStore| {
        assert_eq!(found(store, None, exact("/reused")), [3]);
        assert_eq!(found(store, Some(10), None), [3]);
        assert_eq!(found(store, None, exact("/deleted")), Vec::<u64>::new());
        assert_eq!(found(store, Some(9), None), [1, 2]);
    };
    // The search file starts over (its entries could name records that are gone, or others than theirs),
    // so every record is found before indexing…
    check(&store);
    assert_eq!(store.index_pending(1).unwrap(), 3);
    // … and after, indexed once each.
    check(&store);
    assert_eq!(indexed_ids(&store, "path_index"), [1, 2, 3]);
    assert_eq!(indexed_ids(&store, "pid_index"), [1, 2, 3]);

    // The table was rebuilt with its indexes, and from now on no id is given twice.
    let schema: Vec<String> = store
        .read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT name || ': ' || sql FROM sqlite_master \
                 WHERE tbl_name IN ('records', 'deleted_records') ORDER BY name",
            )?;
            let rows = stmt.query_map([], |row| row.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .unwrap();
    let names: Vec<&str> = schema.iter().filter_map(|s| s.split(':').next()).collect();
    assert_eq!(
        names,
        [
            "deleted_records",
            "records",
            "records_host_seq",
            "records_kind",
            "records_time"
        ],
        "{schema:#?}"
    );
    assert!(schema[1].contains("AUTOINCREMENT"), "{}", schema[1]);
    commit_rows(
        &store,
        "h",
        vec![indexed_everywhere("/pending"); 2],
        Tail::Pending,
        2,
    );
    commit_rows(
        &store,
        "h",
        vec![indexed_everywhere("/replaced")],
        Tail::ReplaceFrom(4),
        3,
    );
    assert_eq!(record_ids(&store), [1, 2, 3, 6]);
    assert_eq!(store.index_pending(1).unwrap(), 3);
    assert_eq!(found(&store, None, exact("/replaced")), [4]);
    assert_eq!(found(&store, None, exact("/pending")), Vec::<u64>::new());
    assert_eq!(indexed_ids(&store, "path_index"), [1, 2, 3, 6]);
    drop(store);
    // Reopening a migrated file changes nothing.
    let store = SqliteStore::open_indexing(&path, None).unwrap();
    assert_eq!(store.index_pending(1).unwrap(), 0);
    assert_eq!(found(&store, None, exact("/reused")), [3]);
    store_files(&store, "h", &[(9, "/after")], 4);
    assert_eq!(record_ids(&store), [1, 2, 3, 6, 7]);
}
