//! Sensitive files by inode: every successful open of a file in `capture.sensitive_paths`, whatever name
//! reached it.
//!
//! The tracepoint programs see the path a process passed; a symbolic link, a hard link, a bind mount or an
//! io_uring request reaches the same file under a name (or through an interface) the kernel's path filter
//! never sees. fanotify reports opens by inode: each sensitive file is marked (and each sensitive directory,
//! for the files directly in it), so any open of them is reported with the process and the file itself.
//!
//! Most such opens are also recorded by the tracepoints, with the syscall, flags and result; fanotify's
//! report is held for [`HOLD`] and dropped when a tracepoint read of the same file by the same process
//! is seen near it. What remains — an open the tracepoints missed — becomes a `file` event of op `read`
//! with `syscall: "fanotify"`, the file's path as the kernel resolved it and no raw path.
//!
//! Files are re-marked when their inode changes (tools like `passwd` replace `/etc/shadow` by rename),
//! looked at every [`RESCAN`]; an open of the new file in that window can only be seen by the tracepoints.

use std::collections::VecDeque;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use auditloop_model::{EventBody, File, FileOp, Process};

use crate::fanotify::{Class, Group};

/// How long a fanotify report waits for the tracepoint record of the same open.
pub const HOLD: Duration = Duration::from_millis(250);
/// How often the marked files are checked for a new inode.
pub const RESCAN: Duration = Duration::from_secs(1);
/// Tracepoint reads remembered for matching.
const RECENT: usize = 1024;

/// An open reported by fanotify, waiting for its tracepoint twin.
#[derive(Debug)]
struct Held {
    pid: u32,
    process: Process,
    id: (u64, u64),
    /// The sensitive file's own name (the entry it was marked under).
    path: String,
    /// The name the kernel resolved, when it differs (a bind mount).
    raw: String,
    seen: Instant,
    mono_ns: u64,
}

/// The fanotify side of sensitive reads.
#[derive(Debug)]
pub struct SensitiveWatch {
    group: Group,
    entries: Vec<String>,
    marked: Vec<(String, (u64, u64))>,
    last_scan: Instant,
    held: VecDeque<Held>,
    recent: VecDeque<(u32, (u64, u64), u64)>,
    own_pid: u32,
    ignore_pids: Vec<u32>,
    ignore_comms: Vec<String>,
}

impl SensitiveWatch {
    /// Marks the files and directories of `entries` (`/`-ending entries are directories, `*`-ending ones
    /// name prefixes in a directory). Fails when fanotify is not available.
    pub fn open(entries: &[String]) -> std::io::Result<SensitiveWatch> {
        let group = Group::new_nonblocking(Class::Notify)?;
        let mut watch = SensitiveWatch {
            group,
            entries: entries.to_vec(),
            marked: Vec::new(),
            last_scan: Instant::now(),
            held: VecDeque::new(),
            recent: VecDeque::new(),
            own_pid: std::process::id(),
            ignore_pids: Vec::new(),
            ignore_comms: Vec::new(),
        };
        watch.mark_all();
        Ok(watch)
    }

    /// The group, to poll.
    pub fn group(&self) -> &Group {
        &self.group
    }

    /// Leaves out opens by these processes and task names, as the kernel filters do.
    pub fn set_ignore(&mut self, pids: &[u32], comms: &[String]) {
        self.ignore_pids = pids.to_vec();
        self.ignore_comms = comms.to_vec();
    }

    /// Uses `entries` from now on (on reload).
    pub fn set_entries(&mut self, entries: &[String]) {
        if self.entries != entries {
            self.entries = entries.to_vec();
            let _ = self.group.flush_inode_marks();
            self.marked.clear();
            self.mark_all();
        }
    }

    /// Every existing file (and directory) the entries name, with its inode.
    fn targets(&self) -> Vec<(String, (u64, u64), bool)> {
        let mut out = Vec::new();
        for entry in &self.entries {
            if let Some(prefix) = entry.strip_suffix('*') {
                let (dir, name) = match prefix.rfind('/') {
                    Some(i) => (&prefix[..=i], &prefix[i + 1..]),
                    None => continue,
                };
                let Ok(children) = std::fs::read_dir(dir) else {
                    continue;
                };
                for child in children.flatten() {
                    if child.file_name().to_string_lossy().starts_with(name)
                        && let Ok(meta) = child.metadata()
                    {
                        let path = child.path().to_string_lossy().into_owned();
                        out.push((path, (meta.dev(), meta.ino()), false));
                    }
                }
            } else if let Ok(meta) = std::fs::metadata(entry) {
                out.push((entry.clone(), (meta.dev(), meta.ino()), meta.is_dir()));
            }
        }
        out
    }

    fn mark_all(&mut self) {
        for (path, id, dir) in self.targets() {
            if self.marked.iter().any(|(p, i)| *p == path && *i == id) {
                continue;
            }
            let mask = if dir {
                libc::FAN_OPEN | libc::FAN_EVENT_ON_CHILD
            } else {
                libc::FAN_OPEN
            };
            match self.group.mark_inode(Path::new(&path), mask) {
                Ok(()) => {
                    self.marked.retain(|(p, _)| *p != path);
                    self.marked.push((path, id));
                }
                Err(err) => tracing::debug!(%path, "sensitive file not marked: {err}"),
            }
        }
        self.last_scan = Instant::now();
    }

    /// Remembers a read of a sensitive file the tracepoints recorded, so fanotify's report of the same open
    /// is dropped.
    pub fn seen_by_tracepoint(&mut self, pid: u32, path: &str, mono_ns: u64) {
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let id = (meta.dev(), meta.ino());
        self.held.retain(|h| !(h.pid == pid && h.id == id));
        if self.recent.len() >= RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((pid, id, mono_ns));
    }

    /// Reads fanotify's reports (without blocking) and holds them.
    pub fn read(&mut self) {
        let Ok(events) = self.group.read_now() else {
            return;
        };
        let now_ns = crate::clock::monotonic_ns();
        for event in events {
            if event.pid == self.own_pid
                || event.mask & libc::FAN_OPEN == 0
                || self.ignore_pids.contains(&event.pid)
            {
                continue;
            }
            if !self.ignore_comms.is_empty() {
                let comm = std::fs::read_to_string(format!("/proc/{}/comm", event.pid))
                    .unwrap_or_default();
                if self.ignore_comms.iter().any(|c| c == comm.trim_end()) {
                    continue;
                }
            }
            let Some(file) = &event.file else {
                continue;
            };
            let Ok(meta) = file.metadata() else {
                continue;
            };
            let id = (meta.dev(), meta.ino());
            let twin = self.recent.iter().any(|&(pid, i, t)| {
                pid == event.pid && i == id && now_ns.abs_diff(t) < 1_000_000_000
            });
            if twin || meta.is_dir() {
                continue;
            }
            let resolved = event.path().unwrap_or_default();
            let path = self.own_name(&resolved, id);
            self.held.push_back(Held {
                pid: event.pid,
                process: process_of(event.pid),
                id,
                raw: if path == resolved {
                    String::new()
                } else {
                    resolved
                },
                path,
                seen: Instant::now(),
                mono_ns: now_ns,
            });
        }
    }

    /// The name a sensitive file is known by: the marked entry with its inode (a hard link, or a bind
    /// mount of the file), or the marked directory holding it (a bind mount of the directory); else the
    /// name the kernel resolved.
    fn own_name(&self, resolved: &str, id: (u64, u64)) -> String {
        if let Some((path, _)) = self.marked.iter().find(|(_, i)| *i == id) {
            return path.clone();
        }
        if let Some((dir, name)) = resolved.rsplit_once('/')
            && let Ok(meta) = std::fs::metadata(if dir.is_empty() { "/" } else { dir })
            && let Some((marked, _)) = self
                .marked
                .iter()
                .find(|(_, i)| *i == (meta.dev(), meta.ino()))
        {
            return format!("{}/{name}", marked.trim_end_matches('/'));
        }
        resolved.to_owned()
    }

    /// Reports held past [`HOLD`] with no tracepoint twin, as `file` read bodies with their process and
    /// time; also re-marks files whose inode changed, every [`RESCAN`].
    pub fn due(&mut self) -> Vec<(Process, u64, EventBody)> {
        if self.last_scan.elapsed() >= RESCAN {
            self.mark_all();
        }
        let mut out = Vec::new();
        while let Some(h) = self.held.front() {
            if h.seen.elapsed() < HOLD {
                break;
            }
            let Some(h) = self.held.pop_front() else {
                break;
            };
            out.push((
                h.process,
                h.mono_ns,
                EventBody::File(File {
                    op: FileOp::Read,
                    syscall: "fanotify".into(),
                    path: h.path,
                    raw_path: h.raw,
                    resolved: true,
                    fd: -1,
                    uid: u32::MAX,
                    gid: u32::MAX,
                    ret: Some(0),
                    success: true,
                    ..File::default()
                }),
            ));
        }
        out
    }
}

/// A process by pid, from `/proc` (for events with no kernel record header).
pub fn process_of(pid: u32) -> Process {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let num = |v: &[String], i: usize| v.get(i).and_then(|x| x.parse().ok()).unwrap_or(0);
    let uid = field("Uid:");
    let gid = field("Gid:");
    Process {
        pid,
        tid: pid,
        ppid: num(&field("PPid:"), 0),
        uid: num(&uid, 0),
        gid: num(&gid, 0),
        comm: field("Name:").join(" "),
        euid: num(&uid, 1),
        exe: std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
        ..Process::default()
    }
}
