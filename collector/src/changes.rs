//! Waiting for the store to change: live feeds (the console's alert stream, the agents' verdict
//! long-poll) wait on [`Store::changes`](crate::store::Store::changes) when the backend offers it (a
//! PostgreSQL notification from any replica, or the SQLite store's own writes), and poll when it does not.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::store::Store;

/// Without notifications, or as a bound on a wait for one (a notification lost while the database
/// connection was being replaced is noticed by then).
const WITH_CHANGES_AT_LEAST_EVERY: Duration = Duration::from_secs(5);

/// A wait for the next change, made before the reader's first look so that nothing written after it is
/// missed.
pub(crate) struct ChangeWait {
    changes: Option<watch::Receiver<u64>>,
    poll: Duration,
}

impl ChangeWait {
    /// A wait on `store`'s changes, or, when it has none, a poll every `poll`.
    pub(crate) fn new(store: &dyn Store, poll: Duration) -> ChangeWait {
        let mut changes = store.changes();
        if let Some(rx) = &mut changes {
            rx.borrow_and_update();
        }
        ChangeWait { changes, poll }
    }

    /// Returns once the store may have changed since the last call (or since [`ChangeWait::new`]), or at
    /// `deadline`, whichever is first.
    pub(crate) async fn next(&mut self, deadline: Option<Instant>) {
        let now = Instant::now();
        let (bound, rx) = match &mut self.changes {
            Some(rx) => (WITH_CHANGES_AT_LEAST_EVERY, Some(rx)),
            None => (self.poll, None),
        };
        let until = deadline.map_or(now + bound, |d| d.min(now + bound));
        match rx {
            Some(rx) => {
                if let Ok(Err(_)) = tokio::time::timeout_at(until, rx.changed()).await {
                    // The sender is gone: poll from now on.
                    self.changes = None;
                }
            }
            None => tokio::time::sleep_until(until).await,
        }
    }
}
