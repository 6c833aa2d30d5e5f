//! Opening SQLite connections the way every part of the store needs them, and the conversions between
//! SQLite values and the store's.

use std::path::Path;

use rusqlite::Connection;

use crate::store::error::StoreError;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        match e {
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::InvalidColumnType(..) => StoreError::Corrupt(e.to_string()),
            other => StoreError::Database(other.to_string()),
        }
    }
}

/// A database error that names the file `path` (once).
pub(super) fn named(path: &Path, e: &rusqlite::Error) -> StoreError {
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
pub(super) fn open_wal(path: &Path) -> Result<Connection, StoreError> {
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

/// A `u64` as an SQLite integer (values above `i64::MAX` never reach the store; they saturate).
pub(super) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// An SQLite integer as a `u64` (negative values read as 0).
pub(super) fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
