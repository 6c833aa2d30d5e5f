//! The SQLite store: the records file in WAL mode with one writer connection, a small pool of readers and
//! a checkpointer thread (`checkpoint.rs`), and the search index in a file of its own (`search.rs`).
//!
//! Each batch is one `IMMEDIATE` transaction of cached prepared statements; a host's row is updated with a
//! compare-and-set on its next sequence number, so two writers can never both extend the same chain state.
//! The schema is in [`SCHEMA`]; queries are in `read.rs`.
mod checkpoint;
mod read;
mod search;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::{Commit, HostStatus, Rejection, StoreError};
use crate::alerts::NewAlert;

/// Schema version kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 2;

/// Tables and indexes.
const SCHEMA: &str = "
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

/// Schema version 1 indexed path and pid per row; version 2 indexes them in the search file instead.
const MIGRATE_1_TO_2: &str = "
DROP INDEX IF EXISTS records_pid;
DROP INDEX IF EXISTS records_path;
";

/// The database's identity (version 2), which the search file checks it indexes.
const META: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('db_id', lower(hex(randomblob(16))));
";

/// Idle reader connections kept open.
const READERS_KEPT: usize = 4;

/// A collector database: the records file and its search file.
pub struct SqliteStore {
    path: PathBuf,
    search_path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// The search file's only writer; held while indexing, so one caller indexes and the others return.
    indexer: Mutex<Connection>,
    /// Copies the log into the database file (the writer never does).
    _checkpointer: checkpoint::Checkpointer,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Database(e.to_string())
    }
}

impl SqliteStore {
    /// Opens (creating it if needed) the database at `path`, and its search file beside it
    /// (`<name>.search.db`).
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let named = |e: rusqlite::Error| named(path, &e);
        let conn = open_wal(path)?;
        conn.execute_batch(
            "PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 0; \
             PRAGMA journal_size_limit = 67108864;",
        )
        .map_err(named)?;
        conn.set_prepared_statement_cache_capacity(64);
        migrate(&conn).map_err(|e| match e {
            StoreError::Database(why) => StoreError::Database(format!("{}: {why}", path.display())),
            other => other,
        })?;
        let db_id: String = conn
            .query_row("SELECT value FROM meta WHERE key = 'db_id'", [], |row| {
                row.get(0)
            })
            .map_err(named)?;
        let search_path = search::path_beside(path);
        let indexer = search::open_indexer(&search_path, path, &db_id)?;
        Ok(SqliteStore {
            path: path.to_owned(),
            search_path,
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            indexer: Mutex::new(indexer),
            _checkpointer: checkpoint::Checkpointer::start(path)?,
        })
    }

    fn writer(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.writer
            .lock()
            .map_err(|_| StoreError::Database("writer connection lock poisoned".into()))
    }

    /// Runs `f` on an idle reader connection (opening one when none is idle).
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self
            .readers
            .lock()
            .map_err(|_| StoreError::Database("reader pool lock poisoned".into()))?
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags(&self.path, flags)?;
                conn.busy_timeout(std::time::Duration::from_secs(10))?;
                conn.set_prepared_statement_cache_capacity(64);
                search::attach(&conn, &self.search_path)?;
                conn
            }
        };
        let out = f(&conn);
        if let Ok(mut readers) = self.readers.lock()
            && readers.len() < READERS_KEPT
        {
            readers.push(conn);
        }
        out
    }
}

/// A database error that names the file `path` (once).
fn named(path: &Path, e: &rusqlite::Error) -> StoreError {
    let why = e.to_string();
    let shown = path.display().to_string();
    StoreError::Database(if why.contains(&shown) {
        why
    } else {
        format!("{shown}: {why}")
    })
}

/// Opens (creating it if needed) the database file at `path` in WAL mode with `synchronous = NORMAL`,
/// temporary tables in memory, and 8 KiB pages: records of a few hundred bytes split pages less often
/// (measured: about 30% faster ingest than 4 KiB). The page size only takes effect when the file is
/// created.
fn open_wal(path: &Path) -> Result<Connection, StoreError> {
    let named = |e: rusqlite::Error| named(path, &e);
    let conn = Connection::open(path).map_err(named)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(named)?;
    conn.execute_batch("PRAGMA page_size = 8192;")
        .map_err(named)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(named)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Database(format!(
            "{}: cannot use WAL mode (journal_mode is {mode})",
            path.display()
        )));
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;")
        .map_err(named)?;
    Ok(conn)
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    match version {
        0 => {
            conn.execute_batch(&format!(
                "BEGIN; {SCHEMA} {META} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))?;
            Ok(())
        }
        1 => {
            // The search file starts empty and catches up in chunks.
            conn.execute_batch(&format!(
                "BEGIN; {MIGRATE_1_TO_2} {META} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))?;
            Ok(())
        }
        SCHEMA_VERSION => Ok(()),
        other => Err(StoreError::Database(format!(
            "schema version {other} is not supported by this collector (it knows version {SCHEMA_VERSION})"
        ))),
    }
}

/// A `u64` as an SQLite integer (values above `i64::MAX` never reach the store; they saturate).
pub(crate) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// An SQLite integer as a `u64` (negative values read as 0).
pub(crate) fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Columns bound per stored record.
const RECORD_COLUMNS: usize = 10;
/// Records inserted by one statement (fewer statement executions per batch).
const ROWS_PER_INSERT: usize = 64;

/// `INSERT INTO records` of `rows` rows.
fn insert_records_sql(rows: usize) -> String {
    let row = format!("({})", ["?"; RECORD_COLUMNS].join(", "));
    format!(
        "INSERT INTO records (host_id, seq, hash, kind, time_ns, pid, path, summary, payload, stored_ns) VALUES {}",
        vec![row; rows].join(", ")
    )
}

/// Binds one record's columns after the first `offset` parameters.
fn bind_record(
    stmt: &mut rusqlite::CachedStatement<'_>,
    offset: usize,
    host_id: i64,
    r: &crate::ingest::NewRecord<'_>,
    now: i64,
) -> Result<(), StoreError> {
    let at = |i: usize| offset + i;
    stmt.raw_bind_parameter(at(1), host_id)?;
    stmt.raw_bind_parameter(at(2), int(r.seq))?;
    stmt.raw_bind_parameter(at(3), &r.hash[..])?;
    stmt.raw_bind_parameter(at(4), r.kind)?;
    stmt.raw_bind_parameter(at(5), r.columns.time_ns.map(int))?;
    stmt.raw_bind_parameter(at(6), r.columns.pid)?;
    stmt.raw_bind_parameter(at(7), r.columns.path.as_deref())?;
    stmt.raw_bind_parameter(at(8), r.columns.summary.as_deref())?;
    stmt.raw_bind_parameter(at(9), r.payload)?;
    stmt.raw_bind_parameter(at(10), now)?;
    Ok(())
}

fn insert_alerts(
    tx: &rusqlite::Transaction<'_>,
    host: &str,
    alerts: &[NewAlert],
    now: i64,
) -> Result<(), StoreError> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO alerts (host, kind, time_ns, seq, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for alert in alerts {
        insert.execute(params![
            host,
            alert.kind.as_str(),
            now,
            alert.seq.map(int),
            alert.detail.to_string()
        ])?;
    }
    Ok(())
}

impl super::Store for SqliteStore {
    fn index_pending(&self, min_rows: u64) -> Result<u64, StoreError> {
        let Ok(conn) = self.indexer.try_lock() else {
            return Ok(0);
        };
        // Whole chunks while a chunk's worth waits; the rest only when asked for fewer.
        let min_rows = min_rows.clamp(1, search::CHUNK_ROWS);
        let mut indexed = 0;
        loop {
            let chunk = search::index_chunk(&conn, min_rows)?;
            if chunk == 0 {
                return Ok(indexed);
            }
            indexed += chunk;
        }
    }

    fn host_state(&self, host: &str) -> Result<Option<crate::ingest::HostState>, StoreError> {
        self.read(|conn| read::host_state(conn, host))
    }

    fn stored_hashes(
        &self,
        host: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, auditloop_journal::record::Hash)>, StoreError> {
        self.read(|conn| read::stored_hashes(conn, host, from, to))
    }

    fn commit(&self, c: &Commit<'_>) -> Result<(), StoreError> {
        let v = c.verified;
        let state =
            serde_json::to_string(&v.state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let status = HostStatus::of(&v.state).as_str();
        let now = int(c.now_ns);
        let checkpoint_ns = (!v.checkpoints.is_empty()).then_some(now);
        let (records, events, duplicates) = (
            int(v.records.len() as u64),
            int(v.events),
            int(v.duplicates),
        );
        let mut conn = self.writer()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let host_id: Option<i64> = match c.expected_next_seq {
            None => tx
                .prepare_cached(
                    "INSERT INTO hosts (name, state, next_seq, status, records, events, duplicates, batches, \
                     created_ns, last_seen_ns, last_checkpoint_ns) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?8, ?9) \
                     ON CONFLICT (name) DO NOTHING RETURNING id",
                )?
                .query_row(
                    params![c.host, state, int(v.next_seq()), status, records, events, duplicates, now, checkpoint_ns],
                    |row| row.get(0),
                )
                .optional()?,
            Some(expected) => tx
                .prepare_cached(
                    "UPDATE hosts SET state = ?2, next_seq = ?3, status = ?4, records = records + ?5, \
                     events = events + ?6, duplicates = duplicates + ?7, batches = batches + 1, \
                     last_seen_ns = ?8, last_checkpoint_ns = COALESCE(?9, last_checkpoint_ns), \
                     silence_alerted = 0 WHERE name = ?1 AND next_seq = ?10 RETURNING id",
                )?
                .query_row(
                    params![
                        c.host, state, int(v.next_seq()), status, records, events, duplicates, now,
                        checkpoint_ns, int(expected)
                    ],
                    |row| row.get(0),
                )
                .optional()?,
        };
        let Some(host_id) = host_id else {
            return Err(StoreError::Conflict(c.host.to_owned()));
        };
        {
            let mut one = tx.prepare_cached(&insert_records_sql(1))?;
            let mut many = tx.prepare_cached(&insert_records_sql(ROWS_PER_INSERT))?;
            for chunk in v.records.chunks(ROWS_PER_INSERT) {
                if chunk.len() == ROWS_PER_INSERT {
                    for (i, r) in chunk.iter().enumerate() {
                        bind_record(&mut many, i * RECORD_COLUMNS, host_id, r, now)?;
                    }
                    many.raw_execute()?;
                } else {
                    for r in chunk {
                        bind_record(&mut one, 0, host_id, r, now)?;
                        one.raw_execute()?;
                    }
                }
            }
            let mut insert = tx.prepare_cached(
                "INSERT INTO checkpoints (host_id, seq, epoch, head_seq, stored_ns) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for cp in &v.checkpoints {
                insert.execute(params![
                    host_id,
                    int(cp.seq),
                    int(cp.epoch),
                    int(cp.head_seq),
                    now
                ])?;
            }
        }
        insert_alerts(&tx, c.host, &v.alerts, now)?;
        tx.commit()?;
        Ok(())
    }

    fn reject(&self, r: &Rejection<'_>) -> Result<(), StoreError> {
        let now = int(r.now_ns);
        let mut conn = self.writer()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached(
            "UPDATE hosts SET status = COALESCE(?2, status), last_seen_ns = ?3, silence_alerted = 0 \
             WHERE name = ?1",
        )?
        .execute(params![r.host, r.status.map(HostStatus::as_str), now])?;
        insert_alerts(&tx, r.host, r.alerts, now)?;
        tx.commit()?;
        Ok(())
    }

    fn raise_silence(
        &self,
        host: &str,
        seen_before_ns: u64,
        alert: &NewAlert,
        now_ns: u64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.writer()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = tx
            .prepare_cached(
                "UPDATE hosts SET silence_alerted = 1 \
                 WHERE name = ?1 AND silence_alerted = 0 AND last_seen_ns < ?2",
            )?
            .execute(params![host, int(seen_before_ns)])?;
        if changed == 1 {
            insert_alerts(&tx, host, std::slice::from_ref(alert), int(now_ns))?;
        }
        tx.commit()?;
        Ok(changed == 1)
    }

    fn hosts(&self) -> Result<Vec<super::HostSummary>, StoreError> {
        self.read(|conn| read::hosts(conn, None))
    }

    fn host(&self, host: &str) -> Result<Option<super::HostSummary>, StoreError> {
        self.read(|conn| Ok(read::hosts(conn, Some(host))?.pop()))
    }

    fn records(&self, query: &super::EventQuery) -> Result<Vec<super::StoredRecord>, StoreError> {
        self.read(|conn| read::records(conn, query))
    }

    fn alerts(&self, query: &super::AlertQuery) -> Result<Vec<super::StoredAlert>, StoreError> {
        self.read(|conn| read::alerts(conn, query))
    }
}

#[cfg(test)]
mod tests;
