//! The search index: which records have a given path, pid or address, which are the connects and accepts
//! of a connection's client end, and which records tell the lineage walk about a process (its execs, its
//! fork, its connects and accepts), kept in its own SQLite file beside the records (`<name>.search.db`) and
//! written behind them.
//!
//! A batch of records touches hundreds of places in a path or pid index; writing those pages with every
//! batch cost four times the rest of the insert (measured: 66 k records/s with a per-row path index against
//! 154 k without). So the records file is indexed only where indexes grow at their ends (host and sequence,
//! time, kind), and this file indexes path and pid in large sorted chunks, up to its `upto` mark. Being a
//! separate file, it has its own write lock: indexing never holds up a batch. The indexer thread
//! (`indexer.rs`) is this file's only writer. Queries look records up here up to `upto` and scan the few
//! records after it, so answers are always complete.
//!
//! The file names the records database it indexes (a random id made with that database) and the version of
//! its own tables ([`SEARCH_VERSION`], in `PRAGMA user_version`); opened beside another database (the
//! records file was replaced) or written by another version, it starts over empty and is rebuilt behind
//! the records from the first one.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};

use crate::store::error::StoreError;
use crate::store::sqlite::conn::{int, named, open_wal, uint};

/// Tables of the search file.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS path_index (
    path TEXT NOT NULL,
    id INTEGER NOT NULL,
    PRIMARY KEY (path, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pid_index (
    pid INTEGER NOT NULL,
    id INTEGER NOT NULL,
    PRIMARY KEY (pid, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS addr_index (
    addr TEXT NOT NULL,
    id INTEGER NOT NULL,
    PRIMARY KEY (addr, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS flow_index (
    addr TEXT NOT NULL,
    port INTEGER NOT NULL,
    time_ns INTEGER NOT NULL,
    id INTEGER NOT NULL,
    PRIMARY KEY (addr, port, time_ns, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS proc_index (
    host_id INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    role TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    time_ns INTEGER NOT NULL,
    id INTEGER NOT NULL,
    PRIMARY KEY (host_id, pid, role, start_ns, time_ns, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS search_state (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    db_id TEXT NOT NULL,
    upto INTEGER NOT NULL
);
";

/// The version of the search file's tables (`PRAGMA user_version`): 0 indexed path and pid; 1 adds the
/// address, connection and process indexes.
const SEARCH_VERSION: i64 = 1;

/// Every index table, emptied when the file starts over.
const INDEX_TABLES: [&str; 5] = [
    "path_index",
    "pid_index",
    "addr_index",
    "flow_index",
    "proc_index",
];

/// The client end of a connect or accept in `rec.records` (a connect's local end, an accept's remote end).
pub(super) const CLIENT_ADDR: &str =
    "CASE role WHEN 'connect' THEN local_addr ELSE remote_addr END";
/// Its port.
pub(super) const CLIENT_PORT: &str =
    "CASE role WHEN 'connect' THEN local_port ELSE remote_port END";

/// Records added per transaction, and the lag a stored batch tolerates before the indexer starts on it, so
/// that indexing behind the writer goes in whole chunks (a chunk's fixed cost is the index pages it touches).
pub(super) const CHUNK_ROWS: u64 = 32_768;

/// Name under which readers attach the search file.
pub(super) const SCHEMA_NAME: &str = "search";

/// The search file beside the records database `db`.
pub(super) fn path_beside(db: &Path) -> PathBuf {
    db.with_extension("search.db")
}

/// Opens the search file at `path` for indexing the records database `db` (whose id is `db_id`), emptying
/// it if it indexed another database. The records database is attached as `rec`.
pub(super) fn open_indexer(path: &Path, db: &Path, db_id: &str) -> Result<Connection, StoreError> {
    let named = |e: rusqlite::Error| named(path, &e);
    let conn = open_wal(path)?;
    conn.execute_batch("PRAGMA cache_size = -32768;")
        .map_err(named)?;
    conn.execute_batch(&format!("BEGIN; {SCHEMA} COMMIT;"))
        .map_err(named)?;
    let indexed: Option<String> = conn
        .query_row("SELECT db_id FROM search_state WHERE one = 1", [], |row| {
            row.get(0)
        })
        .optional()
        .map_err(named)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(named)?;
    if indexed.as_deref() != Some(db_id) || version != SEARCH_VERSION {
        if indexed.is_some() {
            tracing::warn!(
                file = %path.display(),
                version,
                "the search index belongs to another database or version; rebuilding it"
            );
        }
        let tx = conn.unchecked_transaction().map_err(named)?;
        for table in INDEX_TABLES {
            tx.execute_batch(&format!("DELETE FROM {table};"))
                .map_err(named)?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO search_state (one, db_id, upto) VALUES (1, ?1, 0)",
            [db_id],
        )
        .map_err(named)?;
        tx.pragma_update(None, "user_version", SEARCH_VERSION)
            .map_err(named)?;
        tx.commit().map_err(named)?;
    }
    conn.execute("ATTACH DATABASE ?1 AS rec", [db.to_string_lossy()])
        .map_err(named)?;
    conn.set_prepared_statement_cache_capacity(16);
    Ok(conn)
}

/// Attaches the search file at `path` to a reader connection as [`SCHEMA_NAME`].
pub(super) fn attach(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    conn.execute(
        &format!("ATTACH DATABASE ?1 AS {SCHEMA_NAME}"),
        [path.to_string_lossy()],
    )?;
    Ok(())
}

/// Indexes one chunk of the records after `upto`, in one transaction of the search file (the records file
/// is only read); returns how many records it covered (0 when fewer than `min_rows` were waiting).
pub(super) fn index_chunk(conn: &Connection, min_rows: u64) -> Result<u64, StoreError> {
    // Deferred, not immediate: an immediate transaction would also take the records file's write lock.
    let tx = conn.unchecked_transaction()?;
    let upto: i64 = tx
        .prepare_cached("SELECT upto FROM search_state WHERE one = 1")?
        .query_row([], |row| row.get(0))?;
    let last: i64 = tx
        .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM rec.records")?
        .query_row([], |row| row.get(0))?;
    let waiting = uint(last - upto);
    if waiting == 0 || waiting < min_rows {
        return Ok(0);
    }
    let to = last.min(upto.saturating_add(int(CHUNK_ROWS)));
    // Sorted like the index, so each of its pages is visited once per chunk.
    tx.prepare_cached(
        "INSERT INTO main.path_index (path, id) SELECT path, id FROM rec.records \
         WHERE id > ?1 AND id <= ?2 AND path IS NOT NULL ORDER BY path, id",
    )?
    .execute([upto, to])?;
    tx.prepare_cached(
        "INSERT INTO main.pid_index (pid, id) SELECT pid, id FROM rec.records \
         WHERE id > ?1 AND id <= ?2 AND pid IS NOT NULL ORDER BY pid, id",
    )?
    .execute([upto, to])?;
    tx.prepare_cached(
        "INSERT OR IGNORE INTO main.addr_index (addr, id) SELECT addr, id FROM ( \
         SELECT local_addr AS addr, id FROM rec.records WHERE id > ?1 AND id <= ?2 AND local_addr IS NOT NULL \
         UNION SELECT remote_addr, id FROM rec.records WHERE id > ?1 AND id <= ?2 AND remote_addr IS NOT NULL) \
         ORDER BY addr, id",
    )?
    .execute([upto, to])?;
    tx.prepare_cached(&format!(
        "INSERT INTO main.flow_index (addr, port, time_ns, id) SELECT a, p, t, id FROM ( \
         SELECT {CLIENT_ADDR} AS a, {CLIENT_PORT} AS p, COALESCE(time_ns, 0) AS t, id FROM rec.records \
         WHERE id > ?1 AND id <= ?2 AND role IN ('connect', 'accept') AND local_addr IS NOT NULL \
         AND local_port IS NOT NULL AND remote_addr IS NOT NULL AND remote_port IS NOT NULL) \
         ORDER BY a, p, t, id"
    ))?
    .execute([upto, to])?;
    tx.prepare_cached(
        "INSERT INTO main.proc_index (host_id, pid, role, start_ns, time_ns, id) \
         SELECT host_id, role_pid, role, role_start_ns, COALESCE(time_ns, 0), id FROM rec.records \
         WHERE id > ?1 AND id <= ?2 AND role IS NOT NULL AND role_pid IS NOT NULL \
         AND role_start_ns IS NOT NULL ORDER BY host_id, role_pid, role, role_start_ns, 5, id",
    )?
    .execute([upto, to])?;
    tx.prepare_cached("UPDATE search_state SET upto = ?1 WHERE one = 1")?
        .execute([to])?;
    tx.commit()?;
    Ok(uint(to - upto))
}
