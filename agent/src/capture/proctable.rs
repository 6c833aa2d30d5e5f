//! The process table: parent of every live process, built from a `/proc` scan at start plus fork, exec and
//! exit records, so events get their ppid without reading kernel structures.
//!
//! Bounded: past [`ProcessTable::capacity`] entries the oldest-inserted ones are evicted (they are looked up
//! again in `/proc` if still alive).

use std::collections::{HashMap, VecDeque};
use std::path::Path;

/// What the table knows of a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    /// Parent process id.
    pub ppid: u32,
}

/// Live processes by pid.
#[derive(Debug)]
pub struct ProcessTable {
    entries: HashMap<u32, ProcInfo>,
    order: VecDeque<u32>,
    capacity: usize,
    proc_root: std::path::PathBuf,
}

impl ProcessTable {
    /// An empty table holding at most `capacity` processes, reading `/proc` below `proc_root`.
    pub fn new(capacity: usize, proc_root: &Path) -> ProcessTable {
        ProcessTable {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            proc_root: proc_root.to_owned(),
        }
    }

    /// The most processes kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of processes known.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no process is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds every process found under `/proc`; unreadable entries (processes that just ended) are skipped.
    pub fn scan(&mut self) -> std::io::Result<usize> {
        let mut added = 0;
        for entry in std::fs::read_dir(&self.proc_root)? {
            let Ok(entry) = entry else { continue };
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = read_ppid(&self.proc_root, pid) {
                self.insert(pid, ProcInfo { ppid });
                added += 1;
            }
        }
        Ok(added)
    }

    /// Records that `parent` created process `child`.
    pub fn on_fork(&mut self, parent: u32, child: u32) {
        self.insert(child, ProcInfo { ppid: parent });
    }

    /// Forgets a process that ended, returning what was known of it.
    pub fn on_exit(&mut self, pid: u32) -> Option<ProcInfo> {
        self.entries.remove(&pid)
    }

    /// The parent of `pid`: from the table, else from `/proc` (then remembered); 0 when unknown.
    pub fn ppid(&mut self, pid: u32) -> u32 {
        if let Some(info) = self.entries.get(&pid) {
            return info.ppid;
        }
        match read_ppid(&self.proc_root, pid) {
            Some(ppid) => {
                self.insert(pid, ProcInfo { ppid });
                ppid
            }
            None => 0,
        }
    }

    fn insert(&mut self, pid: u32, info: ProcInfo) {
        if self.entries.insert(pid, info).is_none() {
            self.order.push_back(pid);
        }
        while self.entries.len() > self.capacity {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.entries.remove(&old);
        }
        // Entries removed by `on_exit` leave stale pids in `order`; compact when it grows far past the map.
        if self.order.len() > self.capacity * 2 {
            let entries = &self.entries;
            self.order.retain(|pid| entries.contains_key(pid));
        }
    }
}

/// Parent pid from `/proc/<pid>/stat` (`pid (comm) state ppid …`; comm may contain spaces and parens).
fn read_ppid(proc_root: &Path, pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    parse_stat_ppid(&stat)
}

/// The ppid field of a `/proc/<pid>/stat` line.
pub fn parse_stat_ppid(stat: &str) -> Option<u32> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_comm() {
        assert_eq!(parse_stat_ppid("42 (a) b (c) S 7 42 42 0"), Some(7));
        assert_eq!(parse_stat_ppid("42 (x"), None);
        assert_eq!(parse_stat_ppid(""), None);
    }

    #[test]
    fn scans_this_machines_proc() {
        let mut t = ProcessTable::new(1 << 16, Path::new("/proc"));
        assert!(t.scan().unwrap() > 0);
        let me = std::process::id();
        assert_eq!(t.ppid(me), std::os::unix::process::parent_id());
    }

    #[test]
    fn fork_exit_and_eviction() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = ProcessTable::new(2, dir.path());
        t.on_fork(1, 100);
        t.on_fork(1, 101);
        assert_eq!(t.ppid(100), 1);
        t.on_fork(101, 102);
        assert_eq!(t.len(), 2);
        assert_eq!(t.ppid(100), 0, "oldest evicted, not in fake /proc");
        assert_eq!(t.on_exit(102), Some(ProcInfo { ppid: 101 }));
        assert_eq!(t.ppid(102), 0);
    }

    #[test]
    fn falls_back_to_proc() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("55")).unwrap();
        std::fs::write(dir.path().join("55/stat"), "55 (sh) S 9 55 55").unwrap();
        let mut t = ProcessTable::new(8, dir.path());
        assert_eq!(t.ppid(55), 9);
        assert_eq!(t.len(), 1);
    }
}
