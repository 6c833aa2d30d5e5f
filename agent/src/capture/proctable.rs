//! The process table: parent of every live process, built from a `/proc` scan at start plus fork, exec and
//! exit records, so events get their ppid without reading kernel structures.
//!
//! Bounded: past [`ProcessTable::capacity`] entries the oldest-inserted ones are evicted (they are looked up
//! again in `/proc` if still alive).

use std::path::Path;

use crate::bounded::BoundedMap;
use crate::procfs::{parse_stat_ppid, parse_status_euid};

/// What the table knows of a process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcInfo {
    /// Parent process id.
    pub ppid: u32,
    /// Executable path; empty when unknown.
    pub exe: String,
    /// argv as last seen; empty when unknown.
    pub argv: Vec<String>,
    /// Effective uid, when known.
    pub euid: Option<u32>,
    /// Current working directory, when known.
    pub cwd: Option<String>,
}

/// Live processes by pid.
#[derive(Debug)]
pub struct ProcessTable {
    entries: BoundedMap<u32, ProcInfo>,
    capacity: usize,
    proc_root: std::path::PathBuf,
}

impl ProcessTable {
    /// An empty table holding at most `capacity` processes, reading `/proc` below `proc_root`.
    pub fn new(capacity: usize, proc_root: &Path) -> ProcessTable {
        ProcessTable {
            entries: BoundedMap::new(capacity),
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
        for pid in pids(&self.proc_root)? {
            if let Some(info) = read_proc(&self.proc_root, pid) {
                self.insert(pid, info);
                added += 1;
            }
        }
        Ok(added)
    }

    /// Records that `parent` created process `child` (which inherits exe, argv, euid and cwd).
    pub fn on_fork(&mut self, parent: u32, child: u32) {
        let mut info = self.get(parent).cloned().unwrap_or_default();
        info.ppid = parent;
        self.insert(child, info);
    }

    /// Records a successful exec: new executable and argv; a set-user-id file changes the euid.
    pub fn on_exec(&mut self, pid: u32, exe: String, argv: Vec<String>, setuid_owner: Option<u32>) {
        let ppid = self.ppid(pid);
        let mut info = self.get(pid).cloned().unwrap_or(ProcInfo {
            ppid,
            ..ProcInfo::default()
        });
        info.exe = exe;
        info.argv = argv;
        if let Some(owner) = setuid_owner {
            info.euid = Some(owner);
        }
        self.insert(pid, info);
    }

    /// Updates the cwd after a successful chdir.
    pub fn on_chdir(&mut self, pid: u32, cwd: String) {
        if let Some(info) = self.get_mut(pid) {
            info.cwd = Some(cwd);
        }
    }

    /// Updates the effective uid after a successful setuid-family call.
    pub fn on_set_euid(&mut self, pid: u32, euid: u32) {
        if let Some(info) = self.get_mut(pid) {
            info.euid = Some(euid);
        }
    }

    /// What is known of `pid` (looked up in `/proc` and remembered if not in the table).
    pub fn get(&mut self, pid: u32) -> Option<&ProcInfo> {
        self.get_mut(pid).map(|info| &*info)
    }

    fn get_mut(&mut self, pid: u32) -> Option<&mut ProcInfo> {
        if !self.entries.contains_key(&pid) {
            let info = read_proc(&self.proc_root, pid)?;
            self.insert(pid, info);
        }
        self.entries.get_mut(&pid)
    }

    /// The cwd of `pid`: tracked, else from `/proc` now.
    pub fn cwd(&mut self, pid: u32) -> Option<String> {
        if let Some(cwd) = self.entries.get(&pid).and_then(|i| i.cwd.clone()) {
            return Some(cwd);
        }
        let cwd = read_link(&self.proc_root, pid, "cwd")?;
        if let Some(info) = self.entries.get_mut(&pid) {
            info.cwd = Some(cwd.clone());
        }
        Some(cwd)
    }

    /// Forgets a process that ended, returning what was known of it.
    pub fn on_exit(&mut self, pid: u32) -> Option<ProcInfo> {
        self.entries.remove(&pid)
    }

    /// The parent of `pid`: from the table, else from `/proc` (then remembered); 0 when unknown.
    pub fn ppid(&mut self, pid: u32) -> u32 {
        self.get(pid).map_or(0, |info| info.ppid)
    }

    fn insert(&mut self, pid: u32, info: ProcInfo) {
        self.entries.insert(pid, info);
    }
}

/// What `/proc/<pid>` tells of a process; None when it is gone (the stat file is required).
/// The pids listed under `proc_root` (the numeric entries of `/proc`); unreadable entries are skipped.
pub fn pids(proc_root: &Path) -> std::io::Result<impl Iterator<Item = u32> + use<>> {
    Ok(std::fs::read_dir(proc_root)?
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok()))
}

fn read_proc(proc_root: &Path, pid: u32) -> Option<ProcInfo> {
    let dir = proc_root.join(pid.to_string());
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let ppid = parse_stat_ppid(&stat)?;
    let argv = std::fs::read(dir.join("cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default();
    let euid = std::fs::read_to_string(dir.join("status"))
        .ok()
        .and_then(|status| parse_status_euid(&status));
    Some(ProcInfo {
        ppid,
        exe: read_link(proc_root, pid, "exe").unwrap_or_default(),
        argv,
        euid,
        cwd: read_link(proc_root, pid, "cwd"),
    })
}

fn read_link(proc_root: &Path, pid: u32, what: &str) -> Option<String> {
    std::fs::read_link(proc_root.join(pid.to_string()).join(what))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(t.on_exit(102).map(|i| i.ppid), Some(101));
        assert_eq!(t.ppid(102), 0);
    }

    #[test]
    fn fork_inherits_and_exec_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = ProcessTable::new(8, dir.path());
        t.on_fork(0, 1);
        t.on_exec(1, "/bin/sh".into(), vec!["sh".into()], None);
        t.on_chdir(1, "/tmp".into());
        t.on_set_euid(1, 0);
        t.on_fork(1, 2);
        let child = t.get(2).cloned().unwrap();
        assert_eq!(
            (child.ppid, child.exe.as_str(), child.cwd.as_deref()),
            (1, "/bin/sh", Some("/tmp"))
        );
        t.on_exec(2, "/usr/bin/passwd".into(), vec![], Some(0));
        assert_eq!(t.get(2).unwrap().euid, Some(0));
        assert_eq!(
            parse_status_euid("Name:\tx\nUid:\t1000\t0\t0\t0\n"),
            Some(0)
        );
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
