//! The PostgreSQL store: the same [`Store`] as SQLite's, over a database that several collector replicas
//! share.
//!
//! Replicas keep no state of their own: each batch is verified against the host's row as the database has
//! it, and committed with a compare-and-set on it (`write.rs`), so any replica may take any host's next
//! batch. The schema and its start-up migration are in `schema.rs` (a host's record is one column per
//! field, `host_row.rs`), the day partitions of `records` in `partitions.rs`, queries in `read.rs` and,
//! for the lineage walk, `lineage.rs`, fleet alerts and the audit log in `fleet.rs`, holds and verdicts in
//! `holds.rs`. Writes that others must see at once (fleet alerts, holds) send a notification on
//! [`order::CHANNEL`] when they commit; `listen.rs` turns those into [`Store::changes`] on every replica.
//!
//! The [`Store`] trait is blocking: the store runs the asynchronous client (`tokio-postgres`, pooled by
//! `deadpool-postgres`) on a small runtime of its own and waits for each call, so it may be called from
//! any thread, as the trait says (async callers use `spawn_blocking`).

mod conn;
mod fleet;
mod holds;
mod host_row;
mod lineage;
mod listen;
mod order;
mod partitions;
mod read;
mod schema;
mod write;

use std::collections::BTreeSet;
use std::future::Future;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use auditloop_journal::record::Hash;
use auditloop_protocol::api::holds::Verdict;
use deadpool_postgres::{Client, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::watch;

use crate::alerts::NewAlert;
use crate::store::backend::Store;
use crate::store::commit::{Commit, Rejection};
use crate::store::error::StoreError;
use crate::store::fleet::{AuditEntry, FleetAlert, FleetQuery, NewAuditEntry, StateChange};
use crate::store::holds::{HoldQuery, NewVerdict, StoredHold, VerdictOutcome};
use crate::store::host::{Enrollment, HostRecord, StoredHost};
use crate::store::lineage::{FlowQuery, ProcessQuery};
use crate::store::query::{AlertQuery, EventQuery, StoredAlert, StoredRecord};

/// Connections each replica keeps at most.
const POOL_SIZE: usize = 16;
/// How long a call waits for a free connection, or for a new one to open, before it fails.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// The SQLSTATE of a row that no partition takes (`check_violation`), as errors begin.
const NO_PARTITION: &str = "23514:";

/// Whether `db` names a PostgreSQL database (`postgres://…` or `postgresql://…`) rather than a SQLite file.
pub fn is_postgres_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// A collector database on a PostgreSQL server.
pub struct PgStore {
    /// Runs the client; `None` only while being dropped.
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    /// The days known to have a partition.
    days: Mutex<BTreeSet<u64>>,
    changes: watch::Receiver<u64>,
    /// The server as errors name it (the URL without its password).
    shown: String,
}

impl PgStore {
    /// Connects to the database at `url` (a libpq-style URL, `postgres://user@host:port/dbname`), creating
    /// the schema in an empty database or checking the version of an existing one, and making today's and
    /// tomorrow's partitions.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Database(format!("database URL: {e}")))?;
        let shown = shown(&config);
        // `CREATE ... IF NOT EXISTS` on a schema another replica made is not worth a log line; options the
        // URL gives come after, and win.
        let options = match config.get_options() {
            Some(given) => format!("-c client_min_messages=warning {given}"),
            None => "-c client_min_messages=warning".to_owned(),
        };
        config
            .application_name("auditloop-collector")
            .connect_timeout(CONNECT_WAIT)
            .options(&options);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Database(format!("starting the database runtime: {e}")))?;
        let manager = Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_WAIT))
            .create_timeout(Some(CONNECT_WAIT))
            .recycle_timeout(Some(CONNECT_WAIT))
            .build()
            .map_err(|e| StoreError::Database(format!("{shown}: connection pool: {e}")))?;
        let (tx, changes) = watch::channel(0);
        rt.spawn(listen::run(config, tx));
        let store = PgStore {
            rt: Some(rt),
            pool,
            days: Mutex::new(BTreeSet::new()),
            changes,
            shown,
        };
        store
            .run(async {
                let mut client = store.client().await?;
                schema::migrate(&mut client).await
            })
            .map_err(|e| store.named(e))?;
        let today = partitions::today();
        store.ensure_day(today)?;
        store.ensure_day(today + 1)?;
        Ok(store)
    }

    /// Runs `f` on the store's runtime and waits for it.
    fn run<T>(&self, f: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        let Some(rt) = &self.rt else {
            return Err(StoreError::Database("the store is closing".into()));
        };
        let _context = rt.enter();
        futures_executor::block_on(f)
    }

    /// A pooled connection.
    async fn client(&self) -> Result<Client, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// `e`, naming the server.
    fn named(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Database(why) => StoreError::Database(format!("{}: {why}", self.shown)),
            other => other,
        }
    }

    /// Makes the partition of `day` unless it is known to exist.
    fn ensure_day(&self, day: u64) -> Result<(), StoreError> {
        let known = self
            .days
            .lock()
            .map_err(|_| StoreError::Database("partition list lock poisoned".into()))?
            .contains(&day);
        if known {
            return Ok(());
        }
        self.run(async {
            let mut client = self.client().await?;
            partitions::ensure(&mut client, day).await
        })
        .map_err(|e| self.named(e))?;
        if let Ok(mut days) = self.days.lock() {
            days.insert(day);
        }
        Ok(())
    }

    /// Drops the partitions of `records` of the days (UTC, of when the records were stored) before the one
    /// of `before_ns`: retention, whole days at a time. Returns how many days were dropped.
    pub fn drop_stored_before(&self, before_ns: u64) -> Result<usize, StoreError> {
        let day = partitions::day_of(before_ns);
        let dropped = self.run(async {
            let mut client = self.client().await?;
            partitions::drop_before(&mut client, day).await
        })?;
        if let Ok(mut days) = self.days.lock() {
            days.retain(|d| *d >= day);
        }
        Ok(dropped.len())
    }

    /// The days (since the Unix epoch) that have a partition, oldest first.
    pub fn partition_days(&self) -> Result<Vec<u64>, StoreError> {
        self.run(async { partitions::days(&self.client().await?).await })
    }
}

/// The server and database `url` names, without credentials (the URL itself when it does not parse).
pub(super) fn shown_url(url: &str) -> String {
    tokio_postgres::Config::from_str(url)
        .map_or_else(|_| "postgres://(unparsable URL)".into(), |c| shown(&c))
}

/// The server and database `config` names, without credentials.
fn shown(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("");
    format!("postgres://{host}:{port}/{db}")
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime waits for its tasks, which is refused inside another runtime.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Store for PgStore {
    fn host_record(&self, host: &str) -> Result<Option<HostRecord>, StoreError> {
        self.run(async { read::host_record(&self.client().await?, host).await })
    }

    fn stored_hashes(
        &self,
        host: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, Hash)>, StoreError> {
        self.run(async { read::stored_hashes(&self.client().await?, host, from, to).await })
    }

    fn enroll(&self, enrollment: &Enrollment<'_>) -> Result<(), StoreError> {
        self.run(async { write::enroll(&mut self.client().await?, enrollment).await })
    }

    fn host_token(&self, host: &str) -> Result<Option<[u8; 32]>, StoreError> {
        self.run(async { read::host_token(&self.client().await?, host).await })
    }

    fn token_owner(&self, digest: &[u8; 32]) -> Result<Option<String>, StoreError> {
        self.run(async { read::token_owner(&self.client().await?, digest).await })
    }

    fn set_host_token(&self, host: &str, digest: &[u8; 32]) -> Result<bool, StoreError> {
        self.run(async { write::set_host_token(&self.client().await?, host, digest).await })
    }

    fn commit(&self, commit: &Commit<'_>) -> Result<(), StoreError> {
        let day = partitions::day_of(commit.now_ns);
        self.ensure_day(day)?;
        match self.run(async { write::commit(&mut self.client().await?, commit).await }) {
            // The day's partition is gone (another replica's retention dropped it): make it again, once.
            Err(StoreError::Database(why)) if why.starts_with(NO_PARTITION) => {
                if let Ok(mut days) = self.days.lock() {
                    days.remove(&day);
                }
                self.ensure_day(day)?;
                self.run(async { write::commit(&mut self.client().await?, commit).await })
            }
            other => other,
        }
    }

    fn reject(&self, rejection: &Rejection<'_>) -> Result<(), StoreError> {
        self.run(async { write::reject(&mut self.client().await?, rejection).await })
    }

    fn raise_silence(
        &self,
        host: &str,
        seen_before_ns: u64,
        alert: &NewAlert,
        now_ns: u64,
    ) -> Result<bool, StoreError> {
        self.run(async {
            write::raise_silence(
                &mut self.client().await?,
                host,
                seen_before_ns,
                alert,
                now_ns,
            )
            .await
        })
    }

    fn hosts(&self) -> Result<Vec<StoredHost>, StoreError> {
        self.run(async { read::hosts(&self.client().await?, None).await })
    }

    fn host(&self, host: &str) -> Result<Option<StoredHost>, StoreError> {
        self.run(async { Ok(read::hosts(&self.client().await?, Some(host)).await?.pop()) })
    }

    fn records(&self, query: &EventQuery) -> Result<Vec<StoredRecord>, StoreError> {
        self.run(async { read::records(&self.client().await?, query).await })
    }

    fn alerts(&self, query: &AlertQuery) -> Result<Vec<StoredAlert>, StoreError> {
        self.run(async { read::alerts(&self.client().await?, query).await })
    }

    fn record(&self, host: &str, seq: u64) -> Result<Option<StoredRecord>, StoreError> {
        self.run(async { lineage::record(&self.client().await?, host, seq).await })
    }

    fn process_records(&self, query: &ProcessQuery) -> Result<Vec<StoredRecord>, StoreError> {
        self.run(async { lineage::process_records(&self.client().await?, query).await })
    }

    fn flow_records(&self, query: &FlowQuery) -> Result<Vec<StoredRecord>, StoreError> {
        self.run(async { lineage::flow_records(&self.client().await?, query).await })
    }

    fn fleet_alerts(&self, query: &FleetQuery) -> Result<Vec<FleetAlert>, StoreError> {
        self.run(async { fleet::alerts(&self.client().await?, query).await })
    }

    fn fleet_alert(&self, id: i64) -> Result<Option<FleetAlert>, StoreError> {
        self.run(async { fleet::alert(&self.client().await?, id).await })
    }

    fn set_alert_state(&self, change: &StateChange<'_>) -> Result<Option<FleetAlert>, StoreError> {
        self.run(async { fleet::set_state(&mut self.client().await?, change).await })
    }

    fn audit(&self, entry: &NewAuditEntry<'_>) -> Result<AuditEntry, StoreError> {
        self.run(async { fleet::audit(&mut self.client().await?, entry).await })
    }

    fn audit_log(&self, target: Option<&str>) -> Result<Vec<AuditEntry>, StoreError> {
        self.run(async { fleet::audit_log(&self.client().await?, target).await })
    }

    fn loaded_rules(&self) -> Result<Vec<String>, StoreError> {
        self.run(async { holds::loaded_rules(&self.client().await?).await })
    }

    fn holds(&self, query: &HoldQuery) -> Result<Vec<StoredHold>, StoreError> {
        self.run(async { holds::holds(&self.client().await?, query).await })
    }

    fn record_verdict(&self, verdict: &NewVerdict<'_>) -> Result<VerdictOutcome, StoreError> {
        self.run(async { holds::record_verdict(&mut self.client().await?, verdict).await })
    }

    fn verdicts(&self, host: &str, after: i64) -> Result<Vec<Verdict>, StoreError> {
        self.run(async { holds::verdicts(&self.client().await?, host, after).await })
    }

    fn changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.changes.clone())
    }
}

#[cfg(test)]
mod tests;
