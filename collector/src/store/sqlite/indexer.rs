//! The indexer: keeps the search file (`search.rs`) up to date on a thread and connection of its own, so
//! nothing above the store ever has to.
//!
//! A commit wakes it ([`Indexer::stored`]); it then removes the entries of records deleted since
//! ([`purge_deleted`]), and indexes whole chunks while at least a chunk's worth of records waits
//! ([`CHUNK_ROWS`]), so indexing keeps up with a busy writer in large sorted runs. Every [`INDEX_EVERY`] it
//! also indexes whatever is left, however little. Failures are logged and retried on the next wake: queries
//! are complete without the index, only slower.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::store::error::StoreError;
use crate::store::sqlite::search::{CHUNK_ROWS, index_chunk, purge_deleted};

/// How often the indexer indexes every record still waiting, however few.
pub(super) const INDEX_EVERY: Duration = Duration::from_secs(2);

/// What wakes the indexer thread.
#[derive(Debug, Default)]
struct Wake {
    /// The store is being dropped.
    stop: bool,
    /// A batch was committed since the last pass.
    stored: bool,
}

type Signal = (Mutex<Wake>, Condvar);

/// The running indexer; dropping it stops and joins its thread.
pub(super) struct Indexer {
    /// The search file's only writer connection (the records file attached as `rec`), shared with the
    /// thread so tests can index by hand.
    #[cfg(test)]
    conn: Arc<Mutex<Connection>>,
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
}

impl Indexer {
    /// Starts indexing with `conn` (from `search::open_indexer`): on a thread that also indexes everything
    /// every `every`; with `every` `None`, only when a test calls `Indexer::index_pending`.
    pub(super) fn start(conn: Connection, every: Option<Duration>) -> Result<Indexer, StoreError> {
        let conn = Arc::new(Mutex::new(conn));
        let signal = Arc::new(Signal::default());
        let thread = match every {
            None => None,
            Some(every) => Some(
                std::thread::Builder::new()
                    .name("sqlite-index".into())
                    .spawn({
                        let (conn, signal) = (Arc::clone(&conn), Arc::clone(&signal));
                        move || run(&conn, &signal, every)
                    })
                    .map_err(|e| StoreError::Database(format!("starting the indexer: {e}")))?,
            ),
        };
        Ok(Indexer {
            #[cfg(test)]
            conn,
            signal,
            thread,
        })
    }

    /// Tells the indexer that a batch was committed.
    pub(super) fn stored(&self) {
        let (wake, cond) = &*self.signal;
        lock(wake).stored = true;
        cond.notify_one();
    }

    /// Removes the entries of deleted records, then indexes the waiting records now, in chunks, while at
    /// least `min_rows` wait; returns how many records it indexed.
    #[cfg(test)]
    pub(super) fn index_pending(&self, min_rows: u64) -> Result<u64, StoreError> {
        index_pending(&self.conn, min_rows, || false)
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        let (wake, cond) = &*self.signal;
        lock(wake).stop = true;
        cond.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The entries of deleted records out first, then whole chunks while a chunk's worth waits; the rest only
/// when asked for fewer. Stops early when `stop` says so.
fn index_pending(
    conn: &Mutex<Connection>,
    min_rows: u64,
    stop: impl Fn() -> bool,
) -> Result<u64, StoreError> {
    let conn = lock(conn);
    let purged = purge_deleted(&conn)?;
    if purged > 0 {
        tracing::debug!(
            records = purged,
            "search entries of deleted records removed"
        );
    }
    let min_rows = min_rows.clamp(1, CHUNK_ROWS);
    let mut indexed = 0;
    while !stop() {
        let chunk = index_chunk(&conn, min_rows)?;
        if chunk == 0 {
            break;
        }
        indexed += chunk;
    }
    Ok(indexed)
}

fn run(conn: &Mutex<Connection>, signal: &Signal, every: Duration) {
    let (wake, cond) = signal;
    let mut full_pass_due = Instant::now() + every;
    loop {
        let guard = lock(wake);
        let wait = full_pass_due.saturating_duration_since(Instant::now());
        let (mut guard, _) = cond
            .wait_timeout_while(guard, wait, |w| !w.stop && !w.stored)
            .unwrap_or_else(PoisonError::into_inner);
        if guard.stop {
            return;
        }
        guard.stored = false;
        drop(guard);
        let min_rows = if Instant::now() >= full_pass_due {
            full_pass_due = Instant::now() + every;
            1
        } else {
            CHUNK_ROWS
        };
        if let Err(e) = index_pending(conn, min_rows, || lock(wake).stop) {
            tracing::warn!(error = %e, "search index not updated; will retry");
        }
    }
}
