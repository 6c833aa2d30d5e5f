//! The order lock and the change channel, shared by every write.
//!
//! Writes that give ids other readers page by (records, alerts, fleet revisions, audit entries, verdicts)
//! take [`ORDER_LOCK`], a transaction-scoped advisory lock, so ids are given in commit order across every
//! replica (see `write.rs`). Writes that live feeds show signal on [`CHANNEL`] as they commit.

use deadpool_postgres::Transaction;

use crate::store::error::StoreError;

/// The advisory lock that puts id-giving writes in one order.
pub(super) const ORDER_LOCK: i64 = 0x6175_6469_746c_0003;

/// The notification channel writes signal on (the payload names the write: `commit`, `fleet`, `holds`), for
/// live feeds on every replica, which treat every notification alike.
pub(super) const CHANNEL: &str = "auditloop_changes";

/// Takes [`ORDER_LOCK`] for the rest of `tx`.
pub(super) async fn take_order(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ORDER_LOCK])
        .await?;
    Ok(())
}

/// Signals that `what` (`commit`, `fleet` or `holds`) changed something live feeds show, when `tx` commits.
pub(super) async fn notify(tx: &Transaction<'_>, what: &str) -> Result<(), StoreError> {
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &what])
        .await?;
    Ok(())
}
