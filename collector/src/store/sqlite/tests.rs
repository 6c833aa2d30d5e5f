//! Tests of the SQLite store: the conformance suite, the schema and its migrations (`tests/migration.rs`),
//! the query plans, and the search index kept behind the records.

mod lineage;
mod migration;

use std::ops::Deref;
use std::path::Path;
use std::time::{Duration, Instant};

use auditloop_model::EventKind;
use auditloop_protocol::api::HostStatus;
use tempfile::TempDir;

use super::SqliteStore;
use super::search::{CHUNK_ROWS, INDEX_TABLES, PURGE};
use crate::store::backend::Store;
use crate::store::commit::{Commit, NewRecord, RecordKind, SearchColumns};
use crate::store::host::{Enrollment, HostRecord};
use crate::store::lineage::{FlowSide, LineageKey, LineageRole};
use crate::store::query::{EventQuery, PathFilter};

/// A fresh SQLite store in a temporary directory, removed after the store is dropped.
struct FreshSqlite {
    store: SqliteStore,
    _dir: TempDir,
}

impl FreshSqlite {
    /// With the indexer thread as the collector runs it.
    fn new() -> FreshSqlite {
        FreshSqlite::indexing(Some(super::indexer::INDEX_EVERY))
    }

    /// With the indexer thread indexing everything every `every`, or without it.
    fn indexing(every: Option<Duration>) -> FreshSqlite {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_indexing(&dir.path().join("c.db"), every).unwrap();
        FreshSqlite { store, _dir: dir }
    }
}

impl Deref for FreshSqlite {
    type Target = SqliteStore;

    fn deref(&self) -> &SqliteStore {
        &self.store
    }
}

mod conformance {
    use super::FreshSqlite;

    crate::store_conformance!(FreshSqlite::new());

    /// The same cases with the indexer catching up every few milliseconds, so answers mix indexed and
    /// unindexed records.
    mod while_indexing {
        use std::time::Duration;

        use super::FreshSqlite;

        crate::store_conformance!(FreshSqlite::indexing(Some(Duration::from_millis(1))));
    }
}

/// Stores file events of `host` (pid and path each, all verified), continuing its chain (enrolling it
/// first if needed); returns the last seq.
fn store_files(store: &SqliteStore, host: &str, files: &[(u32, &str)], now_ns: u64) -> u64 {
    let first = store.host_record(host).unwrap().map_or(1, |r| r.next_seq);
    let rows = files
        .iter()
        .zip(first..)
        .map(|(&(pid, path), seq)| {
            let columns = SearchColumns {
                time_ns: Some(seq),
                pid: Some(pid),
                path: Some(path.to_owned()),
                summary: Some(path.to_owned()),
                ..SearchColumns::default()
            };
            let payload = format!("{host} {seq}").into_bytes();
            (RecordKind::Event(EventKind::File), columns, payload)
        })
        .collect();
    store_rows(store, host, rows, now_ns)
}

/// Stores records of `host` (kind, columns and payload each, all verified), continuing its chain
/// (enrolling it first if needed); returns the last seq.
fn store_rows(
    store: &SqliteStore,
    host: &str,
    rows: Vec<(RecordKind, SearchColumns, Vec<u8>)>,
    now_ns: u64,
) -> u64 {
    commit_rows(store, host, rows, Tail::Verified, now_ns)
}

/// What [`commit_rows`] does with the host's chain.
#[derive(Clone, Copy, Debug)]
enum Tail {
    /// Continues it; every record stored is verified.
    Verified,
    /// Continues it; the records stored are pending (the last verified checkpoint stays where it was).
    Pending,
    /// Deletes the stored records from this seq on (pending ones) and stores the rows, verified, in their
    /// place.
    ReplaceFrom(u64),
}

/// Stores records of `host` (kind, columns and payload each) as `tail` says (enrolling it first if
/// needed); returns the last seq.
fn commit_rows(
    store: &SqliteStore,
    host: &str,
    rows: Vec<(RecordKind, SearchColumns, Vec<u8>)>,
    tail: Tail,
    now_ns: u64,
) -> u64 {
    let record = match store.host_record(host).unwrap() {
        Some(record) => record,
        None => {
            store
                .enroll(&Enrollment {
                    host,
                    genesis_key: [3; 32],
                    token_digest: [host.len() as u8; 32],
                    replace: false,
                    now_ns,
                })
                .unwrap();
            store.host_record(host).unwrap().unwrap()
        }
    };
    let (first, replace_from) = match tail {
        Tail::ReplaceFrom(from) => (from, Some(from)),
        Tail::Verified | Tail::Pending => (record.next_seq, None),
    };
    let records: Vec<NewRecord<'_>> = rows
        .iter()
        .zip(first..)
        .map(|((kind, columns, payload), seq)| NewRecord {
            seq,
            hash: [seq as u8; 32],
            kind: *kind,
            columns: columns.clone(),
            payload,
        })
        .collect();
    let next_seq = first + rows.len() as u64;
    let last_checkpoint_seq = match tail {
        Tail::Pending => record.last_checkpoint_seq,
        Tail::Verified | Tail::ReplaceFrom(_) => next_seq - 1,
    };
    let host_record = HostRecord {
        next_seq,
        last_hash: [0; 32],
        epoch: 0,
        epoch_key: None,
        genesis_key: None,
        next_segment: None,
        segment_generation: 0,
        last_checkpoint_seq,
        first_seq: 1,
        anchor_key: None,
        generation: None,
        clean_stop: false,
        spool_overflowing: false,
        enrolled_key: record.enrolled_key,
        tofu: record.tofu,
        at_checkpoint: None,
    };
    store
        .commit(&Commit {
            host,
            expected_next_seq: record.next_seq,
            host_record,
            status: HostStatus::Verified,
            records: &records,
            duplicates: 0,
            replace_from,
            checkpoints: &[],
            alerts: &[],
            now_ns,
        })
        .unwrap();
    next_seq - 1
}

/// Sequence numbers of the records `store` finds for `pid` and `path`.
fn found(store: &SqliteStore, pid: Option<u32>, path: Option<PathFilter>) -> Vec<u64> {
    let query = EventQuery {
        pid,
        path,
        limit: 100_000,
        ..EventQuery::default()
    };
    store
        .records(&query)
        .unwrap()
        .into_iter()
        .map(|r| r.seq)
        .collect()
}

/// The search file's `upto` mark and the newest record id.
fn index_position(store: &SqliteStore) -> (i64, i64) {
    store
        .read(|conn| {
            Ok(conn.query_row(
                "SELECT (SELECT upto FROM search.search_state WHERE one = 1), \
                 (SELECT COALESCE(MAX(id), 0) FROM records)",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?)
        })
        .unwrap()
}

/// Waits up to 30 s for the indexer to reach the newest record.
fn wait_until_indexed(store: &SqliteStore) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (upto, last) = index_position(store);
        if upto == last {
            return;
        }
        assert!(Instant::now() < deadline, "index stuck at {upto} of {last}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 9).unwrap();
    drop(conn);
    let err = SqliteStore::open(&path).err().unwrap().to_string();
    assert!(err.contains("schema version 9"), "{err}");
    assert!(err.contains("c.db"), "{err}");
}

#[test]
fn queries_use_the_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
    let plan = |sql: &str| -> String {
        store
            .read(|conn| {
                let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let rows = stmt.query_map([], |row| row.get::<_, String>(3))?;
                Ok(rows.map(Result::unwrap).collect::<Vec<_>>().join("; "))
            })
            .unwrap()
    };
    let base = "SELECT r.id FROM records r JOIN hosts h ON h.id = r.host_id WHERE 1";
    let by_host = plan(&format!(
        "{base} AND r.host_id = 1 AND r.seq > 5 ORDER BY r.seq LIMIT 10"
    ));
    assert!(
        by_host.contains("records_host_seq") && !by_host.contains("TEMP B-TREE"),
        "{by_host}"
    );
    let by_kind = plan(&format!(
        "{base} AND r.id > 5 AND r.kind = 'exec' ORDER BY r.id LIMIT 10"
    ));
    assert!(
        by_kind.contains("records_kind") && !by_kind.contains("TEMP B-TREE"),
        "{by_kind}"
    );
    // Path and pid: the search file up to its mark, then a rowid range of the records after it.
    let tail =
        "SELECT id FROM records WHERE id > (SELECT upto FROM search.search_state WHERE one = 1)";
    let by_pid = plan(&format!(
        "{base} AND r.id IN (SELECT id FROM search.pid_index WHERE pid = 7 UNION ALL \
         {tail} AND pid IS NOT NULL AND pid = 7) ORDER BY r.id LIMIT 10"
    ));
    assert!(
        by_pid.contains("SEARCH search.pid_index USING PRIMARY KEY (pid=?)")
            && by_pid.contains("SEARCH records USING INTEGER PRIMARY KEY (rowid>?)"),
        "{by_pid}"
    );
    let by_path = plan(&format!(
        "{base} AND r.id IN (SELECT id FROM search.path_index WHERE path >= '/x' AND path < '/y' \
         UNION ALL {tail} AND path IS NOT NULL AND path >= '/x' AND path < '/y') ORDER BY r.id LIMIT 10"
    ));
    assert!(
        by_path.contains("SEARCH search.path_index USING PRIMARY KEY (path>? AND path<?)")
            && by_path.contains("SEARCH records USING INTEGER PRIMARY KEY (rowid>?)"),
        "{by_path}"
    );
}

#[test]
fn removing_the_entries_of_deleted_records_looks_them_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let _store = SqliteStore::open_indexing(&path, None).unwrap();
    let conn = rusqlite::Connection::open(super::search::path_beside(&path)).unwrap();
    conn.execute("ATTACH DATABASE ?1 AS rec", [path.to_string_lossy()])
        .unwrap();
    for (sql, table) in PURGE.iter().zip(INDEX_TABLES) {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let plan: Vec<String> = stmt
            .query_map([], |row| row.get(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let plan = plan.join("; ");
        assert!(
            plan.contains(&format!("SEARCH main.{table} USING PRIMARY KEY ("))
                && !plan.contains(&format!("SCAN main.{table}")),
            "{sql}: {plan}"
        );
    }
}

#[test]
fn path_and_pid_queries_are_complete_before_and_after_indexing() {
    let fresh = FreshSqlite::indexing(None);
    let store = &*fresh;
    let mut files = Vec::new();
    let mut expected = Vec::new();
    let paths: Vec<String> = (0..10).map(|i| format!("/srv/f{i}")).collect();
    for i in 0..300u32 {
        files.push((100 + i % 3, paths[(i % 10) as usize].as_str()));
        if i % 30 == 1 {
            expected.push(u64::from(i) + 1);
        }
    }
    let last = store_files(store, "h", &files, 1);
    let exact = || Some(PathFilter::Exact("/srv/f1".into()));
    let check = |store: &SqliteStore, expected: &[u64], extra: usize| {
        assert_eq!(found(store, Some(101), exact()), expected);
        assert_eq!(found(store, None, exact()).len(), 30 + extra);
        assert_eq!(found(store, Some(100), None).len(), 100);
        let prefix = Some(PathFilter::Prefix("/srv/".into()));
        assert_eq!(found(store, None, prefix).len(), 300 + extra);
    };
    // Nothing is indexed yet: every answer comes from the records after the mark.
    check(store, &expected, 0);
    assert_eq!(
        store.index_pending(1_000_000).unwrap(),
        0,
        "below the minimum"
    );
    assert_eq!(store.index_pending(1).unwrap(), last);
    assert_eq!(store.index_pending(1).unwrap(), 0);
    check(store, &expected, 0);
    // Indexed records and newer ones together.
    let newer = store_files(store, "h", &[(101, "/srv/f1")], 2);
    expected.push(newer);
    check(store, &expected, 1);
    assert_eq!(store.index_pending(1).unwrap(), 1);
    check(store, &expected, 1);
}

#[test]
fn the_indexer_catches_up_by_itself() {
    let fresh = FreshSqlite::indexing(Some(Duration::from_millis(20)));
    let store = &*fresh;
    store_files(store, "h", &[(7, "/a"); 40], 1);
    wait_until_indexed(store);
    store_files(store, "h", &[(8, "/b"); 5], 2);
    wait_until_indexed(store);
    assert_eq!(found(store, Some(7), None).len(), 40);
    assert_eq!(
        found(store, None, Some(PathFilter::Exact("/b".into()))).len(),
        5
    );
    assert_eq!(store.index_pending(1).unwrap(), 0, "nothing left waiting");
}

#[test]
fn a_chunk_of_stored_records_wakes_the_indexer() {
    // Without the periodic pass (an hour away), only the commit's wake-up can index.
    let fresh = FreshSqlite::indexing(Some(Duration::from_secs(3600)));
    let store = &*fresh;
    let rows = usize::try_from(CHUNK_ROWS).unwrap();
    store_files(store, "h", &vec![(7, "/a"); rows - 1], 1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(index_position(store).0, 0, "less than a chunk waits");
    store_files(store, "h", &[(7, "/a"); 1], 2);
    wait_until_indexed(store);
    assert_eq!(found(store, Some(7), None).len(), rows);
}

#[test]
fn a_search_file_of_another_database_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    {
        let store = SqliteStore::open_indexing(&path, None).unwrap();
        store_files(&store, "h", &[(7, "/old/path"); 50], 1);
        assert!(store.index_pending(1).unwrap() >= 50);
    }
    // The records file is lost; its search file stays behind.
    for name in ["c.db", "c.db-wal", "c.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(name));
    }
    assert!(dir.path().join("c.search.db").exists());
    let store = SqliteStore::open_indexing(&path, None).unwrap();
    store_files(&store, "h", &[(8, "/new/path"); 50], 1);
    store.index_pending(1).unwrap();
    let old = Some(PathFilter::Exact("/old/path".into()));
    assert_eq!(found(&store, None, old), Vec::<u64>::new());
    assert_eq!(found(&store, Some(7), None), Vec::<u64>::new());
    let new = Some(PathFilter::Exact("/new/path".into()));
    assert_eq!(found(&store, Some(8), new).len(), 50);
}

/// A net event of pid 7 with `path`, from 10.0.0.1:4000 to 10.0.0.2:22, that is a connect of its process
/// (started at 5): a row in every table of the search file (two in `addr_index`).
fn indexed_everywhere(path: &str) -> (RecordKind, SearchColumns, Vec<u8>) {
    let columns = SearchColumns {
        time_ns: Some(100),
        pid: Some(7),
        path: Some(path.to_owned()),
        summary: Some(path.to_owned()),
        local_address: Some("10.0.0.1".into()),
        local_port: Some(4000),
        remote_address: Some("10.0.0.2".into()),
        remote_port: Some(22),
        lineage: Some(LineageKey {
            role: LineageRole::Flow(FlowSide::Connect),
            pid: 7,
            start_ns: Some(5),
        }),
        ..SearchColumns::default()
    };
    (
        RecordKind::Event(EventKind::Net),
        columns,
        path.as_bytes().to_vec(),
    )
}

/// Ids of the stored records, in order.
fn record_ids(store: &SqliteStore) -> Vec<i64> {
    store
        .read(|conn| {
            let mut stmt = conn.prepare("SELECT id FROM records ORDER BY id")?;
            let rows = stmt.query_map([], |row| row.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .unwrap()
}

/// The record ids of the entries of the search file's `table`, in order.
fn indexed_ids(store: &SqliteStore, table: &str) -> Vec<i64> {
    store
        .read(|conn| {
            let mut stmt = conn.prepare(&format!("SELECT id FROM search.{table} ORDER BY id"))?;
            let rows = stmt.query_map([], |row| row.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .unwrap()
}

#[test]
fn replaced_records_leave_the_search_index_and_the_records_after_them_enter_it_once() {
    let fresh = FreshSqlite::indexing(None);
    let store = &*fresh;
    let rows = |path: &str, n: usize| vec![indexed_everywhere(path); n];
    commit_rows(store, "h", rows("/kept", 3), Tail::Verified, 1);
    commit_rows(store, "h", rows("/gone", 3), Tail::Pending, 2);
    assert_eq!(store.index_pending(1).unwrap(), 6);
    let deleted = record_ids(store)[3..].to_vec();
    // The pending records (the newest ones, indexed) are replaced by fewer, then one more is stored.
    commit_rows(store, "h", rows("/new", 2), Tail::ReplaceFrom(4), 3);
    commit_rows(store, "h", rows("/new", 1), Tail::Verified, 4);
    let ids = record_ids(store);
    assert!(
        ids[3..]
            .iter()
            .all(|id| deleted.iter().all(|gone| id > gone)),
        "no id of a deleted record is given again: {ids:?}, deleted {deleted:?}"
    );
    let exact = |path: &str| Some(PathFilter::Exact(path.into()));
    assert_eq!(found(store, None, exact("/new")), [4, 5, 6]);
    assert_eq!(store.index_pending(1).unwrap(), 3);
    assert_eq!(found(store, None, exact("/new")), [4, 5, 6]);
    assert_eq!(found(store, None, exact("/gone")), Vec::<u64>::new());
    assert_eq!(found(store, Some(7), None), [1, 2, 3, 4, 5, 6]);
    // The search file holds the entries of the stored records, once each, and nothing else.
    for table in INDEX_TABLES {
        let per_record = if table == "addr_index" { 2 } else { 1 };
        let expected: Vec<i64> = ids
            .iter()
            .flat_map(|&id| std::iter::repeat_n(id, per_record))
            .collect();
        assert_eq!(indexed_ids(store, table), expected, "{table}");
    }
    // The deleted records' tombstones went with their entries.
    let tombstones: i64 = store
        .read(|conn| {
            Ok(conn.query_row("SELECT COUNT(*) FROM deleted_records", [], |row| row.get(0))?)
        })
        .unwrap();
    assert_eq!(tombstones, 0);
    assert_eq!(store.index_pending(1).unwrap(), 0, "nothing left waiting");
}

/// Opens `path` as the collector does and checks the schema version it was left at.
fn user_version(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap()
}

#[test]
fn a_new_database_is_at_the_current_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    drop(SqliteStore::open(&path).unwrap());
    assert_eq!(user_version(&path), super::schema::SCHEMA_VERSION);
    // Opening it again changes nothing.
    drop(SqliteStore::open(&path).unwrap());
    assert_eq!(user_version(&path), super::schema::SCHEMA_VERSION);
}
