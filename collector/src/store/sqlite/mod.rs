//! The SQLite store: the records file in WAL mode with one writer connection, a small pool of readers, a
//! checkpointer thread (`checkpoint.rs`), and the search index in a file of its own (`search.rs`) that an
//! indexer thread keeps up to date (`indexer.rs`).
//!
//! The schema and its migrations are in `schema.rs` (a host's record is one column per field,
//! `host_row.rs`; `legacy.rs` reads the JSON host state of older files; `rederive.rs` derives the searchable
//! columns of stored events again when a version adds some), writes in `write.rs` (a record's searchable
//! columns bind as `record_row.rs` says), queries in `read.rs` and, for the lineage walk, `lineage.rs`. Nothing SQLite-specific leaves this module: callers see only [`Store`].

mod checkpoint;
mod conn;
mod fleet;
mod holds;
mod host_row;
mod indexer;
mod legacy;
mod lineage;
pub(super) mod read;
mod record_row;
mod rederive;
mod schema;
mod search;
mod write;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use auditloop_journal::record::Hash;
use rusqlite::{Connection, OpenFlags};

use crate::alerts::NewAlert;
use crate::store::backend::Store;
use crate::store::commit::{Commit, Rejection};
use crate::store::error::StoreError;
use auditloop_protocol::api::holds::Verdict;

use crate::store::fleet::{AuditEntry, FleetAlert, FleetQuery, NewAuditEntry, StateChange};
use crate::store::holds::{HoldQuery, NewVerdict, StoredHold, VerdictOutcome};
use crate::store::host::{Enrollment, HostRecord, StoredHost};
use crate::store::lineage::{FlowQuery, ProcessQuery};
use crate::store::query::{AlertQuery, EventQuery, StoredAlert, StoredRecord};
use crate::store::sqlite::checkpoint::Checkpointer;
use crate::store::sqlite::conn::{named, open_wal};
use crate::store::sqlite::indexer::{INDEX_EVERY, Indexer};

/// Idle reader connections kept open.
const READERS_KEPT: usize = 4;

/// A collector database: the records file and its search file.
pub struct SqliteStore {
    path: PathBuf,
    search_path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Keeps the search file up to date.
    indexer: Indexer,
    /// Copies the log into the database file (the writer never does).
    _checkpointer: Checkpointer,
    /// Counts the writes live feeds follow ([`Store::changes`]).
    changes: tokio::sync::watch::Sender<u64>,
}

impl SqliteStore {
    /// Opens (creating it if needed) the database at `path`, and its search file beside it
    /// (`<name>.search.db`), migrating an older schema.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_indexing(path, Some(INDEX_EVERY))
    }

    /// Opens the database at `path` with its indexer thread indexing everything waiting every
    /// `index_every`, or, with `None`, without the thread (tests index by hand).
    pub(crate) fn open_indexing(
        path: &Path,
        index_every: Option<Duration>,
    ) -> Result<SqliteStore, StoreError> {
        let named = |e: rusqlite::Error| named(path, &e);
        let mut conn = open_wal(path)?;
        conn.execute_batch(
            "PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 0; \
             PRAGMA journal_size_limit = 67108864;",
        )
        .map_err(named)?;
        conn.set_prepared_statement_cache_capacity(64);
        schema::migrate(&mut conn).map_err(|e| match e {
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
            indexer: Indexer::start(indexer, index_every)?,
            _checkpointer: Checkpointer::start(path)?,
            changes: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Indexes the records waiting for the search index now, while at least `min_rows` wait; returns how
    /// many it indexed. The indexer thread does this by itself; tests call it to know where the index is.
    #[cfg(test)]
    pub(crate) fn index_pending(&self, min_rows: u64) -> Result<u64, StoreError> {
        self.indexer.index_pending(min_rows)
    }

    /// Tells live feeds that something they show changed.
    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
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
                conn.busy_timeout(Duration::from_secs(10))?;
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

impl Store for SqliteStore {
    fn host_record(&self, host: &str) -> Result<Option<HostRecord>, StoreError> {
        self.read(|conn| read::host_record(conn, host))
    }

    fn stored_hashes(
        &self,
        host: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, Hash)>, StoreError> {
        self.read(|conn| read::stored_hashes(conn, host, from, to))
    }

    fn enroll(&self, enrollment: &Enrollment<'_>) -> Result<(), StoreError> {
        write::enroll(&mut *self.writer()?, enrollment)
    }

    fn host_token(&self, host: &str) -> Result<Option<[u8; 32]>, StoreError> {
        self.read(|conn| read::host_token(conn, host))
    }

    fn token_owner(&self, digest: &[u8; 32]) -> Result<Option<String>, StoreError> {
        self.read(|conn| read::token_owner(conn, digest))
    }

    fn set_host_token(&self, host: &str, digest: &[u8; 32]) -> Result<bool, StoreError> {
        write::set_host_token(&mut *self.writer()?, host, digest)
    }

    fn commit(&self, commit: &Commit<'_>) -> Result<(), StoreError> {
        write::commit(&mut *self.writer()?, commit)?;
        self.indexer.stored();
        if commit.notifies() {
            self.changed();
        }
        Ok(())
    }

    fn reject(&self, rejection: &Rejection<'_>) -> Result<(), StoreError> {
        write::reject(&mut *self.writer()?, rejection)?;
        if !rejection.alerts.is_empty() {
            self.changed();
        }
        Ok(())
    }

    fn raise_silence(
        &self,
        host: &str,
        seen_before_ns: u64,
        alert: &NewAlert,
        now_ns: u64,
    ) -> Result<bool, StoreError> {
        let raised =
            write::raise_silence(&mut *self.writer()?, host, seen_before_ns, alert, now_ns)?;
        if raised {
            self.changed();
        }
        Ok(raised)
    }

    fn hosts(&self) -> Result<Vec<StoredHost>, StoreError> {
        self.read(|conn| read::hosts(conn, None))
    }

    fn host(&self, host: &str) -> Result<Option<StoredHost>, StoreError> {
        self.read(|conn| Ok(read::hosts(conn, Some(host))?.pop()))
    }

    fn records(&self, query: &EventQuery) -> Result<Vec<StoredRecord>, StoreError> {
        self.read(|conn| read::records(conn, query))
    }

    fn alerts(&self, query: &AlertQuery) -> Result<Vec<StoredAlert>, StoreError> {
        self.read(|conn| read::alerts(conn, query))
    }

    fn record(&self, host: &str, seq: u64) -> Result<Option<StoredRecord>, StoreError> {
        self.read(|conn| lineage::record(conn, host, seq))
    }

    fn process_records(&self, query: &ProcessQuery) -> Result<Vec<StoredRecord>, StoreError> {
        self.read(|conn| lineage::process_records(conn, query))
    }

    fn flow_records(&self, query: &FlowQuery) -> Result<Vec<StoredRecord>, StoreError> {
        self.read(|conn| lineage::flow_records(conn, query))
    }

    fn fleet_alerts(&self, query: &FleetQuery) -> Result<Vec<FleetAlert>, StoreError> {
        self.read(|conn| fleet::alerts(conn, query))
    }

    fn fleet_alert(&self, id: i64) -> Result<Option<FleetAlert>, StoreError> {
        self.read(|conn| fleet::alert(conn, id))
    }

    fn set_alert_state(&self, change: &StateChange<'_>) -> Result<Option<FleetAlert>, StoreError> {
        let changed = fleet::set_state(&mut *self.writer()?, change)?;
        self.changed();
        Ok(changed)
    }

    fn audit(&self, entry: &NewAuditEntry<'_>) -> Result<AuditEntry, StoreError> {
        fleet::audit(&mut *self.writer()?, entry)
    }

    fn audit_log(&self, target: Option<&str>) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(|conn| fleet::audit_log(conn, target))
    }

    fn loaded_rules(&self) -> Result<Vec<String>, StoreError> {
        self.read(holds::loaded_rules)
    }

    fn holds(&self, query: &HoldQuery) -> Result<Vec<StoredHold>, StoreError> {
        self.read(|conn| holds::holds(conn, query))
    }

    fn record_verdict(&self, verdict: &NewVerdict<'_>) -> Result<VerdictOutcome, StoreError> {
        let outcome = holds::record_verdict(&mut *self.writer()?, verdict)?;
        self.changed();
        Ok(outcome)
    }

    fn verdicts(&self, host: &str, after: i64) -> Result<Vec<Verdict>, StoreError> {
        self.read(|conn| holds::verdicts(conn, host, after))
    }

    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.changes.subscribe())
    }
}

#[cfg(test)]
mod tests;
