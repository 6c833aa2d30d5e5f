//! Where verified records, checkpoints, host records and alerts are kept.
//!
//! [`Store`] is the collector's only view of its database, so backends can be swapped: [`SqliteStore`] is
//! the default, and [`PgStore`] keeps the same on a PostgreSQL server that several collector replicas share;
//! both prove it with the conformance suite (`store::conformance`, compiled for tests and with the `conformance` feature). The
//! store defines its own types for everything it keeps and returns ([`HostRecord`], [`Commit`],
//! [`StoredRecord`], …); it never judges records (it keeps what ingest verified, one batch per
//! transaction, all or nothing, and tells verified records from pending ones by the host's last checkpoint)
//! and knows nothing of ingest or HTTP. Hosts exist only once enrolled; a host's token is kept as a digest.
//!
//! Layout: the types in `host.rs`, `commit.rs`, `query.rs`, `lineage.rs` and `error.rs`, the trait in
//! `backend.rs`, the searchable columns derived from payloads in `columns.rs` (by ingest for new records, by
//! a backend's migrations for old ones), the SQLite backend in `sqlite/`, the PostgreSQL backend in `postgres/`, the backend-agnostic test suite in
//! `conformance/`.

mod backend;
pub mod columns;
mod commit;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod error;
mod fleet;
mod holds;
mod host;
mod host_columns;
mod lineage;
mod postgres;
mod query;
mod sqlite;

pub use backend::Store;
pub use commit::{Commit, NewCheckpoint, NewRecord, RecordKind, Rejection, SearchColumns};
pub use error::StoreError;
pub use fleet::{
    AuditEntry, Finding, FleetAction, FleetAlert, FleetQuery, NewAuditEntry, StateChange,
    audit_hash, chain_severity,
};
pub use holds::{HoldQuery, HoldReport, NewVerdict, StoredHold, VerdictOutcome};
pub use host::{CheckpointPoint, Enrollment, HostRecord, StoredHost, replaced_name};
pub use lineage::{
    Endpoint, FlowQuery, FlowSide, LineageKey, LineageRole, ProcessQuery, normalize_address,
};
pub use postgres::{PgStore, is_postgres_url};
pub use query::{AlertQuery, EventQuery, PathFilter, StoredAlert, StoredRecord};
pub use sqlite::SqliteStore;

/// Opens the database `db` names: a PostgreSQL URL ([`is_postgres_url`]) or a SQLite file (created if
/// missing).
pub fn open(db: &std::path::Path) -> Result<Box<dyn Store>, StoreError> {
    match db.to_str() {
        Some(url) if is_postgres_url(url) => Ok(Box::new(PgStore::connect(url)?)),
        Some(_) | None => Ok(Box::new(SqliteStore::open(db)?)),
    }
}

/// `db` as logs may show it: a PostgreSQL URL without its password, or the file's path.
pub fn shown(db: &std::path::Path) -> String {
    match db.to_str() {
        Some(url) if is_postgres_url(url) => postgres::shown_url(url),
        Some(_) | None => db.display().to_string(),
    }
}
