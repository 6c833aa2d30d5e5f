//! One lock per host, so a host's batches are verified and stored one at a time ([`HostLocks`]).
//!
//! The map holds an entry only while some request uses it: the last [`HostLock`] of a host removes the
//! host's entry when dropped, so the map is bounded by the requests in flight, not by how many host ids
//! were ever named.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The per-host locks.
#[derive(Debug, Default)]
pub struct HostLocks {
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

/// A use of one host's lock; [`HostLock::hold`] takes it.
#[derive(Debug)]
pub struct HostLock<'a> {
    locks: &'a HostLocks,
    host: String,
    lock: Arc<Mutex<()>>,
}

impl HostLocks {
    /// The lock of `host` (shared with every other use of it in flight).
    pub fn of(&self, host: &str) -> HostLock<'_> {
        let mut locks = self.map();
        let lock = Arc::clone(locks.entry(host.to_owned()).or_default());
        HostLock {
            locks: self,
            host: host.to_owned(),
            lock,
        }
    }

    /// How many hosts have an entry (those with a request in flight).
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether no host has an entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Mutex<()>>>> {
        self.locks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl HostLock<'_> {
    /// Waits for and takes the host's lock.
    pub fn hold(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for HostLock<'_> {
    fn drop(&mut self) {
        let mut locks = self.locks.map();
        // Uses are only handed out under the map's lock, which is held here: the map's own reference and
        // this one are all that remain when no other use is in flight.
        if Arc::strong_count(&self.lock) == 2 {
            locks.remove(&self.host);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::HostLocks;

    #[test]
    fn entries_live_only_while_used() {
        let locks = HostLocks::default();
        for i in 0..10_000 {
            let lock = locks.of(&format!("host-{i}"));
            let _held = lock.hold();
        }
        assert!(locks.is_empty(), "{} entries left", locks.len());
        let a = locks.of("web");
        let b = locks.of("web");
        let other = locks.of("db");
        assert_eq!(locks.len(), 2);
        drop(a);
        assert_eq!(locks.len(), 2, "web is still used by b");
        drop(b);
        drop(other);
        assert!(locks.is_empty());
    }

    #[test]
    fn one_host_is_taken_one_at_a_time() {
        let locks = Arc::new(HostLocks::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (locks, inside, most) = (locks.clone(), inside.clone(), most.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let lock = locks.of("web");
                        let _held = lock.hold();
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert!(locks.is_empty());
    }
}
