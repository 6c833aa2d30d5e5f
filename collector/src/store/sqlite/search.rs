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
//! Entries are kept exact: every stored record up to `upto` has its entries, once, and no other record
//! has any. Record ids are never given twice (`schema.rs`), so a record indexed is never another one
//! later; a deleted record leaves a tombstone in the records file (`deleted_records`, its searchable
//! columns) in the transaction that deletes it, and the indexer removes its entries by it
//! ([`purge_deleted`]) before it indexes more.
//!
//! The file names the records database it indexes (a random id made with that database) and the version of
//! its own tables ([`SEARCH_VERSION`], in `PRAGMA user_version`); opened beside another database (the
//! records file was replaced) or written by another version, it starts over empty and is rebuilt behind
//! the records from the first one.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

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
/// address, connection and process indexes; 2 (with the records file's version 6) removes the entries of
/// deleted records. A file of version 1 may hold entries of deleted records under the ids of others, and
/// lack those others (ids were given again), so it starts over.
const SEARCH_VERSION: i64 = 2;

/// Every index table, emptied when the file starts over.
pub(super) const INDEX_TABLES: [&str; 5] = [
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

/// The entries of one index table for some rows of `rec.records`, or of `rec.deleted_records` (which has
/// the columns they are made of, under the same names).
struct Entries {
    /// The table.
    table: &'static str,
    /// Its columns, all of them its primary key.
    columns: &'static str,
    /// Whether an entry may be there already when added (`INSERT OR IGNORE`: a connection whose two ends
    /// have one address).
    repeats: bool,
    /// A `SELECT` of the entries of the rows, one column each.
    select: String,
}

/// The entries of every index table for `rows`: a table of `rec` followed by a `WHERE` clause.
fn entries(rows: &str) -> [Entries; 5] {
    let [path, pid, addr, flow, process] = INDEX_TABLES;
    [
        Entries {
            table: path,
            columns: "path, id",
            repeats: false,
            select: format!("SELECT path, id FROM {rows} AND path IS NOT NULL"),
        },
        Entries {
            table: pid,
            columns: "pid, id",
            repeats: false,
            select: format!("SELECT pid, id FROM {rows} AND pid IS NOT NULL"),
        },
        Entries {
            table: addr,
            columns: "addr, id",
            repeats: true,
            select: format!(
                "SELECT addr, id FROM (SELECT local_addr AS addr, id FROM {rows} AND local_addr IS NOT NULL \
                 UNION SELECT remote_addr, id FROM {rows} AND remote_addr IS NOT NULL)"
            ),
        },
        Entries {
            table: flow,
            columns: "addr, port, time_ns, id",
            repeats: false,
            select: format!(
                "SELECT {CLIENT_ADDR}, {CLIENT_PORT}, COALESCE(time_ns, 0), id FROM {rows} \
                 AND role IN ('connect', 'accept') AND local_addr IS NOT NULL AND local_port IS NOT NULL \
                 AND remote_addr IS NOT NULL AND remote_port IS NOT NULL"
            ),
        },
        Entries {
            table: process,
            columns: "host_id, pid, role, start_ns, time_ns, id",
            repeats: false,
            select: format!(
                "SELECT host_id, role_pid, role, role_start_ns, COALESCE(time_ns, 0), id FROM {rows} \
                 AND role IS NOT NULL AND role_pid IS NOT NULL AND role_start_ns IS NOT NULL"
            ),
        },
    ]
}

/// Per index table, the statement adding the entries of the records with ids in `?1 < id <= ?2`, sorted
/// like the table, so that each of its pages is visited once per chunk.
static INDEX: LazyLock<Vec<String>> = LazyLock::new(|| {
    entries("rec.records WHERE id > ?1 AND id <= ?2")
        .into_iter()
        .map(|e| {
            let count = e.columns.split(", ").count();
            let order: Vec<String> = (1..=count).map(|i| i.to_string()).collect();
            format!(
                "INSERT{or} INTO main.{table} ({columns}) {select} ORDER BY {order}",
                or = if e.repeats { " OR IGNORE" } else { "" },
                table = e.table,
                columns = e.columns,
                select = e.select,
                order = order.join(", "),
            )
        })
        .collect()
});

/// Per index table, the statement removing the entries of every record in `rec.deleted_records` (by its
/// primary key: a lookup per entry).
pub(super) static PURGE: LazyLock<Vec<String>> = LazyLock::new(|| {
    entries("rec.deleted_records WHERE 1")
        .into_iter()
        .map(|e| {
            format!(
                "DELETE FROM main.{} WHERE ({}) IN ({})",
                e.table, e.columns, e.select
            )
        })
        .collect()
});

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
    for sql in INDEX.iter() {
        tx.prepare_cached(sql)?.execute([upto, to])?;
    }
    tx.prepare_cached("UPDATE search_state SET upto = ?1 WHERE one = 1")?
        .execute([to])?;
    tx.commit()?;
    Ok(uint(to - upto))
}

/// Removes the entries of the records deleted since the last pass (those with a tombstone in
/// `rec.deleted_records`), then their tombstones; returns how many records it covered.
///
/// One transaction per file, the search file's first: a tombstone is dropped only once its record's entries
/// are gone, and if the second transaction never happens, the next pass removes the entries again, which
/// changes nothing. A record id is deleted at most once (ids are never given twice), so the tombstones
/// dropped are exactly the ones read, whatever the writer added meanwhile. This is the indexer's only write
/// to the records file, and there is one only after records were deleted.
pub(super) fn purge_deleted(conn: &Connection) -> Result<u64, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let ids = tx
        .prepare_cached("SELECT id FROM rec.deleted_records ORDER BY id")?
        .query_map([], |row| row.get::<_, i64>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Ok(0);
    }
    for sql in PURGE.iter() {
        tx.prepare_cached(sql)?.execute([])?;
    }
    tx.commit()?;
    let tx = conn.unchecked_transaction()?;
    {
        let mut drop = tx.prepare_cached("DELETE FROM rec.deleted_records WHERE id = ?1")?;
        for id in &ids {
            drop.execute([id])?;
        }
    }
    tx.commit()?;
    Ok(u64::try_from(ids.len()).unwrap_or(u64::MAX))
}
