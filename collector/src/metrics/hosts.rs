//! What the per-host gauges need that the store does not keep: the newest event time stored for each host
//! and whether its chain last verified, since the collector started.
//!
//! Only hosts whose own token passed get an entry (so hosts that were enrolled: the store never forgets a
//! host name, a re-enrolled host keeps its own), so the table is bounded by enrollment; a scrape reads
//! the entries of the hosts enrolled at that time only.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

/// The collector's table (the `metrics` recorder is process-wide, and so is this).
pub(super) static TABLE: HostTable = HostTable::new();

/// One host's entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct HostHealth {
    /// The newest event time stored since the collector started (ns since the Unix epoch).
    pub newest_event_ns: Option<u64>,
    /// False after a refusal that broke the chain, until a batch is stored.
    pub chain_ok: bool,
}

impl Default for HostHealth {
    fn default() -> HostHealth {
        HostHealth {
            newest_event_ns: None,
            chain_ok: true,
        }
    }
}

/// The per-host entries, by host name.
#[derive(Debug)]
pub(super) struct HostTable {
    hosts: Mutex<BTreeMap<String, HostHealth>>,
}

impl HostTable {
    /// An empty table.
    pub const fn new() -> HostTable {
        HostTable {
            hosts: Mutex::new(BTreeMap::new()),
        }
    }

    /// A batch of `host` was stored: its chain verifies, and its newest event time moves forward.
    pub fn stored(&self, host: &str, newest_event_ns: Option<u64>) {
        self.update(host, |h| {
            h.chain_ok = true;
            h.newest_event_ns = h.newest_event_ns.max(newest_event_ns);
        });
    }

    /// A batch of `host` was refused for a broken or forged chain.
    pub fn chain_broken(&self, host: &str) {
        self.update(host, |h| h.chain_ok = false);
    }

    /// The entries of `enrolled` hosts (a host without one is healthy and has no event time yet).
    pub fn snapshot(&self, enrolled: &BTreeSet<&str>) -> BTreeMap<String, HostHealth> {
        let hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        hosts
            .iter()
            .filter(|(name, _)| enrolled.contains(name.as_str()))
            .map(|(name, health)| (name.clone(), *health))
            .collect()
    }

    fn update(&self, host: &str, change: impl FnOnce(&mut HostHealth)) {
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        match hosts.get_mut(host) {
            Some(entry) => change(entry),
            None => {
                let mut entry = HostHealth::default();
                change(&mut entry);
                hosts.insert(host.to_owned(), entry);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{HostHealth, HostTable};

    #[test]
    fn chain_state_and_newest_time_follow_the_batches() {
        let table = HostTable::new();
        table.stored("a", Some(20));
        table.stored("a", Some(10));
        table.stored("a", None);
        table.chain_broken("b");
        let enrolled = BTreeSet::from(["a", "b"]);
        let snap = table.snapshot(&enrolled);
        assert_eq!(
            snap["a"],
            HostHealth {
                newest_event_ns: Some(20),
                chain_ok: true
            }
        );
        assert_eq!(
            snap["b"],
            HostHealth {
                newest_event_ns: None,
                chain_ok: false
            }
        );
        table.stored("b", Some(5));
        assert!(table.snapshot(&enrolled)["b"].chain_ok);
    }

    #[test]
    fn a_snapshot_holds_only_the_enrolled_hosts() {
        let table = HostTable::new();
        table.stored("gone", Some(1));
        table.stored("kept", Some(1));
        let snap = table.snapshot(&BTreeSet::from(["kept", "new"]));
        assert_eq!(snap.keys().collect::<Vec<_>>(), ["kept"]);
    }
}
