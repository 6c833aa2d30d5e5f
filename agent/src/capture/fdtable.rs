//! Descriptors the agent has seen opened (for writing, or directories) or created as memfds, by process, so later syscalls
//! on a descriptor (ftruncate, fchmod, close, execveat of a memfd) can name the file. Bounded: the oldest
//! entries are evicted first.

use crate::bounded::BoundedMap;

/// What a descriptor refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FdInfo {
    /// Absolute path (or the raw path when it could not be resolved).
    pub path: String,
    /// memfd name when the descriptor is an anonymous memory file.
    pub memfd: Option<String>,
    /// A directory (or `O_PATH`) descriptor, kept only as the base of relative paths: its close is not
    /// a write.
    pub dir: bool,
}

/// (pid, fd) → what it refers to.
#[derive(Debug)]
pub struct FdTable {
    entries: BoundedMap<(u32, i64), FdInfo>,
}

impl FdTable {
    /// An empty table of at most `capacity` descriptors.
    pub fn new(capacity: usize) -> FdTable {
        FdTable {
            entries: BoundedMap::new(capacity),
        }
    }

    /// Remembers a descriptor.
    pub fn insert(&mut self, pid: u32, fd: i64, info: FdInfo) {
        self.entries.insert((pid, fd), info);
    }

    /// What `fd` of `pid` refers to.
    pub fn get(&self, pid: u32, fd: i64) -> Option<&FdInfo> {
        self.entries.get(&(pid, fd))
    }

    /// Forgets a closed descriptor.
    pub fn remove(&mut self, pid: u32, fd: i64) -> Option<FdInfo> {
        self.entries.remove(&(pid, fd))
    }

    /// Forgets every descriptor of an ended process, returning them.
    pub fn remove_process(&mut self, pid: u32) -> Vec<FdInfo> {
        let keys = self.entries.keys_where(|(p, _)| *p == pid);
        keys.into_iter()
            .filter_map(|k| self.entries.remove(&k))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(path: &str) -> FdInfo {
        FdInfo {
            path: path.into(),
            memfd: None,
            dir: false,
        }
    }

    #[test]
    fn insert_get_remove_and_evict() {
        let mut t = FdTable::new(2);
        t.insert(1, 3, info("/a"));
        t.insert(1, 4, info("/b"));
        t.insert(2, 3, info("/c"));
        assert_eq!(t.get(1, 3), None, "evicted");
        assert_eq!(t.get(1, 4).map(|i| i.path.as_str()), Some("/b"));
        assert_eq!(t.remove_process(2).len(), 1);
        assert_eq!(t.remove(1, 4).map(|i| i.path), Some("/b".to_string()));
    }
}
