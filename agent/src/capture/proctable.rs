//! The process table: parent, ancestry, login identity and working directory of every live process, built
//! from a `/proc` scan at start plus fork, exec and exit records, so events get their context without
//! reading kernel structures.
//!
//! Ancestry: each process keeps the chain of its ancestors (nearest first, at most
//! `capture.ancestry.depth`), each ancestor as it was when it forked the next one down (pid, start time,
//! exe, comm, argv cut to [`ANCESTOR_ARGV_BYTES`]). A child's chain is its parent's snapshot plus the
//! parent's chain, so chains share their entries and a fork costs `depth` reference counts. An ancestor
//! that ended before the agent saw it, or whose pid now names a younger process, is kept as its pid alone,
//! marked unknown, and the chain ends there: nothing is guessed. For processes running before the agent
//! started, the chain follows the parents `/proc` names now (an orphan shows the process it was re-parented
//! to).
//!
//! Bounded: past [`ProcessTable::capacity`] entries the oldest-inserted ones are evicted (they are looked
//! up again in `/proc` if still alive). Ancestor snapshots live as long as a chain in the table uses them,
//! so at most `capacity × depth` of them exist.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use auditloop_model::{Ancestor, Lineage, Process, WallTime};

use crate::bounded::BoundedMap;
use crate::procfs::{parse_stat_ppid, parse_status_euid, stat_field};

use super::budget::Budget;
use super::login::{self, Login, UserNames};

/// Bytes of argv an ancestor snapshot keeps.
pub const ANCESTOR_ARGV_BYTES: usize = 512;
/// Most SSH connections remembered (one per sshd process asked).
const SSH_PEERS: usize = 4096;
/// sshd processes whose connection may be looked up per second (each reads the kernel's TCP table, a
/// walk of its whole connection hash: milliseconds on a large host).
const SSH_LOOKUPS_PER_SECOND: u32 = 20;
/// A parent that started this much later than its child is another process with a reused pid.
const START_SLACK_NS: u64 = 20_000_000;

/// An sshd process's client connection as looked up: its start (to tell a reused pid) and the peer.
type SshPeer = (Option<WallTime>, Option<(String, u16)>);

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
    pub cwd: Option<Arc<str>>,
    /// Task name as last seen.
    pub comm: String,
    /// When it started, when known.
    pub start: Option<WallTime>,
    /// Ancestors, once built.
    ancestors: Option<Arc<[Arc<Ancestor>]>>,
    /// This process as its children's ancestor (dropped when it changes).
    snapshot: Option<Arc<Ancestor>>,
    /// Login identity, once read.
    login: Option<Login>,
    /// The parent's (or, after an exec, the previous) login identity: used when `/proc` no longer tells.
    inherited: Option<Login>,
}

/// Live processes by pid.
#[derive(Debug)]
pub struct ProcessTable {
    entries: BoundedMap<u32, ProcInfo>,
    capacity: usize,
    proc_root: PathBuf,
    depth: usize,
    exec_depth: usize,
    names: UserNames,
    ssh_peers: BoundedMap<u32, SshPeer>,
    ssh_lookups: Budget,
    /// Wall-clock time of boot and clock ticks per second, for `/proc/<pid>/stat` start times.
    boot_wall_ns: u64,
    ticks: u64,
}

impl ProcessTable {
    /// An empty table holding at most `capacity` processes, reading `/proc` below `proc_root`, with the
    /// default ancestry depths (16 kept, 4 recorded on exec events).
    pub fn new(capacity: usize, proc_root: &Path) -> ProcessTable {
        let now = WallTime::now().0;
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .and_then(|t| u64::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(100);
        ProcessTable {
            entries: BoundedMap::new(capacity),
            capacity: capacity.max(1),
            proc_root: proc_root.to_owned(),
            depth: 16,
            exec_depth: 4,
            names: UserNames::new(Path::new("/etc/passwd")),
            ssh_peers: BoundedMap::new(SSH_PEERS),
            ssh_lookups: Budget::new(SSH_LOOKUPS_PER_SECOND),
            boot_wall_ns: now.saturating_sub(crate::clock::boottime_ns()),
            ticks,
        }
    }

    /// Sets how many ancestors a process keeps (`depth`, at least 1) and an exec event records
    /// (`exec_depth`); chains built from now on follow them.
    pub fn set_ancestry(&mut self, depth: usize, exec_depth: usize) {
        self.depth = depth.max(1);
        self.exec_depth = exec_depth.min(self.depth);
    }

    /// Reads user names from `path` instead of `/etc/passwd`.
    pub fn set_passwd(&mut self, path: &Path) {
        self.names = UserNames::new(path);
    }

    /// The `/proc` this table reads.
    pub fn proc_root(&self) -> &Path {
        &self.proc_root
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
            if let Some(info) = self.read_proc(pid) {
                self.entries.insert(pid, info);
                added += 1;
            }
        }
        Ok(added)
    }

    /// Records that `parent` created process `child` at `start` (the child inherits exe, argv, euid, cwd and
    /// comm, and descends from the parent as it is now).
    pub fn on_fork(&mut self, parent: u32, child: u32, start: Option<WallTime>) {
        let chain = if parent != 0 && self.get(parent).is_some() {
            let mut chain = vec![self.snapshot(parent)];
            let above = self.ancestors(parent);
            chain.extend(above.iter().take(self.depth - 1).cloned());
            chain
        } else if parent != 0 {
            vec![unknown(parent)]
        } else {
            Vec::new()
        };
        let mut info = match self.entries.get(&parent) {
            Some(p) => ProcInfo {
                ppid: parent,
                exe: p.exe.clone(),
                argv: p.argv.clone(),
                euid: p.euid,
                cwd: p.cwd.clone(),
                comm: p.comm.clone(),
                inherited: p.login.clone().or_else(|| p.inherited.clone()),
                ..ProcInfo::default()
            },
            None => ProcInfo {
                ppid: parent,
                ..ProcInfo::default()
            },
        };
        info.start = start;
        info.ancestors = Some(chain.into());
        self.entries.insert(child, info);
    }

    /// Records a successful exec: new executable, argv and task name; a set-user-id file changes the euid.
    /// The login identity is read again at the process's next event.
    pub fn on_exec(
        &mut self,
        pid: u32,
        exe: String,
        argv: Vec<String>,
        comm: String,
        setuid_owner: Option<u32>,
    ) {
        if self.get(pid).is_none() {
            self.entries.insert(pid, ProcInfo::default());
        }
        if let Some(info) = self.entries.get_mut(&pid) {
            info.exe = exe;
            info.argv = argv;
            info.comm = comm;
            info.snapshot = None;
            if let Some(owner) = setuid_owner {
                info.euid = Some(owner);
            }
            if let Some(login) = info.login.take() {
                info.inherited = Some(login);
            }
        }
    }

    /// Updates the cwd after a successful chdir.
    pub fn on_chdir(&mut self, pid: u32, cwd: String) {
        if let Some(info) = self.get_mut(pid) {
            info.cwd = Some(Arc::from(cwd));
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
            let info = self.read_proc(pid)?;
            self.entries.insert(pid, info);
        }
        self.entries.get_mut(&pid)
    }

    /// The cwd of `pid`: tracked, else from `/proc` now.
    pub fn cwd(&mut self, pid: u32) -> Option<String> {
        self.cwd_shared(pid).map(|c| c.to_string())
    }

    fn cwd_shared(&mut self, pid: u32) -> Option<Arc<str>> {
        if let Some(cwd) = self.entries.get(&pid).and_then(|i| i.cwd.clone()) {
            return Some(cwd);
        }
        let cwd: Arc<str> = Arc::from(read_link(&self.proc_root, pid, "cwd")?);
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

    /// The ancestors of `pid`, nearest first (built from the table and `/proc` on first use).
    pub fn ancestors(&mut self, pid: u32) -> Arc<[Arc<Ancestor>]> {
        if let Some(chain) = self.get(pid).and_then(|i| i.ancestors.clone()) {
            return chain;
        }
        let Some(info) = self.entries.get(&pid) else {
            return Arc::from(Vec::new());
        };
        let (mut below, mut ppid, mut child_start) = (pid, info.ppid, info.start);
        let mut chain: Vec<Arc<Ancestor>> = Vec::new();
        while chain.len() < self.depth && ppid != 0 && ppid != below {
            let parent = self
                .get(ppid)
                .map(|p| (p.start, p.ppid, p.ancestors.clone()));
            let Some((start, grand, above)) = parent.filter(|(start, ..)| {
                !matches!((start, child_start), (Some(s), Some(c)) if s.0 > c.0 + START_SLACK_NS)
            }) else {
                chain.push(unknown(ppid));
                break;
            };
            chain.push(self.snapshot(ppid));
            if let Some(above) = above {
                let room = self.depth - chain.len();
                chain.extend(above.iter().take(room).cloned());
                break;
            }
            (below, ppid, child_start) = (ppid, grand, start);
        }
        let chain: Arc<[Arc<Ancestor>]> = chain.into();
        if let Some(info) = self.entries.get_mut(&pid) {
            info.ancestors = Some(chain.clone());
        }
        chain
    }

    /// The compact chain an exec event records: the first `exec_depth` ancestors without argv.
    pub fn exec_ancestors(&mut self, pid: u32) -> Vec<Ancestor> {
        let depth = self.exec_depth;
        self.ancestors(pid)
            .iter()
            .take(depth)
            .map(|a| Ancestor {
                argv: Vec::new(),
                ..(**a).clone()
            })
            .collect()
    }

    /// Fills the event context of `process` (its `pid` and `comm` set) from the table: parent, start,
    /// login identity and lineage; the euid when tracked, the executable when `process.exe` is empty.
    pub fn fill(&mut self, process: &mut Process) {
        let pid = process.pid;
        let Some(info) = self.get_mut(pid) else {
            return;
        };
        if info.comm != process.comm && !process.comm.is_empty() {
            info.comm.clone_from(&process.comm);
            info.snapshot = None;
        }
        let (ppid, euid, start) = (info.ppid, info.euid, info.start);
        if process.exe.is_empty() {
            process.exe.clone_from(&info.exe);
        }
        if process.ppid == 0 {
            process.ppid = ppid;
        }
        if let Some(euid) = euid {
            process.euid = euid;
        }
        process.start = start;
        let login = self.login(pid);
        process.loginuid = login.loginuid;
        process.sessionid = login.sessionid;
        process.loginname = login.loginname;
        process.tty = login.tty;
        (process.pgid, process.sid) = (login.pgid, login.sid);
        if let Some((address, port)) = login.ssh {
            process.ssh_client_address = address;
            process.ssh_client_port = Some(port);
        }
        let ancestors = self.ancestors(pid);
        if let Some(parent) = self.get(process.ppid) {
            process.parent_exe.clone_from(&parent.exe);
            process.parent_argv.clone_from(&parent.argv);
        } else if let Some(parent) = ancestors.first().filter(|a| a.pid == process.ppid) {
            process.parent_exe.clone_from(&parent.exe);
            process.parent_argv.clone_from(&parent.argv);
        }
        process.lineage = Lineage {
            ancestors,
            cwd: self.cwd_shared(pid),
        };
    }

    /// The login identity of `pid`, read from `/proc` once per process (after each exec), else
    /// inherited from its parent.
    fn login(&mut self, pid: u32) -> Login {
        if let Some(login) = self.entries.get(&pid).and_then(|i| i.login.clone()) {
            return login;
        }
        let inherited = self.entries.get(&pid).and_then(|i| i.inherited.clone());
        let mut login = match login::read(&self.proc_root, pid) {
            Some(k) => Login {
                loginname: k
                    .loginuid
                    .map(|uid| self.names.name(uid))
                    .unwrap_or_default(),
                loginuid: k.loginuid,
                sessionid: k.sessionid,
                tty: k.tty,
                pgid: k.pgid,
                sid: k.sid,
                ssh: None,
            },
            None => inherited.clone().unwrap_or_default(),
        };
        login.ssh = match inherited.and_then(|i| i.ssh) {
            Some(ssh) => Some(ssh),
            None => self.ssh_from_ancestors(pid),
        };
        if let Some(info) = self.entries.get_mut(&pid) {
            info.login = Some(login.clone());
        }
        login
    }

    /// The SSH client of the nearest sshd ancestor that has one.
    fn ssh_from_ancestors(&mut self, pid: u32) -> Option<(String, u16)> {
        let chain = self.ancestors(pid);
        for a in chain.iter() {
            if a.unknown {
                return None;
            }
            if !a.name().is_some_and(login::is_ssh_server) {
                continue;
            }
            // Only an sshd that root installed speaks for the client address (checked once per sshd, with
            // the lookup below; a user's copy named sshd is remembered as having no client).
            let known = self
                .ssh_peers
                .get(&a.pid)
                .filter(|(start, _)| *start == a.start)
                .map(|(_, peer)| peer.clone());
            let peer = match known {
                Some(peer) => peer,
                None if self.ssh_lookups.take() => {
                    let peer = login::root_installed(&self.proc_root, a.pid)
                        .then(|| login::ssh_peer(&self.proc_root, a.pid))
                        .flatten();
                    self.ssh_peers.insert(a.pid, (a.start, peer.clone()));
                    peer
                }
                None => None,
            };
            if peer.is_some() {
                return peer;
            }
        }
        None
    }

    /// `pid` as an ancestor of its children (cached until it changes).
    fn snapshot(&mut self, pid: u32) -> Arc<Ancestor> {
        let Some(info) = self.entries.get_mut(&pid) else {
            return unknown(pid);
        };
        if let Some(s) = &info.snapshot {
            return s.clone();
        }
        let s = Arc::new(Ancestor {
            pid,
            start: info.start,
            exe: info.exe.clone(),
            comm: info.comm.clone(),
            argv: bounded_argv(&info.argv),
            unknown: false,
        });
        info.snapshot = Some(s.clone());
        s
    }

    /// What `/proc/<pid>` tells of a process; None when it is gone (the stat file is required).
    fn read_proc(&self, pid: u32) -> Option<ProcInfo> {
        let dir = self.proc_root.join(pid.to_string());
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
        let comm = stat
            .find('(')
            .zip(stat.rfind(')'))
            .and_then(|(a, b)| stat.get(a + 1..b))
            .unwrap_or_default()
            .to_owned();
        let start = stat_field(&stat, 22)
            .and_then(|t| t.parse::<u64>().ok())
            .map(|ticks| {
                let ns = ticks.saturating_mul(1_000_000_000) / self.ticks;
                WallTime(self.boot_wall_ns.saturating_add(ns))
            });
        Some(ProcInfo {
            ppid,
            exe: read_link(&self.proc_root, pid, "exe").unwrap_or_default(),
            argv,
            euid,
            cwd: read_link(&self.proc_root, pid, "cwd").map(Arc::from),
            comm,
            start,
            ..ProcInfo::default()
        })
    }
}

/// An ancestor known only by its pid.
fn unknown(pid: u32) -> Arc<Ancestor> {
    Arc::new(Ancestor {
        pid,
        unknown: true,
        ..Ancestor::default()
    })
}

/// The first entries of `argv` within [`ANCESTOR_ARGV_BYTES`] (the last one cut at a character boundary).
fn bounded_argv(argv: &[String]) -> Vec<String> {
    let mut left = ANCESTOR_ARGV_BYTES;
    let mut out = Vec::new();
    for arg in argv {
        if left == 0 {
            break;
        }
        let mut end = arg.len().min(left);
        while !arg.is_char_boundary(end) {
            end -= 1;
        }
        out.push(arg[..end].to_owned());
        left -= end;
    }
    out
}

/// The pids listed under `proc_root` (the numeric entries of `/proc`); unreadable entries are skipped.
pub fn pids(proc_root: &Path) -> std::io::Result<impl Iterator<Item = u32> + use<>> {
    Ok(std::fs::read_dir(proc_root)?
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok()))
}

fn read_link(proc_root: &Path, pid: u32, what: &str) -> Option<String> {
    std::fs::read_link(proc_root.join(pid.to_string()).join(what))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

#[cfg(test)]
#[path = "proctable_tests.rs"]
mod tests;
