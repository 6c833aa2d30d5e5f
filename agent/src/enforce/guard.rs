//! The exec guard: refuses an exec that a kill or deny rule names before the program runs one
//! instruction, whatever spelling reached the file.
//!
//! Every file system the agent sees is marked for fanotify's `FAN_OPEN_EXEC_PERM`: when any task opens a
//! file to execute it (`execve`, `execveat` with a dirfd or `AT_EMPTY_PATH`, `/proc/self/fd/N`, a script's
//! interpreter), the task waits in the kernel while this thread looks at the file itself — its path as
//! the kernel resolved it, its device and inode (so a bind mount or a hard link of a named file is the
//! same file), its SHA-256 when a rule asks for one — and answers. A refused exec fails with `EPERM`; for a
//! kill rule the task is also sent SIGKILL while it waits, so it dies inside `execve`. Files allowed once
//! are not asked about again until they are modified (an ignore mark), so the common case costs nothing.
//!
//! The thread never waits on the rest of the agent: it answers first, then records the decision where the
//! capture stage finds it for the exec event. If the agent dies, the kernel lets waiting execs proceed.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::fanotify::{Class, FanEvent, Group};
use crate::identity::Identities;

/// How long a read waits before the thread looks at its stop flag and the mounts again.
const POLL: Duration = Duration::from_millis(200);
/// How often the mounted file systems are looked at again (new ones are marked).
const MOUNT_RESCAN: Duration = Duration::from_secs(2);
/// Decisions kept for the capture stage (one per process, the newest).
const DECISIONS_CAPACITY: usize = 4096;

/// A rule the guard enforces: the exec-time part of a kill or deny rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuardRule {
    /// Rule name.
    pub name: String,
    /// Kill the task as well as refusing the exec.
    pub kill: bool,
    /// Exact executables (any of).
    pub filenames: Vec<String>,
    /// Directory prefixes ending in `/`, or name prefixes (any of).
    pub prefixes: Vec<String>,
    /// Content hashes (any of).
    pub sha256s: Vec<String>,
    /// Real uids (any of).
    pub uids: Vec<u32>,
    /// Parent executable names (any of).
    pub parent_names: Vec<String>,
}

/// An exec the guard refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The rule.
    pub rule: String,
    /// Whether the task was killed too.
    pub killed: bool,
    /// The file, as the kernel resolved it.
    pub path: String,
    /// When (monotonic ns).
    pub mono_ns: u64,
    /// Refused by the kernel's BPF LSM hook (else by this guard).
    pub lsm: bool,
}

/// Refusals by process id, for the capture stage to attach to exec events.
#[derive(Clone, Debug, Default)]
pub struct Decisions {
    inner: Arc<Mutex<HashMap<u32, Decision>>>,
}

impl Decisions {
    /// Records the refusal of an exec of `pid`.
    pub fn put(&self, pid: u32, decision: Decision) {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= DECISIONS_CAPACITY {
            // Unclaimed decisions are of execs whose records were lost; the oldest go first.
            let oldest = map
                .iter()
                .min_by_key(|(_, d)| d.mono_ns)
                .map(|(pid, _)| *pid);
            if let Some(pid) = oldest {
                map.remove(&pid);
            }
        }
        map.insert(pid, decision);
    }

    /// The refusal of an exec of `pid` made within `window` (monotonic ns), if there was one (taken: each
    /// is given out once).
    pub fn take_within(
        &self,
        pid: u32,
        window: &std::ops::RangeInclusive<u64>,
    ) -> Option<Decision> {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if !map.get(&pid).is_some_and(|d| window.contains(&d.mono_ns)) {
            return None;
        }
        map.remove(&pid)
    }
}

/// Why the guard could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// fanotify is not available (kernel without `CONFIG_FANOTIFY_ACCESS_PERMISSIONS`, or no
    /// `CAP_SYS_ADMIN`).
    #[error("fanotify exec permission events are not available")]
    Unavailable(#[source] std::io::Error),
    /// The thread could not be started.
    #[error("starting the exec guard thread")]
    Thread(#[source] std::io::Error),
}

/// The running guard.
#[derive(Debug)]
pub struct ExecGuard {
    rules: Arc<RwLock<Arc<Vec<GuardRule>>>>,
    flush: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ExecGuard {
    /// Marks every file system and starts answering exec permission events by `rules`, recording refusals
    /// in `decisions`.
    pub fn start(rules: Vec<GuardRule>, decisions: Decisions) -> Result<ExecGuard, GuardError> {
        let group = Group::new(Class::Content).map_err(GuardError::Unavailable)?;
        let rules = Arc::new(RwLock::new(Arc::new(rules)));
        let flush = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let mut worker = Worker {
            group,
            rules: Arc::clone(&rules),
            flush: Arc::clone(&flush),
            stop: Arc::clone(&stop),
            decisions,
            marked: Vec::new(),
            identities: Identities::default(),
            targets: Targets::default(),
        };
        worker.mark_filesystems();
        let thread = std::thread::Builder::new()
            .name("auditloop-guard".into())
            .spawn(move || worker.run())
            .map_err(GuardError::Thread)?;
        Ok(ExecGuard {
            rules,
            flush,
            stop,
            thread: Some(thread),
        })
    }

    /// Enforces `rules` from now on (execs allowed under the old rules are asked about again).
    pub fn replace(&self, rules: Vec<GuardRule>) {
        *self.rules.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(rules);
        self.flush.store(true, Ordering::Release);
    }

    /// Whether the guard thread has ended (it only ends when told to stop, or by a panic).
    pub fn is_finished(&self) -> bool {
        self.thread
            .as_ref()
            .is_none_or(std::thread::JoinHandle::is_finished)
    }

    /// Stops the guard; waiting execs are let through by the kernel when the group closes.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Device and inode of the files and directories rules name, looked up again with the mounts.
#[derive(Debug, Default)]
struct Targets {
    inodes: HashMap<String, (u64, u64)>,
}

impl Targets {
    fn refresh(&mut self, rules: &[GuardRule]) {
        self.inodes.clear();
        for rule in rules {
            for path in rule.filenames.iter().chain(&rule.prefixes) {
                if let Ok(meta) = std::fs::metadata(path) {
                    self.inodes.insert(path.clone(), (meta.dev(), meta.ino()));
                }
            }
        }
    }

    fn same(&self, path: &str, id: (u64, u64)) -> bool {
        self.inodes.get(path) == Some(&id)
    }
}

struct Worker {
    group: Group,
    rules: Arc<RwLock<Arc<Vec<GuardRule>>>>,
    flush: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    decisions: Decisions,
    marked: Vec<u64>,
    identities: Identities,
    targets: Targets,
}

/// File systems whose files cannot be executed or cannot be marked.
const PSEUDO: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devpts",
    "mqueue",
    "bpf",
    "tracefs",
    "debugfs",
    "securityfs",
    "pstore",
    "configfs",
    "fusectl",
    "binfmt_misc",
    "nsfs",
    "autofs",
    "efivarfs",
    "rpc_pipefs",
    "selinuxfs",
];

impl Worker {
    fn run(&mut self) {
        let mut last_scan = Instant::now();
        self.targets.refresh(&self.current());
        while !self.stop.load(Ordering::Acquire) {
            if self.flush.swap(false, Ordering::AcqRel) {
                if let Err(err) = self.group.flush_inode_marks() {
                    tracing::warn!("exec guard: forgetting allowed files: {err}");
                }
                self.targets.refresh(&self.current());
            }
            if last_scan.elapsed() >= MOUNT_RESCAN {
                last_scan = Instant::now();
                self.mark_filesystems();
                self.targets.refresh(&self.current());
            }
            let events = match self.group.read(POLL) {
                Ok(events) => events,
                Err(err) => {
                    tracing::error!("exec guard: reading fanotify events: {err}");
                    std::thread::sleep(POLL);
                    continue;
                }
            };
            for event in events {
                if event.mask & libc::FAN_OPEN_EXEC_PERM != 0 {
                    self.answer(&event);
                }
            }
        }
    }

    fn current(&self) -> Arc<Vec<GuardRule>> {
        Arc::clone(&self.rules.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Marks file systems not marked yet, from `/proc/self/mountinfo`.
    fn mark_filesystems(&mut self) {
        let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        for mount in text.lines().filter_map(Mount::parse) {
            if PSEUDO.contains(&mount.fstype) || self.marked.contains(&mount.dev) {
                continue;
            }
            match self
                .group
                .mark_filesystem(Path::new(&mount.point), libc::FAN_OPEN_EXEC_PERM)
            {
                Ok(()) => self.marked.push(mount.dev),
                // Some file systems cannot be marked (no file handles); nothing there is guarded.
                Err(err) => {
                    self.marked.push(mount.dev);
                    tracing::debug!(mount = %mount.point, fstype = mount.fstype, "exec guard: not marked: {err}");
                }
            }
        }
    }

    fn answer(&mut self, event: &FanEvent) {
        let rules = self.current();
        let refusal = self.refusal(&rules, event);
        let cacheable = rules
            .iter()
            .all(|r| r.uids.is_empty() && r.parent_names.is_empty());
        match refusal {
            Some(decision) => {
                let killed = decision.killed;
                // Recorded before the task can go on: a SIGKILL ends its wait at once, and its exec's return
                // may reach the capture stage before this thread runs again.
                self.decisions.put(event.pid, decision);
                if killed {
                    kill(event.pid);
                }
                if let Err(err) = self.group.respond(event, false) {
                    tracing::error!("exec guard: answering: {err}");
                }
            }
            None => {
                if let Err(err) = self.group.respond(event, true) {
                    tracing::error!("exec guard: answering: {err}");
                }
                if cacheable && let Some(file) = &event.file {
                    let _ = self
                        .group
                        .ignore_until_modified(file, libc::FAN_OPEN_EXEC_PERM);
                }
            }
        }
    }

    fn refusal(&mut self, rules: &[GuardRule], event: &FanEvent) -> Option<Decision> {
        if rules.is_empty() {
            return None;
        }
        let file = event.file.as_ref()?;
        let path = event.path().unwrap_or_default();
        let meta = file.metadata().ok()?;
        let id = (meta.dev(), meta.ino());
        let wants_sha = rules.iter().any(|r| !r.sha256s.is_empty());
        let sha256 = if wants_sha {
            self.identities.of_file(file).and_then(|i| i.sha256)
        } else {
            None
        };
        let uid = rules
            .iter()
            .any(|r| !r.uids.is_empty())
            .then(|| real_uid(event.pid))
            .flatten();
        let parent = rules
            .iter()
            .any(|r| !r.parent_names.is_empty())
            .then(|| parent_name(event.pid))
            .flatten();
        let rule = rules.iter().find(|r| {
            self.path_matches(r, &path, id)
                && (r.sha256s.is_empty() || sha256.as_ref().is_some_and(|s| r.sha256s.contains(s)))
                && (r.uids.is_empty() || uid.is_some_and(|u| r.uids.contains(&u)))
                && (r.parent_names.is_empty()
                    || parent.as_ref().is_some_and(|p| r.parent_names.contains(p)))
        })?;
        Some(Decision {
            rule: rule.name.clone(),
            killed: rule.kill,
            path,
            mono_ns: crate::clock::monotonic_ns(),
            lsm: false,
        })
    }

    /// Whether the executed file is one the rule names: by path as the kernel resolved it, or by
    /// identity (a named file's device and inode; a named directory reached through a bind mount).
    fn path_matches(&self, rule: &GuardRule, path: &str, id: (u64, u64)) -> bool {
        if rule.filenames.is_empty() && rule.prefixes.is_empty() {
            return true;
        }
        if rule
            .filenames
            .iter()
            .any(|f| f == path || self.targets.same(f, id))
        {
            return true;
        }
        rule.prefixes.iter().any(|p| {
            path.starts_with(p.as_str())
                || (p.ends_with('/')
                    && ancestors(path).any(|dir| {
                        std::fs::metadata(dir)
                            .is_ok_and(|m| self.targets.same(p, (m.dev(), m.ino())))
                    }))
        })
    }
}

/// The directories above `path`, nearest first (not `/`).
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut rest = path;
    std::iter::from_fn(move || {
        let i = rest.rfind('/')?;
        rest = &rest[..i];
        (!rest.is_empty()).then_some(rest)
    })
}

/// One line of `/proc/self/mountinfo`: the device, mount point and file system type.
struct Mount<'a> {
    dev: u64,
    point: String,
    fstype: &'a str,
}

impl<'a> Mount<'a> {
    fn parse(line: &'a str) -> Option<Mount<'a>> {
        let mut fields = line.split(' ');
        let dev = fields.nth(2)?;
        let point = fields.nth(1)?;
        let (major, minor) = dev.split_once(':')?;
        let dev = (major.parse::<u64>().ok()? << 32) | minor.parse::<u64>().ok()?;
        let mut rest = fields.skip_while(|f| *f != "-");
        rest.next()?;
        let fstype = rest.next()?;
        Some(Mount {
            dev,
            point: unescape(point),
            fstype,
        })
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space, …).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(oct) = field.get(i + 1..i + 4)
            && let Ok(v) = u8::from_str_radix(oct, 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The real uid of `pid` (`/proc/<pid>/status`).
fn real_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The name (basename of the executable) of `pid`'s parent.
fn parent_name(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ppid = crate::procfs::stat_field(&stat, 4)?;
    let exe = std::fs::read_link(format!("/proc/{ppid}/exe")).ok()?;
    Some(exe.file_name()?.to_string_lossy().into_owned())
}

/// SIGKILL to `pid` through a pidfd (the task is waiting in the kernel for this guard's answer, so its pid
/// cannot be reused meanwhile).
fn kill(pid: u32) {
    // SAFETY: plain syscalls; the pidfd is closed below.
    unsafe {
        let fd = libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0);
        if fd < 0 {
            return;
        }
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd as libc::c_int,
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        );
        libc::close(fd as libc::c_int);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_parse() {
        let line = "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw";
        let m = Mount::parse(line).unwrap();
        assert_eq!((m.point.as_str(), m.fstype), ("/mnt/with space", "ext3"));
        assert_eq!(m.dev, 98 << 32, "major 98, minor 0");
        assert!(Mount::parse("garbage").is_none());
    }

    #[test]
    fn ancestors_nearest_first() {
        let all: Vec<&str> = ancestors("/tmp/k/sub/prog").collect();
        assert_eq!(all, ["/tmp/k/sub", "/tmp/k", "/tmp"]);
    }
}
