//! Tests of the SQLite store: persistence, the compare-and-set on a host's chain, the query plans, and a
//! throughput measurement.

use std::time::Instant;

use auditloop_protocol::batch::{Batch, CONTENT_TYPE_BINARY};
use axum::http::StatusCode;

use super::SqliteStore;
use crate::ingest::{HostState, check};
use crate::intake::receive;
use crate::store::{Commit, EventQuery, PathFilter, Store, StoreError};
use crate::testutil::{AGENT, TestApp, TestJournal, batch_of};

#[test]
fn state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let mut j = TestJournal::new("h");
    j.execs(5);
    {
        let store = SqliteStore::open(&path).unwrap();
        let receipt = receive(&store, "h", &j.batch(1, 6), 1).unwrap();
        assert_eq!(receipt.next_seq, 7);
    }
    let store = SqliteStore::open(&path).unwrap();
    let state = store.host_state("h").unwrap().unwrap();
    assert_eq!(state.next_seq(), 7);
    assert_eq!(store.stored_hashes("h", 2, 3).unwrap().len(), 2);
    j.execs(2);
    let receipt = receive(&store, "h", &j.batch(4, 8), 2).unwrap();
    assert_eq!((receipt.stored, receipt.duplicates), (2, 3));
    assert_eq!(store.host("h").unwrap().unwrap().records, 8);
}

#[test]
fn a_stale_state_cannot_be_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
    let mut j = TestJournal::new("h");
    j.execs(5);
    let first = j.batch(1, 3);
    let fresh = check(&Default::default(), &first, |_| None).unwrap();
    let commit = |expected| Commit {
        host: "h",
        expected_next_seq: expected,
        verified: &fresh,
        now_ns: 1,
    };
    store.commit(&commit(None)).unwrap();
    assert!(matches!(
        store.commit(&commit(None)),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.commit(&commit(Some(1))),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.host("h").unwrap().unwrap().records, 3);
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

/// Sequence numbers of the records `store` finds for `pid` and `path`.
fn found(store: &SqliteStore, pid: Option<u32>, path: Option<PathFilter>) -> Vec<u64> {
    let query = EventQuery {
        pid,
        path,
        limit: 10_000,
        ..EventQuery::default()
    };
    store
        .records(&query)
        .unwrap()
        .into_iter()
        .map(|r| r.seq)
        .collect()
}

#[test]
fn path_and_pid_queries_are_complete_before_and_after_indexing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
    let mut j = TestJournal::new("h");
    let mut expected = Vec::new();
    for i in 0..300u32 {
        let seq = j.file(100 + i % 3, &format!("/srv/f{}", i % 10));
        if i % 30 == 1 {
            expected.push(seq);
        }
    }
    let last = j.last_seq();
    receive(&store, "h", &j.batch(1, last), 1).unwrap();
    let exact = || Some(PathFilter::Exact("/srv/f1".into()));
    let check = |store: &SqliteStore, expected: &[u64], extra: usize| {
        assert_eq!(found(store, Some(101), exact()), expected);
        assert_eq!(found(store, None, exact()).len(), 30 + extra);
        assert_eq!(found(store, Some(100), None).len(), 100);
        let prefix = Some(PathFilter::Prefix("/srv/".into()));
        assert_eq!(found(store, None, prefix).len(), 300 + extra);
    };
    // Nothing is indexed yet: every answer comes from the records after the mark.
    check(&store, &expected, 0);
    assert_eq!(
        store.index_pending(1_000_000).unwrap(),
        0,
        "below the minimum"
    );
    assert_eq!(store.index_pending(1).unwrap(), last);
    assert_eq!(store.index_pending(1).unwrap(), 0);
    check(&store, &expected, 0);
    // Indexed records and newer ones together.
    let newer = j.file(101, "/srv/f1");
    receive(&store, "h", &j.batch(last + 1, newer), 2).unwrap();
    expected.push(newer);
    check(&store, &expected, 1);
    assert_eq!(store.index_pending(1).unwrap(), 1);
    check(&store, &expected, 1);
}

#[test]
fn a_search_file_of_another_database_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        let mut j = TestJournal::new("h");
        for _ in 0..50 {
            j.file(7, "/old/path");
        }
        receive(&store, "h", &j.batch(1, j.last_seq()), 1).unwrap();
        assert!(store.index_pending(1).unwrap() >= 50);
    }
    // The records file is lost; its search file stays behind.
    for name in ["c.db", "c.db-wal", "c.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(name));
    }
    assert!(dir.path().join("c.search.db").exists());
    let store = SqliteStore::open(&path).unwrap();
    let mut j = TestJournal::new("h");
    for _ in 0..50 {
        j.file(8, "/new/path");
    }
    receive(&store, "h", &j.batch(1, j.last_seq()), 1).unwrap();
    store.index_pending(1).unwrap();
    let old = Some(PathFilter::Exact("/old/path".into()));
    assert_eq!(found(&store, None, old), Vec::<u64>::new());
    assert_eq!(found(&store, Some(7), None), Vec::<u64>::new());
    let new = Some(PathFilter::Exact("/new/path".into()));
    assert_eq!(found(&store, Some(8), new).len(), 50);
}

#[test]
fn a_version_1_database_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "{} CREATE INDEX records_pid ON records (pid) WHERE pid IS NOT NULL; \
             CREATE INDEX records_path ON records (path) WHERE path IS NOT NULL; \
             PRAGMA user_version = 1;",
            super::SCHEMA
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
    let mut j = TestJournal::new("h");
    j.file(9, "/after/migration");
    receive(&store, "h", &j.batch(1, j.last_seq()), 1).unwrap();
    assert_eq!(found(&store, Some(9), None).len(), 1);
}

/// Measures storing 200k exec events shipped in batches like the agent's (about 1 MiB of frames, zstd):
/// one host through the blocking ingest path (per-phase times), then four hosts at once through the HTTP
/// router on a two-thread runtime.
/// `cargo test --release -p auditloop-collector --lib -- --ignored --nocapture throughput`
#[test]
#[ignore = "measurement; run in release"]
fn throughput() {
    const PER_BATCH: u64 = 4_000;
    let mut j = TestJournal::new("h");
    j.execs(200_000);
    let last = j.last_seq();
    let frames = j.frames();
    let encoded: Vec<Vec<u8>> = (1..=last)
        .step_by(PER_BATCH as usize)
        .map(|from| {
            let batch = batch_of(&frames, from, (from + PER_BATCH - 1).min(last));
            batch.encode_binary(1).unwrap()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
    let mut state = HostState::default();
    let mut wall = [0.0; 3];
    let mut cpu = [0.0; 3];
    let start = Instant::now();
    for body in &encoded {
        let (t0, c0) = (Instant::now(), thread_cpu());
        let batch = Batch::decode(CONTENT_TYPE_BINARY, body).unwrap();
        let (t1, c1) = (Instant::now(), thread_cpu());
        let verified = check(&state, &batch, |_| None).unwrap();
        let (t2, c2) = (Instant::now(), thread_cpu());
        let expected_next_seq = state.chain.as_ref().map(|c| c.next_seq);
        store
            .commit(&Commit {
                host: "h",
                expected_next_seq,
                verified: &verified,
                now_ns: 1,
            })
            .unwrap();
        state = verified.state.clone();
        for (i, (w, c)) in [
            (t1 - t0, c1 - c0),
            (t2 - t1, c2 - c1),
            (t2.elapsed(), thread_cpu() - c2),
        ]
        .into_iter()
        .enumerate()
        {
            wall[i] += w.as_secs_f64();
            cpu[i] += c;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "one host: {last} records in {} batches, {secs:.2} s = {:.0} records/s",
        encoded.len(),
        last as f64 / secs
    );
    for (i, phase) in ["decode", "verify", "store"].iter().enumerate() {
        println!(
            "  {phase}: {:.2} s wall, {:.2} s CPU on the ingest thread ({:.0} records/s of CPU)",
            wall[i],
            cpu[i],
            last as f64 / cpu[i]
        );
    }
    assert_eq!(store.host("h").unwrap().unwrap().records, last);

    const HOSTS: usize = 4;
    let app = TestApp::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    runtime.block_on(async {
        let shippers = (0..HOSTS).map(|h| {
            let (app, encoded) = (&app, &encoded);
            async move {
                for body in encoded {
                    let host = format!("host{h}");
                    let (status, answer) = app
                        .post_raw(&host, Some(AGENT), CONTENT_TYPE_BINARY, body.clone())
                        .await;
                    assert_eq!(status, StatusCode::OK, "{answer}");
                }
            }
        });
        futures_join_all(shippers).await;
    });
    let secs = start.elapsed().as_secs_f64();
    let total = last * HOSTS as u64;
    println!(
        "{HOSTS} hosts at once over HTTP: {total} records in {secs:.2} s = {:.0} records/s",
        total as f64 / secs
    );
}

/// Runs futures concurrently on the current task.
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    std::future::poll_fn(|cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}

/// CPU time of the calling thread, in seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}
