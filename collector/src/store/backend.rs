//! The [`Store`] trait: the operations every backend provides.

use auditloop_journal::record::Hash;

use crate::alerts::NewAlert;
use crate::store::commit::{Commit, Rejection};
use crate::store::error::StoreError;
use crate::store::host::{HostRecord, StoredHost};
use crate::store::query::{AlertQuery, EventQuery, StoredAlert, StoredRecord};

/// A collector database.
///
/// Every method blocks (it may wait for a disk or a network round trip): async callers run it in
/// `tokio::task::spawn_blocking`. Implementations are shared between threads (`Send + Sync`) and take care
/// of their own connections. Inputs are borrowed only for the call; results are owned. A backend keeps
/// its search structures up to date by itself: queries always see every committed record.
///
/// The behaviour every backend must show is spelled out, case by case, by `store::conformance` (run it
/// with `store_conformance!`, compiled for tests and with the collector's `conformance` feature).
pub trait Store: Send + Sync {
    /// The record of `host`; `None` for a host never stored.
    fn host_record(&self, host: &str) -> Result<Option<HostRecord>, StoreError>;

    /// Sequence numbers and hashes of the stored records of `host` numbered `from..=to`, in order (records
    /// not stored, such as those before an anchor, are left out).
    fn stored_hashes(&self, host: &str, from: u64, to: u64)
    -> Result<Vec<(u64, Hash)>, StoreError>;

    /// Stores a verified batch in one transaction: its records, checkpoints and alerts, the host's new
    /// record and status and its counters; marks the host seen and closes its silence alert. Fails with
    /// [`StoreError::Conflict`] when the host's `next_seq` is not [`Commit::expected_next_seq`] any more,
    /// and with another error when a record's sequence number is stored already for the host (a store never
    /// keeps a record twice); on any error nothing is stored.
    fn commit(&self, commit: &Commit<'_>) -> Result<(), StoreError>;

    /// Stores the alerts of a refused batch; for a stored host also sets its status (when given), marks it
    /// seen and closes its silence alert. Its record and counters stay as they were.
    fn reject(&self, rejection: &Rejection<'_>) -> Result<(), StoreError>;

    /// Opens a silence alert for `host` (stores `alert` and marks the host silent) when it has none open and
    /// was last seen before `seen_before_ns`; returns whether it did.
    fn raise_silence(
        &self,
        host: &str,
        seen_before_ns: u64,
        alert: &NewAlert,
        now_ns: u64,
    ) -> Result<bool, StoreError>;

    /// Every stored host, by name.
    fn hosts(&self) -> Result<Vec<StoredHost>, StoreError>;

    /// One stored host.
    fn host(&self, host: &str) -> Result<Option<StoredHost>, StoreError>;

    /// Records matching `query`, in ingest order (for one host that is sequence order), at most
    /// `query.limit`.
    fn records(&self, query: &EventQuery) -> Result<Vec<StoredRecord>, StoreError>;

    /// Alerts matching `query`, oldest first, at most `query.limit`.
    fn alerts(&self, query: &AlertQuery) -> Result<Vec<StoredAlert>, StoreError>;
}
