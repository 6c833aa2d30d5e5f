//! A map that keeps at most a fixed number of entries, evicting the oldest-inserted first.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Insertion-ordered eviction over a `HashMap`.
///
/// Every insert of a new key stamps it with a fresh number and queues `(key, stamp)`; a queued pair whose
/// stamp is no longer its key's is stale (the key was removed, or removed and inserted again) and is skipped
/// by eviction and dropped by compaction. So a key removed and re-inserted over and over (a process reopening
/// the same descriptor number) leaves one live pair, and compaction, which runs when stale pairs outnumber
/// live entries, costs amortized O(1) per insert.
#[derive(Debug)]
pub struct BoundedMap<K, V> {
    entries: HashMap<K, (u64, V)>,
    order: VecDeque<(K, u64)>,
    capacity: usize,
    next_stamp: u64,
    /// Queued pairs looked at by eviction and compaction (see [`BoundedMap::visited`]).
    visited: u64,
}

/// Stale pairs tolerated beside the live ones before compaction (so small maps do not compact often).
const SLACK: usize = 64;

impl<K: Copy + Eq + Hash, V> BoundedMap<K, V> {
    /// An empty map of at most `capacity` entries.
    pub fn new(capacity: usize) -> BoundedMap<K, V> {
        BoundedMap {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            next_stamp: 0,
            visited: 0,
        }
    }

    /// Inserts or replaces; evicts the oldest entries beyond the capacity.
    pub fn insert(&mut self, key: K, value: V) {
        match self.entries.get_mut(&key) {
            Some(slot) => slot.1 = value,
            None => {
                let stamp = self.next_stamp;
                self.next_stamp += 1;
                self.entries.insert(key, (stamp, value));
                self.order.push_back((key, stamp));
            }
        }
        while self.entries.len() > self.capacity {
            let Some((old, stamp)) = self.order.pop_front() else {
                break;
            };
            self.visited += 1;
            if self.entries.get(&old).is_some_and(|(s, _)| *s == stamp) {
                self.entries.remove(&old);
            }
        }
        if self.order.len() > 2 * self.entries.len() + SLACK {
            self.visited += self.order.len() as u64;
            let entries = &self.entries;
            self.order
                .retain(|(k, stamp)| entries.get(k).is_some_and(|(s, _)| s == stamp));
        }
    }

    /// The value for `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(_, v)| v)
    }

    /// The value for `key`, mutably.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.entries.get_mut(key).map(|(_, v)| v)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.entries.remove(key).map(|(_, v)| v)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Queued pairs eviction and compaction have looked at so far: the map's bookkeeping work, which stays
    /// proportional to the inserts however keys are removed and re-inserted.
    pub fn visited(&self) -> u64 {
        self.visited
    }

    /// Keys matching `pred`.
    pub fn keys_where(&self, pred: impl Fn(&K) -> bool) -> Vec<K> {
        self.entries.keys().filter(|k| pred(k)).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest_and_compacts() {
        let mut m = BoundedMap::new(2);
        m.insert(1, "a");
        m.insert(2, "b");
        m.insert(3, "c");
        assert_eq!((m.get(&1), m.len()), (None, 2));
        for i in 10..100 {
            m.insert(i, "x");
            m.remove(&i);
        }
        assert!(m.order.len() <= 2 * m.len() + SLACK + 1);
        // The first transient key pushed 2 out; 3 stays, as every later one was removed at once.
        assert_eq!((m.get(&2), m.get(&3)), (None, Some(&"c")));
    }

    #[test]
    fn reopening_one_descriptor_keeps_insert_cost_flat() {
        // A process closing and reopening the same fd number while the table holds many live entries.
        let live = 10_000;
        let mut m = BoundedMap::new(1 << 16);
        for k in 0..live {
            m.insert(k, k);
        }
        let cycles = 200_000;
        let before = m.visited;
        for _ in 0..cycles {
            m.remove(&u64::MAX);
            m.insert(u64::MAX, 0);
        }
        let per_insert = (m.visited - before) as f64 / cycles as f64;
        assert!(
            per_insert < 4.0,
            "{per_insert} queued pairs visited per insert"
        );
        assert!(
            m.order.len() <= 2 * m.len() + SLACK + 1,
            "{}",
            m.order.len()
        );
        assert_eq!(m.len(), live as usize + 1);
    }

    #[test]
    fn a_reinserted_key_is_evicted_by_its_new_age_not_its_old_one() {
        let mut m = BoundedMap::new(3);
        m.insert(1, "a");
        m.insert(2, "b");
        m.remove(&1);
        m.insert(1, "a again");
        m.insert(3, "c");
        // Full: 2, 1, 3 by age. One more evicts 2, the oldest, not 1 by its first insert.
        m.insert(4, "d");
        assert_eq!(m.get(&2), None);
        assert_eq!(m.get(&1), Some(&"a again"));
        assert_eq!((m.get(&3), m.get(&4)), (Some(&"c"), Some(&"d")));
    }
}
