//! Self-protection: which journaled events are another process acting on the agent. A signal or a stop
//! aimed at it (any of its threads, its process group, or every process), a ptrace of it, a read or write
//! of its memory, a change to its binary, config, rules, keys, token or journal (or a rename or mount over
//! a directory above them), and a `bpf()` command that changes one of its programs, links or maps through
//! a descriptor opened by id. Each becomes a `tamper` event that follows the one that showed it; the
//! agent's own checks of its kernel objects (see [`crate::capture::integrity`]) add the rest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use auditloop_model::{Event, EventBody, FileOp, Tamper};

use crate::capture::integrity::OwnObjects;

/// `bpf()` commands that open an object by id: (command, object kind).
const BY_ID: &[(u64, &str)] = &[(13, "program"), (14, "map"), (30, "link")];
/// `bpf()` commands that change an object through a descriptor in the first word of `attr`.
const CHANGES: &[(u64, &str)] = &[
    (2, "BPF_MAP_UPDATE_ELEM"),
    (3, "BPF_MAP_DELETE_ELEM"),
    (9, "BPF_PROG_DETACH"),
    (21, "BPF_MAP_LOOKUP_AND_DELETE_ELEM"),
    (22, "BPF_MAP_FREEZE"),
    (29, "BPF_LINK_UPDATE"),
    (34, "BPF_LINK_DETACH"),
];
/// Descriptors remembered per process, at most (a process opening more is tracked from scratch).
const MAX_HANDLES: usize = 4096;

/// The agent's identity and files, and the descriptors other processes opened to its kernel objects.
#[derive(Debug)]
pub struct SelfProtect {
    pid: u32,
    pgid: i64,
    files: Vec<String>,
    dirs: Vec<String>,
    own: OwnObjects,
    /// (pid, fd) → the object it refers to (`link 12`).
    handles: HashMap<(u32, i64), String>,
}

/// The agent's files that others must not change.
#[derive(Clone, Debug, Default)]
pub struct Protected {
    /// Files (the binary, config, token, certificates).
    pub files: Vec<PathBuf>,
    /// Directories whose whole content is the agent's (the state directory; a rules directory).
    pub dirs: Vec<PathBuf>,
}

/// The canonical spelling of `path` (as given when it does not exist).
fn canonical(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_owned())
        .to_string_lossy()
        .into_owned()
}

impl SelfProtect {
    /// Protects this process and `protected`; `own` names its kernel objects.
    pub fn new(protected: &Protected, own: OwnObjects) -> SelfProtect {
        let mut files: Vec<String> = protected.files.iter().map(|p| canonical(p)).collect();
        if let Ok(exe) = std::fs::read_link("/proc/self/exe") {
            let exe = exe.to_string_lossy();
            files.push(exe.trim_end_matches(" (deleted)").to_owned());
        }
        let dirs = protected
            .dirs
            .iter()
            .map(|d| {
                let mut d = canonical(d);
                if !d.ends_with('/') {
                    d.push('/');
                }
                d
            })
            .collect();
        SelfProtect {
            pid: std::process::id(),
            pgid: i64::from(nix::unistd::getpgrp().as_raw()),
            files,
            dirs,
            own,
            handles: HashMap::new(),
        }
    }

    /// The `tamper` body `event` calls for, if it is another process acting on the agent.
    pub fn check(&mut self, event: &Event) -> Option<Tamper> {
        if event.process.pid == self.pid {
            return None;
        }
        let body = &event.event;
        let (what, target, detail) = if let EventBody::Kill(k) = body {
            self.signal(k)?
        } else if let EventBody::Ptrace(t) = body {
            if !self.is_agent(t.target_pid) {
                return None;
            }
            (
                "ptrace",
                format!("pid {}", t.target_pid),
                format!(
                    "ptrace({}) {}",
                    name_or(&t.request_name, t.request),
                    outcome(t.ret)
                ),
            )
        } else if let EventBody::Syscall(s) = body {
            self.syscall(event.process.pid, s)?
        } else if let EventBody::File(f) = body {
            self.file(f)?
        } else {
            return None;
        };
        Some(Tamper {
            what: what.into(),
            target,
            detail,
            trigger_seq: event.seq,
        })
    }

    /// Whether `pid` is the agent or one of its threads.
    fn is_agent(&self, pid: i64) -> bool {
        pid == i64::from(self.pid)
            || (pid > 0 && Path::new(&format!("/proc/self/task/{pid}")).exists())
    }

    fn signal(&self, k: &auditloop_model::Kill) -> Option<(&'static str, String, String)> {
        let t = k.target_pid;
        let aimed = self.is_agent(t) || t == -1 || (t < -1 && -t == self.pgid);
        // SIGCHLD is the kernel telling the agent about a child; not another process acting on it.
        if !aimed || k.signal == i64::from(libc::SIGCHLD) {
            return None;
        }
        let stop = [libc::SIGSTOP, libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU]
            .iter()
            .any(|s| i64::from(*s) == k.signal);
        let name = i32::try_from(k.signal)
            .ok()
            .and_then(|s| nix::sys::signal::Signal::try_from(s).ok())
            .map_or_else(|| format!("signal {}", k.signal), |s| s.as_str().to_owned());
        Some((
            if stop { "stop" } else { "signal" },
            format!("pid {t}"),
            format!("{}({name}) {}", k.syscall, outcome(k.ret)),
        ))
    }

    fn syscall(
        &mut self,
        pid: u32,
        s: &auditloop_model::RawSyscall,
    ) -> Option<(&'static str, String, String)> {
        let arg = |i: usize| s.args.get(i).copied().unwrap_or(0);
        match s.name.as_str() {
            "process_vm_readv" | "process_vm_writev" if self.is_agent(arg(0) as i64) => Some((
                "memory",
                format!("pid {}", arg(0)),
                format!("{} {}", s.name, outcome(s.ret)),
            )),
            "bpf" => self.bpf(pid, arg(0), arg(1), s.ret),
            _ => None,
        }
    }

    /// Follows descriptors opened by id to the agent's objects, and reports a change made through one.
    fn bpf(
        &mut self,
        pid: u32,
        cmd: u64,
        first: u64,
        ret: Option<i64>,
    ) -> Option<(&'static str, String, String)> {
        let word = first & 0xffff_ffff;
        if let Some((_, kind)) = BY_ID.iter().find(|(c, _)| *c == cmd) {
            let ids = self.own.get();
            let set = match *kind {
                "program" => &ids.programs,
                "map" => &ids.maps,
                _ => &ids.links,
            };
            if let (true, Some(fd)) = (
                u32::try_from(word).is_ok_and(|id| set.contains(&id)),
                ret.filter(|r| *r >= 0),
            ) {
                if self.handles.len() >= MAX_HANDLES {
                    self.handles.clear();
                }
                self.handles.insert((pid, fd), format!("{kind} {word}"));
            }
            return None;
        }
        let (_, name) = CHANGES.iter().find(|(c, _)| *c == cmd)?;
        let object = self.handles.get(&(pid, word as i64))?;
        Some((
            "bpf",
            object.clone(),
            format!("bpf({name}) on the agent's {object} {}", outcome(ret)),
        ))
    }

    fn file(&self, f: &auditloop_model::File) -> Option<(&'static str, String, String)> {
        let write_open =
            f.flags & (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) as u64 != 0;
        let (direct, above) = match f.op {
            FileOp::Open => (write_open, false),
            FileOp::Read => (true, false),
            FileOp::Unlink | FileOp::Rename | FileOp::Rmdir | FileOp::Mount => (true, true),
            FileOp::Link
            | FileOp::Chmod
            | FileOp::Chown
            | FileOp::Truncate
            | FileOp::Mkdir
            | FileOp::Utimens
            | FileOp::Umount
            | FileOp::Symlink => (true, false),
            FileOp::Chdir => (false, false),
        };
        if !direct {
            return None;
        }
        // A symlink's target is the text it holds, not a file it changes.
        let paths: &[&String] = if f.op == FileOp::Symlink {
            &[&f.path]
        } else {
            &[&f.path, &f.target]
        };
        let hit = paths
            .iter()
            .filter(|p| !p.is_empty())
            .find(|p| self.protects(p) || (above && self.is_above(p)))?;
        let what = if f.op == FileOp::Read {
            "read"
        } else {
            "write"
        };
        Some((
            what,
            (*hit).clone(),
            format!("{}({hit}) {}", f.syscall, outcome(f.ret)),
        ))
    }

    /// Whether `path` is one of the agent's files or inside one of its directories.
    fn protects(&self, path: &str) -> bool {
        self.files.iter().any(|f| f == path)
            || self
                .dirs
                .iter()
                .any(|d| path.starts_with(d.as_str()) || path == d.trim_end_matches('/'))
    }

    /// Whether `path` is a directory above one of the agent's files or directories.
    fn is_above(&self, path: &str) -> bool {
        let dir = format!("{}/", path.trim_end_matches('/'));
        self.files
            .iter()
            .chain(&self.dirs)
            .any(|p| p.starts_with(&dir))
    }
}

fn name_or(name: &str, number: i64) -> String {
    if name.is_empty() {
        number.to_string()
    } else {
        name.to_owned()
    }
}

fn outcome(ret: Option<i64>) -> String {
    match ret {
        Some(r) if r >= 0 => "succeeded".into(),
        Some(r) => format!("failed (errno {})", -r),
        None => "(result unknown)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditloop_model::{File, Kill, Ptrace, RawSyscall};

    fn protect(dir: &Path) -> SelfProtect {
        SelfProtect::new(
            &Protected {
                files: vec![dir.join("config.yaml")],
                dirs: vec![dir.join("state")],
            },
            OwnObjects::default(),
        )
    }

    fn from(pid: u32, body: EventBody) -> Event {
        let mut e = crate::clock::Clock::measure().agent_event(body);
        e.process.pid = pid;
        e.seq = 9;
        e
    }

    fn file(op: FileOp, path: &str, target: &str) -> EventBody {
        EventBody::File(File {
            op,
            syscall: "x".into(),
            path: path.into(),
            target: target.into(),
            flags: 1,
            ..File::default()
        })
    }

    #[test]
    fn signals_stops_and_ptrace_aimed_at_the_agent() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = protect(dir.path());
        let me = i64::from(std::process::id());
        let kill = |target, signal| {
            EventBody::Kill(Kill {
                syscall: "kill".into(),
                target_pid: target,
                signal,
                ret: Some(0),
                success: true,
            })
        };
        let t = p.check(&from(1, kill(me, 15))).unwrap();
        assert_eq!((t.what.as_str(), t.trigger_seq), ("signal", 9));
        assert!(t.detail.contains("SIGTERM"), "{}", t.detail);
        assert_eq!(p.check(&from(1, kill(me, 19))).unwrap().what, "stop");
        assert_eq!(p.check(&from(1, kill(-1, 9))).unwrap().what, "signal");
        assert!(p.check(&from(1, kill(me, 17))).is_none(), "SIGCHLD");
        assert!(p.check(&from(1, kill(me + 100_000, 9))).is_none());
        // The agent signalling itself is not tamper.
        assert!(p.check(&from(std::process::id(), kill(me, 15))).is_none());
        let trace = EventBody::Ptrace(Ptrace {
            request: 0x4206,
            request_name: "PTRACE_SEIZE".into(),
            target_pid: me,
            ret: Some(0),
            success: true,
        });
        assert_eq!(p.check(&from(1, trace)).unwrap().what, "ptrace");
    }

    #[test]
    fn changes_to_its_files_and_the_directories_above_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let base = base.to_str().unwrap();
        let mut p = protect(dir.path());
        let cfg = format!("{base}/config.yaml");
        let journal = format!("{base}/state/journal/000001.seg");
        for body in [
            file(FileOp::Open, &cfg, ""),
            file(FileOp::Truncate, &journal, ""),
            file(FileOp::Rename, "/tmp/evil", &cfg),
            file(FileOp::Link, &journal, "/tmp/alias"),
            file(FileOp::Rename, base, "/tmp/moved"),
            file(FileOp::Mount, &format!("{base}/state"), "/tmp/x"),
        ] {
            let t = p.check(&from(1, body.clone()));
            assert_eq!(t.map(|t| t.what), Some("write".into()), "{body:?}");
        }
        // A read-only open, a chmod of a directory above, and a neighbour are not.
        let mut read_only = file(FileOp::Open, &cfg, "");
        if let EventBody::File(f) = &mut read_only {
            f.flags = 0;
        }
        assert!(p.check(&from(1, read_only)).is_none());
        assert!(p.check(&from(1, file(FileOp::Chmod, base, ""))).is_none());
        let neighbour = format!("{base}/config.yaml.bak");
        assert!(
            p.check(&from(1, file(FileOp::Open, &neighbour, "")))
                .is_none()
        );
        let other = format!("{base}/stateful/x");
        assert!(p.check(&from(1, file(FileOp::Open, &other, ""))).is_none());
    }

    #[test]
    fn bpf_changes_through_a_descriptor_opened_by_id() {
        let own = OwnObjects::default();
        own.set_for_test(&[7], &[12], &[30]);
        let mut p = SelfProtect::new(&Protected::default(), own);
        let bpf = |cmd: u64, first: u64, ret: i64| {
            EventBody::Syscall(RawSyscall {
                name: "bpf".into(),
                nr: 321,
                args: vec![cmd, first, 128],
                ret: Some(ret),
            })
        };
        // Another process's own link: nothing.
        assert!(p.check(&from(50, bpf(30, 99, 5))).is_none());
        assert!(p.check(&from(50, bpf(34, 5, -95))).is_none());
        // The agent's link opened by id, then detached through that descriptor.
        assert!(p.check(&from(50, bpf(30, 12, 6))).is_none());
        let t = p.check(&from(50, bpf(34, 6, -95))).unwrap();
        assert_eq!((t.what.as_str(), t.target.as_str()), ("bpf", "link 12"));
        assert!(t.detail.contains("BPF_LINK_DETACH"), "{}", t.detail);
        // The same descriptor number in another process is not that handle.
        assert!(p.check(&from(51, bpf(34, 6, 0))).is_none());
        // A map update through a descriptor of the agent's map.
        assert!(p.check(&from(50, bpf(14, 30, 7))).is_none());
        assert_eq!(p.check(&from(50, bpf(2, 7, 0))).unwrap().target, "map 30");
    }
}
