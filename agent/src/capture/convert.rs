//! Turns a paired syscall entry and return into a model event body, resolving paths and keeping the process
//! and descriptor tables current (cwd after chdir, euid after setuid, descriptors after open/memfd_create).

use agent_common::decode::{syscall_bytes, syscall_str};
use agent_common::wire::{
    NO_ARG, SYS_OPEN_DIR, SYS_OPEN_WRITE, SYS_PATH_UNSURE, SYS_STR_UNREADABLE, SYS_STR1_TRUNCATED,
    SYS_STR2_TRUNCATED, Syscall, SyscallOp,
};
use auditloop_model::{self as model, EventBody, FileOp, NetOp};

use super::canon::{Last, LiveFs, Lookup, canonicalize};
use super::fdtable::{FdInfo, FdTable};
use super::policy::PathPolicy;
use super::proctable::ProcessTable;
use super::resolve::{AT_FDCWD, dirfd};
use super::sockaddr;
use super::syscalls::{SyscallDef, builtin_by_number, name_of};

/// The tables a conversion reads and updates.
pub struct Tables<'a> {
    /// Processes.
    pub procs: &'a mut ProcessTable,
    /// Descriptors.
    pub fds: &'a mut FdTable,
    /// The path lists for records the kernel could not decide on.
    pub policy: &'a PathPolicy,
}

fn arg(rec: &Syscall, index: u8) -> Option<u64> {
    (index != NO_ARG)
        .then(|| rec.args.get(usize::from(index)).copied())
        .flatten()
}

fn signed(v: u64) -> i64 {
    v as i64
}

/// A path argument: the canonical path and the raw argument (empty when they are the same), and whether
/// it could be resolved.
pub(super) struct PathArg {
    /// The canonical path (the raw argument when it could not be resolved).
    pub path: String,
    /// The raw argument when it differs from `path`; empty otherwise.
    pub raw: String,
    /// Whether `path` is canonical.
    pub resolved: bool,
}

/// Resolves path argument `slot` against the dirfd argument `dirfd_index` (or the cwd), following the last
/// component as the syscall does.
fn path_of(rec: &Syscall, slot: usize, dirfd_index: u8, last: Last, t: &mut Tables<'_>) -> PathArg {
    let raw = syscall_str(rec, slot);
    let fd = arg(rec, dirfd_index).map_or(AT_FDCWD, dirfd);
    resolve_at(rec.header.pid, rec.header.tid, &raw, fd, last, t)
}

/// Resolves the path `raw` that thread `tid` of process `pid` passed with dirfd `fd` (`AT_FDCWD`: the
/// cwd), from the process and descriptor tables (and `/proc` while the process lives), following the
/// last component as `last` says.
pub(super) fn resolve_at(
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

    fn magic(&mut self, pid: u32, what: &str) -> Option<String> {
        if let Some(live) = LiveFs.magic(pid, what) {
            return Some(live);
        }
        match what {
            "root" => Some("/".into()),
            "cwd" => self.t.procs.get(pid).and_then(|i| i.cwd.clone()),
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

/// Whether a file syscall follows a symbolic link in the last component of its path, given its flags.
fn last_of(op: SyscallOp, name: &str, flags: u64) -> Last {
    const O_NOFOLLOW: u64 = libc::O_NOFOLLOW as u64;
    const AT_SYMLINK_NOFOLLOW: u64 = libc::AT_SYMLINK_NOFOLLOW as u64;
    const AT_SYMLINK_FOLLOW: u64 = libc::AT_SYMLINK_FOLLOW as u64;
    const UMOUNT_NOFOLLOW: u64 = libc::UMOUNT_NOFOLLOW as u64;
    let no_follow_if = |bit: u64| {
        if flags & bit != 0 {
            Last::NoFollow
        } else {
            Last::Follow
        }
    };
    match op {
        SyscallOp::Open => no_follow_if(O_NOFOLLOW),
        SyscallOp::Unlink
        | SyscallOp::Rename
        | SyscallOp::Symlink
        | SyscallOp::Mkdir
        | SyscallOp::Rmdir => Last::NoFollow,
        SyscallOp::Link if name == "linkat" && flags & AT_SYMLINK_FOLLOW != 0 => Last::Follow,
        SyscallOp::Link => Last::NoFollow,
        SyscallOp::Chown if name == "lchown" => Last::NoFollow,
        SyscallOp::Chown | SyscallOp::Chmod | SyscallOp::Utimens => {
            no_follow_if(AT_SYMLINK_NOFOLLOW)
        }
        SyscallOp::Umount => no_follow_if(UMOUNT_NOFOLLOW),
        SyscallOp::Truncate
        | SyscallOp::Mount
        | SyscallOp::Chdir
        | SyscallOp::SetId
        | SyscallOp::Ptrace
        | SyscallOp::Kill
        | SyscallOp::SetName
        | SyscallOp::MemfdCreate
        | SyscallOp::Connect
        | SyscallOp::Bind
        | SyscallOp::Listen
        | SyscallOp::Accept
        | SyscallOp::Raw => Last::Follow,
    }
}

/// The file a descriptor argument names.
fn fd_path(rec: &Syscall, fd: i64, t: &mut Tables<'_>) -> (String, bool) {
    match fd_file(rec.header.pid, fd, t) {
        Some(path) => (path, true),
        None => (format!("fd:{fd}"), false),
    }
}

/// The file descriptor `fd` of process `pid` was seen opened on (or `/proc` names, while it lives).
pub(super) fn fd_file(pid: u32, fd: i64, t: &Tables<'_>) -> Option<String> {
    t.fds
        .get(pid, fd)
        .map(|i| i.path.clone())
        .or_else(|| super::resolve::proc_link(pid, &format!("fd/{fd}")))
}

/// Builds the event body for a syscall entry and its return (`ret` is `None` when the return record was
/// lost); `None` when the record turns out to be filtered: a path the kernel could not decide on whose
/// canonical form is ignored, or a read-only open of a path that is not sensitive.
pub fn body(rec: &Syscall, ret: Option<i64>, t: &mut Tables<'_>) -> Option<EventBody> {
    if rec.flags & SYS_OPEN_DIR != 0 {
        remember_dir(rec, ret, t);
        return None;
    }
    let body = event_body(rec, ret, t);
    if rec.flags & SYS_PATH_UNSURE == 0 {
        return Some(body);
    }
    let EventBody::File(f) = &body else {
        return Some(body);
    };
    let filtered =
        t.policy.ignored(&f.path) || (f.op == FileOp::Read && !t.policy.sensitive(&f.path));
    (!filtered).then_some(body)
}

/// A directory (or `O_PATH`) open: remembers its descriptor as the base of later relative paths.
fn remember_dir(rec: &Syscall, ret: Option<i64>, t: &mut Tables<'_>) {
    let Some(fd) = ret.filter(|r| *r >= 0) else {
        return;
    };
    let def = builtin_by_number(rec.nr)
        .copied()
        .unwrap_or_else(|| SyscallDef::raw("raw"));
    let p = path_of(rec, 0, def.dirfd1, Last::Follow, t);
    if p.resolved {
        t.fds.insert(
            rec.header.pid,
            fd,
            FdInfo {
                path: p.path,
                memfd: None,
                dir: true,
            },
        );
    }
}

fn event_body(rec: &Syscall, ret: Option<i64>, t: &mut Tables<'_>) -> EventBody {
    let op = SyscallOp::from_u32(rec.op).unwrap_or(SyscallOp::Raw);
    let success = matches!(ret, Some(r) if r >= 0);
    let name = name_of(rec.nr).to_string();
    let def = builtin_by_number(rec.nr)
        .copied()
        .unwrap_or_else(|| SyscallDef::raw("raw"));
    let pid = rec.header.pid;
    match op {
        SyscallOp::Raw => EventBody::Syscall(model::RawSyscall {
            name,
            nr: rec.nr,
            args: rec.args.iter().take(rec.nargs as usize).copied().collect(),
            ret,
        }),
        SyscallOp::SetId => {
            let count = rec.nargs.min(3) as usize;
            let ids: Vec<u32> = rec.args.iter().take(count).map(|&a| a as u32).collect();
            if success
                && let Some(euid) = new_euid(&name, &ids, t.procs.get(pid).and_then(|i| i.euid))
            {
                t.procs.on_set_euid(pid, euid);
            }
            EventBody::SetId(model::SetId {
                syscall: name,
                ids,
                ret,
                success,
            })
        }
        SyscallOp::Ptrace => EventBody::Ptrace(model::Ptrace {
            request: signed(rec.args[0]),
            request_name: ptrace_name(signed(rec.args[0])).into(),
            target_pid: signed(rec.args[1]),
            ret,
            success,
        }),
        SyscallOp::Kill => {
            let (target, signal) = if name == "tgkill" {
                (rec.args[1], rec.args[2])
            } else {
                (rec.args[0], rec.args[1])
            };
            EventBody::Kill(model::Kill {
                syscall: name,
                target_pid: i64::from(target as u32 as i32),
                signal: i64::from(signal as u32 as i32),
                ret,
                success,
            })
        }
        SyscallOp::SetName => EventBody::SetName(model::SetName {
            name: syscall_str(rec, 0),
            ret,
        }),
        SyscallOp::MemfdCreate => {
            let name = syscall_str(rec, 0);
            if let Some(fd) = ret.filter(|r| *r >= 0) {
                t.fds.insert(
                    pid,
                    fd,
                    FdInfo {
                        path: format!("/memfd:{name}"),
                        memfd: Some(name.clone()),
                        dir: false,
                    },
                );
            }
            EventBody::MemfdCreate(model::MemfdCreate {
                name,
                flags: rec.args[1],
                ret,
            })
        }
        SyscallOp::Connect => net(rec, NetOp::Connect, ret, success),
        SyscallOp::Bind => net(rec, NetOp::Bind, ret, success),
        SyscallOp::Listen => net(rec, NetOp::Listen, ret, success),
        SyscallOp::Accept => net(rec, NetOp::Accept, ret, success),
        SyscallOp::Open => {
            let write = rec.flags & SYS_OPEN_WRITE != 0;
            let fop = if write { FileOp::Open } else { FileOp::Read };
            EventBody::File(file(rec, op, fop, def, name, ret, success, t))
        }
        SyscallOp::Unlink => {
            EventBody::File(file(rec, op, FileOp::Unlink, def, name, ret, success, t))
        }
        SyscallOp::Rename => {
            EventBody::File(file(rec, op, FileOp::Rename, def, name, ret, success, t))
        }
        SyscallOp::Link => EventBody::File(file(rec, op, FileOp::Link, def, name, ret, success, t)),
        SyscallOp::Symlink => {
            EventBody::File(file(rec, op, FileOp::Symlink, def, name, ret, success, t))
        }
        SyscallOp::Chmod => {
            EventBody::File(file(rec, op, FileOp::Chmod, def, name, ret, success, t))
        }
        SyscallOp::Chown => {
            EventBody::File(file(rec, op, FileOp::Chown, def, name, ret, success, t))
        }
        SyscallOp::Truncate => {
            EventBody::File(file(rec, op, FileOp::Truncate, def, name, ret, success, t))
        }
        SyscallOp::Mkdir => {
            EventBody::File(file(rec, op, FileOp::Mkdir, def, name, ret, success, t))
        }
        SyscallOp::Rmdir => {
            EventBody::File(file(rec, op, FileOp::Rmdir, def, name, ret, success, t))
        }
        SyscallOp::Utimens => {
            EventBody::File(file(rec, op, FileOp::Utimens, def, name, ret, success, t))
        }
        SyscallOp::Mount => {
            EventBody::File(file(rec, op, FileOp::Mount, def, name, ret, success, t))
        }
        SyscallOp::Umount => {
            EventBody::File(file(rec, op, FileOp::Umount, def, name, ret, success, t))
        }
        SyscallOp::Chdir => {
            EventBody::File(file(rec, op, FileOp::Chdir, def, name, ret, success, t))
        }
    }
}

fn net(rec: &Syscall, op: NetOp, ret: Option<i64>, success: bool) -> EventBody {
    let addr = if op == NetOp::Listen {
        sockaddr::SockAddr {
            family: "none".into(),
            address: String::new(),
            port: 0,
        }
    } else {
        sockaddr::decode(syscall_bytes(rec, 0))
    };
    EventBody::Net(model::Net {
        op,
        fd: i64::from(rec.args[0] as u32 as i32),
        family: addr.family,
        address: addr.address,
        port: addr.port,
        backlog: if op == NetOp::Listen {
            i64::from(rec.args[1] as u32 as i32)
        } else {
            0
        },
        ret,
        success: success || (op == NetOp::Connect && ret == Some(-115)),
    })
}

#[expect(clippy::too_many_arguments, reason = "the parts of one syscall record")]
fn file(
    rec: &Syscall,
    op: SyscallOp,
    fop: FileOp,
    def: SyscallDef,
    name: String,
    ret: Option<i64>,
    success: bool,
    t: &mut Tables<'_>,
) -> model::File {
    let pid = rec.header.pid;
    let fd_arg = |i: usize| i64::from(rec.args[i] as u32 as i32);
    let mut out = model::File {
        op: fop,
        syscall: name.clone(),
        path_truncated: rec.flags & (SYS_STR1_TRUNCATED | SYS_STR2_TRUNCATED | SYS_STR_UNREADABLE)
            != 0,
        uid: u32::MAX,
        gid: u32::MAX,
        fd: -1,
        ret,
        success,
        ..model::File::default()
    };
    let a = |i: u8| arg(rec, i).unwrap_or(0);
    match (op, name.as_str()) {
        (SyscallOp::Open, "creat") => out.mode = a(1) as u32,
        (SyscallOp::Open, "openat2") => {}
        (SyscallOp::Open, _) => {
            out.flags = a(def.open_flags);
            out.mode = a(def.open_flags.saturating_add(1)) as u32;
        }
        (SyscallOp::Chmod, "fchmod") => out.mode = a(1) as u32,
        (SyscallOp::Chmod, "chmod") => out.mode = a(1) as u32,
        (SyscallOp::Chmod, "fchmodat2") => (out.mode, out.flags) = (a(2) as u32, a(3)),
        (SyscallOp::Chmod, _) => out.mode = a(2) as u32,
        (SyscallOp::Chown, "fchownat") => {
            (out.uid, out.gid, out.flags) = (a(2) as u32, a(3) as u32, a(4))
        }
        (SyscallOp::Chown, _) => (out.uid, out.gid) = (a(1) as u32, a(2) as u32),
        (SyscallOp::Truncate, _) => out.length = signed(a(1)),
        (SyscallOp::Mkdir, "mkdirat") => out.mode = a(2) as u32,
        (SyscallOp::Mkdir, _) => out.mode = a(1) as u32,
        (SyscallOp::Unlink, "unlinkat") | (SyscallOp::Utimens, _) => {
            out.flags = a(if name == "unlinkat" { 2 } else { 3 })
        }
        (SyscallOp::Rename, "renameat2") => out.flags = a(4),
        (SyscallOp::Link, "linkat") => out.flags = a(4),
        (SyscallOp::Mount, _) => out.flags = a(3),
        (SyscallOp::Umount, _) => out.flags = a(1),
        _ => {}
    }
    let last = last_of(op, &name, out.flags);
    if def.str1 != NO_ARG {
        let p = path_of(rec, 0, def.dirfd1, last, t);
        (out.path, out.raw_path, out.resolved) = (p.path, p.raw, p.resolved);
    } else {
        out.fd = fd_arg(0);
        (out.path, out.resolved) = fd_path(rec, out.fd, t);
    }
    if def.str2 == NO_ARG {
    } else if op == SyscallOp::Symlink || op == SyscallOp::Mount {
        // A symlink's target and a mount's source are strings, not paths the kernel walked here.
        out.target = syscall_str(rec, 1);
    } else {
        // rename and link: the second path's last component is never followed.
        let p = path_of(rec, 1, def.dirfd2, Last::NoFollow, t);
        (out.target, out.raw_target) = (p.path, p.raw);
    }
    if fop == FileOp::Open
        && let Some(fd) = ret.filter(|r| *r >= 0)
    {
        out.fd = fd;
        t.fds.insert(
            pid,
            fd,
            FdInfo {
                path: out.path.clone(),
                memfd: None,
                dir: false,
            },
        );
    }
    if op == SyscallOp::Chdir && success && out.resolved {
        t.procs.on_chdir(pid, out.path.clone());
    }
    out
}

/// The effective uid after a successful setuid-family call, when it changes.
fn new_euid(call: &str, ids: &[u32], old: Option<u32>) -> Option<u32> {
    let keep = u32::MAX;
    match call {
        "setuid" => ids.first().copied(),
        "setreuid" => ids.get(1).copied().filter(|e| *e != keep),
        "setresuid" => ids.get(1).copied().filter(|e| *e != keep),
        _ => None,
    }
    .or(None)
    .filter(|e| Some(*e) != old)
}

fn ptrace_name(request: i64) -> &'static str {
    match request {
        0 => "PTRACE_TRACEME",
        1 => "PTRACE_PEEKTEXT",
        2 => "PTRACE_PEEKDATA",
        4 => "PTRACE_POKETEXT",
        5 => "PTRACE_POKEDATA",
        7 => "PTRACE_CONT",
        8 => "PTRACE_KILL",
        12 => "PTRACE_GETREGS",
        13 => "PTRACE_SETREGS",
        16 => "PTRACE_ATTACH",
        17 => "PTRACE_DETACH",
        0x4206 => "PTRACE_SEIZE",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn euid_changes() {
        assert_eq!(new_euid("setuid", &[1000], Some(0)), Some(1000));
        assert_eq!(
            new_euid("setresuid", &[u32::MAX, 5, u32::MAX], Some(0)),
            Some(5)
        );
        assert_eq!(new_euid("setreuid", &[1, u32::MAX], Some(0)), None);
        assert_eq!(new_euid("setgid", &[1], Some(0)), None);
    }
}
