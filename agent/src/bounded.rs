//! A map that keeps at most a fixed number of entries, evicting the oldest-inserted first.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Insertion-ordered eviction over a `HashMap`.
#[derive(Debug)]
pub struct BoundedMap<K, V> {
    entries: HashMap<K, V>,
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Copy + Eq + Hash, V> BoundedMap<K, V> {
    /// An empty map of at most `capacity` entries.
    pub fn new(capacity: usize) -> BoundedMap<K, V> {
        BoundedMap {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Inserts or replaces; evicts the oldest entries beyond the capacity.
    pub fn insert(&mut self, key: K, value: V) {
        if self.entries.insert(key, value).is_none() {
            self.order.push_back(key);
        }
        while self.entries.len() > self.capacity {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.entries.remove(&old);
        }
        // Removed keys leave stale entries in `order`; compact when it grows far past the map.
        if self.order.len() > self.capacity * 2 {
            let entries = &self.entries;
            self.order.retain(|k| entries.contains_key(k));
        }
    }

    /// The value for `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key)
    }

    /// The value for `key`, mutably.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.entries.get_mut(key)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.entries.remove(key)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
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
        assert!(m.order.len() <= 4);
        assert_eq!(m.get(&3), Some(&"c"));
    }
}
