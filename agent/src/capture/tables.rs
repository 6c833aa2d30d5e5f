//! The tables a conversion reads and updates ([`Tables`]: processes, descriptors, sockets, path lists),
//! and resolving a path a process passed against them (its cwd or dirfd, then the canonical walk).

use super::canon::{Last, LiveFs, Lookup, canonicalize};
use super::fdtable::FdTable;
use super::policy::PathPolicy;
use super::proctable::ProcessTable;
use super::resolve::AT_FDCWD;
use super::sockets::SocketTable;
use super::tcpstate::TcpStates;

/// The tables a conversion reads and updates.
pub struct Tables<'a> {
    /// Processes.
    pub procs: &'a mut ProcessTable,
    /// Descriptors.
    pub fds: &'a mut FdTable,
    /// Sockets.
    pub socks: &'a mut SocketTable,
    /// TCP state changes waiting for their syscalls.
    pub tcp: &'a mut TcpStates,
    /// The path lists for records the kernel could not decide on.
    pub policy: &'a PathPolicy,
}

/// A path argument: the canonical path and the raw argument (empty when they are the same), and whether
/// it could be resolved.
pub struct PathArg {
    /// The canonical path (the raw argument when it could not be resolved).
    pub path: String,
    /// The raw argument when it differs from `path`; empty otherwise.
    pub raw: String,
    /// Whether `path` is canonical.
    pub resolved: bool,
}

/// Resolves the path `raw` that thread `tid` of process `pid` passed with dirfd `fd` (`AT_FDCWD`: the
/// cwd), from the process and descriptor tables (and `/proc` while the process lives), following the
/// last component as `last` says.
pub fn resolve_at(
    pid: u32,
    tid: u32,
    raw: &str,
    fd: i64,
    last: Last,
    t: &mut Tables<'_>,
) -> PathArg {
    let base = if raw.starts_with('/') {
        None
    } else if fd == AT_FDCWD {
        t.procs.cwd(pid)
    } else {
        t.fds
            .get(pid, fd)
            .map(|i| i.path.clone())
            .or_else(|| super::resolve::proc_link(pid, &format!("fd/{fd}")))
    };
    let mut view = TableView { t };
    match canonicalize(&mut view, pid, tid, base.as_deref(), raw, last) {
        Some(path) if path == raw => PathArg {
            path,
            raw: String::new(),
            resolved: true,
        },
        Some(path) => PathArg {
            path,
            raw: raw.to_owned(),
            resolved: true,
        },
        None => PathArg {
            path: raw.to_owned(),
            raw: String::new(),
            resolved: false,
        },
    }
}

/// The live file system, with what the tables remember of processes that are gone (their cwd,
/// executable and descriptors; their root is taken to be `/`).
struct TableView<'t, 'a> {
    t: &'t mut Tables<'a>,
}

impl Lookup for TableView<'_, '_> {
    fn symlink(&mut self, pid: u32, path: &str) -> Option<String> {
        LiveFs.symlink(pid, path)
    }

    fn plain(&mut self, pid: u32, path: &str, last: Last) -> bool {
        LiveFs.plain(pid, path, last)
    }

    fn magic(&mut self, pid: u32, what: &str) -> Option<String> {
        if let Some(live) = LiveFs.magic(pid, what) {
            return Some(live);
        }
        match what {
            "root" => Some("/".into()),
            "cwd" => self
                .t
                .procs
                .get(pid)
                .and_then(|i| i.cwd.as_deref().map(str::to_owned)),
            "exe" => self
                .t
                .procs
                .get(pid)
                .map(|i| i.exe.clone())
                .filter(|e| e.starts_with('/')),
            fd => {
                let n: i64 = fd.strip_prefix("fd/")?.parse().ok()?;
                self.t
                    .fds
                    .get(pid, n)
                    .map(|i| i.path.clone())
                    .filter(|p| p.starts_with('/'))
            }
        }
    }
}

/// The file descriptor `fd` of process `pid` was seen opened on (or `/proc` names, while it lives).
pub fn fd_file(pid: u32, fd: i64, t: &Tables<'_>) -> Option<String> {
    t.fds
        .get(pid, fd)
        .map(|i| i.path.clone())
        .or_else(|| super::resolve::proc_link(pid, &format!("fd/{fd}")))
}
