//! Connection slots: at most `max_connections` connections are served at once.
//!
//! When every slot is taken, a new connection takes the slot of the connection that has waited longest
//! without a request in progress (idle between requests, still in its TLS handshake, or still sending
//! headers), which is told to close; the newcomer waits briefly for that slot to free. When every
//! connection is in the middle of a request, the newcomer is closed at once. A request in progress is never
//! cut to make room, so idle connections (however many a client opens) cannot lock out new clients.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// How often, at most, a refused connection is logged (with the count since the last line).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// The connection slots of one listener.
pub(super) struct Slots {
    max: usize,
    permits: Arc<Semaphore>,
    waiting: Mutex<Waiting>,
    refused: AtomicU64,
    last_refusal_log: Mutex<Option<Instant>>,
}

/// The connections without a request in progress, oldest first.
#[derive(Default)]
struct Waiting {
    next_key: u64,
    by_age: BTreeMap<u64, Arc<Notify>>,
}

/// One connection's slot, freed when dropped.
pub(super) struct Slot {
    slots: Arc<Slots>,
    _permit: OwnedSemaphorePermit,
    close: Arc<Notify>,
    /// The key in `Waiting::by_age` while the connection is a candidate for eviction (0: it is not).
    /// Changed only under the `waiting` lock.
    key: AtomicU64,
}

impl Slots {
    /// `max` slots (at least one).
    pub(super) fn new(max: usize) -> Arc<Slots> {
        let max = max.max(1);
        Arc::new(Slots {
            max,
            permits: Arc::new(Semaphore::new(max)),
            waiting: Mutex::new(Waiting {
                next_key: 1,
                ..Waiting::default()
            }),
            refused: AtomicU64::new(0),
            last_refusal_log: Mutex::new(None),
        })
    }

    /// A slot for a new connection: a free one, else the slot of the connection idle longest, which is told
    /// to close and waited for up to `wait`. `None` when every connection has a request in progress or the
    /// slot did not free in time: the caller closes the new connection.
    pub(super) async fn admit(self: &Arc<Slots>, wait: Duration) -> Option<Slot> {
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Some(self.slot(permit));
        }
        if !self.evict_oldest() {
            self.refused();
            return None;
        }
        match tokio::time::timeout(wait, Arc::clone(&self.permits).acquire_owned()).await {
            Ok(Ok(permit)) => Some(self.slot(permit)),
            _ => {
                self.refused();
                None
            }
        }
    }

    fn slot(self: &Arc<Slots>, permit: OwnedSemaphorePermit) -> Slot {
        let slot = Slot {
            slots: Arc::clone(self),
            _permit: permit,
            close: Arc::new(Notify::new()),
            key: AtomicU64::new(0),
        };
        slot.idle();
        slot
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells the connection idle longest to close; false if none is idle.
    fn evict_oldest(&self) -> bool {
        let victim = self.waiting().by_age.pop_first();
        match victim {
            Some((_, close)) => {
                close.notify_one();
                tracing::debug!("connection limit reached: closing the longest idle connection");
                true
            }
            None => false,
        }
    }

    fn refused(&self) {
        let count = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self
            .last_refusal_log
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY) {
            *last = Some(Instant::now());
            self.refused.store(0, Ordering::Relaxed);
            tracing::warn!(
                max_connections = self.max,
                refused = count,
                "connection limit reached with every connection mid-request: new connections closed"
            );
        }
    }
}

impl Slot {
    /// The connection has no request in progress: it becomes the youngest candidate for eviction.
    pub(super) fn idle(&self) {
        let mut waiting = self.slots.waiting();
        let old = self.key.load(Ordering::Relaxed);
        if old != 0 {
            waiting.by_age.remove(&old);
        }
        let key = waiting.next_key;
        waiting.next_key += 1;
        waiting.by_age.insert(key, Arc::clone(&self.close));
        self.key.store(key, Ordering::Relaxed);
    }

    /// A request is in progress: the connection is no candidate for eviction until it is idle again.
    pub(super) fn busy(&self) {
        let mut waiting = self.slots.waiting();
        let key = self.key.swap(0, Ordering::Relaxed);
        if key != 0 {
            waiting.by_age.remove(&key);
        }
    }

    /// Completes once the slot was taken for a new connection.
    pub(super) async fn evicted(&self) {
        self.close.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.busy();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Slots;

    const WAIT: Duration = Duration::from_millis(200);

    #[tokio::test]
    async fn a_full_set_of_idle_connections_gives_up_its_oldest() {
        let slots = Slots::new(2);
        let first = slots.admit(WAIT).await.unwrap();
        let second = slots.admit(WAIT).await.unwrap();
        // The third evicts the first (idle longest); it gets the slot once the first is dropped.
        let third = tokio::spawn({
            let slots = slots.clone();
            async move { slots.admit(WAIT).await.is_some() }
        });
        tokio::time::timeout(WAIT, first.evicted()).await.unwrap();
        drop(first);
        assert!(third.await.unwrap());
        // The second was not told to close.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), second.evicted())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn busy_connections_are_never_evicted() {
        let slots = Slots::new(2);
        let a = slots.admit(WAIT).await.unwrap();
        let b = slots.admit(WAIT).await.unwrap();
        a.busy();
        b.busy();
        assert!(slots.admit(WAIT).await.is_none());
        // Once idle again, `b` is the one to go.
        b.idle();
        let next = tokio::spawn({
            let slots = slots.clone();
            async move { slots.admit(WAIT).await.is_some() }
        });
        tokio::time::timeout(WAIT, b.evicted()).await.unwrap();
        drop(b);
        assert!(next.await.unwrap());
        assert!(
            tokio::time::timeout(Duration::from_millis(50), a.evicted())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn an_evicted_connection_that_does_not_close_leaves_the_newcomer_out() {
        let slots = Slots::new(1);
        let _stuck = slots.admit(WAIT).await.unwrap();
        assert!(slots.admit(Duration::from_millis(50)).await.is_none());
    }
}
