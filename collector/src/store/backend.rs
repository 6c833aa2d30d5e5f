//! The [`Store`] trait: the operations every backend provides.

use auditloop_journal::record::Hash;

use crate::alerts::NewAlert;
use crate::store::commit::{Commit, Rejection};
use auditloop_protocol::api::holds::Verdict;

use crate::store::error::StoreError;
use crate::store::fleet::{AuditEntry, FleetAlert, FleetQuery, NewAuditEntry, StateChange};
use crate::store::holds::{HoldQuery, NewVerdict, StoredHold, VerdictOutcome};
use crate::store::host::{Enrollment, HostRecord, StoredHost};
use crate::store::lineage::{FlowQuery, ProcessQuery};
use crate::store::query::{AlertQuery, EventQuery, StoredAlert, StoredRecord};

/// A collector database.
///
/// Every method blocks (it may wait for a disk or a network round trip): async callers run it in
/// `tokio::task::spawn_blocking`. Implementations are shared between threads (`Send + Sync`) and take care
/// of their own connections. Inputs are borrowed only for the call; results are owned. A backend keeps
/// its search structures up to date by itself: queries always see every committed record.
///
/// Hosts exist only once enrolled ([`Store::enroll`]): nothing else creates one. A stored record is
/// *verified* when its sequence number is at most its host record's `last_checkpoint_seq`, and *pending*
/// otherwise. Alerts are kept one per host and kind: raising one again counts it.
///
/// The behaviour every backend must show is spelled out, case by case, by `store::conformance` (run it
/// with `store_conformance!`, compiled for tests and with the collector's `conformance` feature).
pub trait Store: Send + Sync {
    /// The record of `host`; `None` for a host never enrolled.
    fn host_record(&self, host: &str) -> Result<Option<HostRecord>, StoreError>;

    /// Sequence numbers and hashes of the stored records of `host` numbered `from..=to`, in order (records
    /// not stored, such as those before an anchor, are left out).
    fn stored_hashes(&self, host: &str, from: u64, to: u64)
    -> Result<Vec<(u64, Hash)>, StoreError>;

    /// Enrolls a host: stores it with status `enrolled`, the record of a host that shipped nothing
    /// ([`HostRecord::enrolled`]) and its token digest. Fails with [`StoreError::HostExists`] when the host
    /// is stored and `replace` is not set; with `replace`, the stored host (its records, checkpoints and
    /// counters) is renamed to [`replaced_name`](crate::store::replaced_name), given status `replaced` and
    /// no token, and the host is enrolled anew. One transaction.
    fn enroll(&self, enrollment: &Enrollment<'_>) -> Result<(), StoreError>;

    /// The token digest of `host`, if it has one.
    fn host_token(&self, host: &str) -> Result<Option<[u8; 32]>, StoreError>;

    /// The host whose token has `digest`, if any.
    fn token_owner(&self, digest: &[u8; 32]) -> Result<Option<String>, StoreError>;

    /// Gives the stored `host` (not a replaced one) the token `digest`, replacing the one it had; returns
    /// whether the host exists.
    fn set_host_token(&self, host: &str, digest: &[u8; 32]) -> Result<bool, StoreError>;

    /// Stores a verified batch in one transaction: its records (after deleting the pending records it
    /// replaces, [`Commit::replace_from`]), checkpoints and alerts, the host's new record and status and its
    /// counters; with a new checkpoint, marks the host seen and closes its silence alert. Fails with [`StoreError::Conflict`] when the host is not stored, or its `next_seq` or
    /// enrolled key is not the one the batch was verified against any more, and with another error when a
    /// record's sequence number is stored already for the host (a store never keeps a record twice); on
    /// any error nothing is stored.
    fn commit(&self, commit: &Commit<'_>) -> Result<(), StoreError>;

    /// Stores the alerts of a refused batch. Nothing else changes: not the host's record, status,
    /// counters, last contact nor silence.
    fn reject(&self, rejection: &Rejection<'_>) -> Result<(), StoreError>;

    /// Opens a silence alert for `host` (stores `alert` and marks the host silent) when it has none open,
    /// was seen at all, and was last seen before `seen_before_ns`; returns whether it did. Replaced hosts
    /// are never silent.
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
    /// `query.limit`; verified ones only unless `query.pending`. Ids are never given twice, so paging
    /// `after` the last id of a page lists every record once, even when records were deleted meanwhile.
    fn records(&self, query: &EventQuery) -> Result<Vec<StoredRecord>, StoreError>;

    /// Alerts matching `query`, by id (least recently raised first), at most `query.limit`.
    fn alerts(&self, query: &AlertQuery) -> Result<Vec<StoredAlert>, StoreError>;

    /// The stored record `seq` of `host`, verified or pending (its `verified` says which); `None` when it is
    /// not stored.
    fn record(&self, host: &str, seq: u64) -> Result<Option<StoredRecord>, StoreError>;

    /// The records whose lineage key has `query`'s role and names its process (its host, its pid and a
    /// start time in its range), with an event time in its range: newest event first (then highest seq),
    /// at most `query.limit`; verified ones only unless `query.pending`. An index lookup, whatever the
    /// number of records the host or pid has.
    fn process_records(&self, query: &ProcessQuery) -> Result<Vec<StoredRecord>, StoreError>;

    /// The connects or accepts (`query.side`) of any host (or of `query.host`) whose client end is
    /// `query.client` (and server end `query.server`, when given), with an event time in `since_ns..=through_ns`: oldest first (then
    /// by id), at most `query.limit`; verified ones only unless `query.pending`. An index lookup.
    fn flow_records(&self, query: &FlowQuery) -> Result<Vec<StoredRecord>, StoreError>;

    /// Fleet alerts matching `query`: rule alerts (one per stored `alert` event, with the actions of its
    /// trigger and rule) and chain alerts (one per host and kind) alike. Newest first (by id), or, with
    /// `query.after`, every alert written after that revision in revision order; at most `query.limit`.
    /// A commit lists its rule alerts and actions in its own transaction; replacing pending records drops
    /// theirs; a chain alert raised again counts, and reopens when it was resolved.
    fn fleet_alerts(&self, query: &FleetQuery) -> Result<Vec<FleetAlert>, StoreError>;

    /// The fleet alert `id`.
    fn fleet_alert(&self, id: i64) -> Result<Option<FleetAlert>, StoreError>;

    /// Moves the fleet alert `change.id` to `change.state` (a new revision), recording who, when and why,
    /// and appends the change to the audit log (action `alert_state`, target `alert:<id>`) in the same
    /// transaction. `None` (and nothing written) when there is no such alert.
    fn set_alert_state(&self, change: &StateChange<'_>) -> Result<Option<FleetAlert>, StoreError>;

    /// Appends `entry` to the audit log, chained to the last entry by [`audit_hash`](crate::store::audit_hash).
    fn audit(&self, entry: &NewAuditEntry<'_>) -> Result<AuditEntry, StoreError>;

    /// The audit log, oldest first; only the entries about `target` when given.
    fn audit_log(&self, target: Option<&str>) -> Result<Vec<AuditEntry>, StoreError>;

    /// The rule names hosts reported loading (from `rules_loaded` events), each once, by name.
    fn loaded_rules(&self) -> Result<Vec<String>, StoreError>;

    /// Holds matching `query`, newest request first: one per host and hold id, with the latest state its
    /// `hold` events reported (a commit updates them in its transaction; replacing pending records does
    /// not forget a hold) and the verdict recorded, if any.
    fn holds(&self, query: &HoldQuery) -> Result<Vec<StoredHold>, StoreError>;

    /// Records a verdict on a waiting hold, once: a second verdict, a hold the host reported an outcome
    /// for, or an unknown hold records nothing (the outcome says which). A recorded verdict gets the next
    /// verdict id and is appended to the audit log (action `hold_verdict`, target `hold:<host>:<id>`) in the
    /// same transaction.
    fn record_verdict(&self, verdict: &NewVerdict<'_>) -> Result<VerdictOutcome, StoreError>;

    /// The verdicts recorded for `host`'s holds with an id above `after`, by id.
    fn verdicts(&self, host: &str, after: i64) -> Result<Vec<Verdict>, StoreError>;

    /// A receiver whose value changes whenever fleet alerts, holds or verdicts may have changed, written by
    /// this process or (for a shared database) by any other replica, so live feeds wait on it instead of
    /// polling. `None` when the backend cannot tell; callers then poll.
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}
