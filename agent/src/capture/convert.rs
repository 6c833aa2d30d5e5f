//! Turns a paired syscall entry and return into a model event body, resolving paths and keeping the process
//! and descriptor tables current (cwd after chdir, euid after setuid, descriptors after open/memfd_create).

use agent_common::decode::syscall_str;
use agent_common::wire::{
    NO_ARG, SYS_OPEN_DIR, SYS_OPEN_WRITE, SYS_PATH_UNSURE, SYS_STR_UNREADABLE, SYS_STR1_TRUNCATED,
    SYS_STR2_TRUNCATED, Syscall, SyscallOp,
};
use auditloop_model::{self as model, EventBody, FileOp, NetOp};

use super::canon::Last;
use super::fdtable::FdInfo;
use super::net;
use super::resolve::{AT_FDCWD, dirfd};
use super::syscalls::{SyscallDef, builtin_by_number, name_of};
use super::tables::{PathArg, Tables, fd_file, resolve_at};

fn arg(rec: &Syscall, index: u8) -> Option<u64> {
    (index != NO_ARG)
        .then(|| rec.args.get(usize::from(index)).copied())
        .flatten()
}

fn signed(v: u64) -> i64 {
    v as i64
}

/// Resolves path argument `slot` against the dirfd argument `dirfd_index` (or the cwd), following the last
/// component as the syscall does.
fn path_of(rec: &Syscall, slot: usize, dirfd_index: u8, last: Last, t: &mut Tables<'_>) -> PathArg {
    let raw = syscall_str(rec, slot);
    let fd = arg(rec, dirfd_index).map_or(AT_FDCWD, dirfd);
    resolve_at(rec.header.pid, rec.header.tid, &raw, fd, last, t)
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
        | SyscallOp::Raw
        | SyscallOp::Socket => Last::Follow,
    }
}

/// The file a descriptor argument names.
fn fd_path(rec: &Syscall, fd: i64, t: &mut Tables<'_>) -> (String, bool) {
    match fd_file(rec.header.pid, fd, t) {
        Some(path) => (path, true),
        None => (format!("fd:{fd}"), false),
    }
}

/// Builds the event body for a syscall entry and its return (`ret` is `None` when the return record was
/// lost); `None` when the record is not an event (a `socket`, a directory open) or turns out to be
/// filtered: a path the kernel could not decide on whose canonical form is ignored, or a read-only open of
/// a path that is not sensitive.
pub fn body(rec: &Syscall, ret: Option<i64>, t: &mut Tables<'_>) -> Option<EventBody> {
    if rec.op == SyscallOp::Socket as u32 {
        net::on_socket(rec, ret, t);
        return None;
    }
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
        SyscallOp::Raw => {
            if name == "pidfd_open"
                && let Some(fd) = ret.filter(|r| *r >= 0)
            {
                t.fds.insert(
                    pid,
                    fd,
                    FdInfo {
                        path: format!("{PIDFD_PREFIX}{}", rec.args[0] as u32 as i32),
                        memfd: None,
                        dir: true,
                    },
                );
            }
            EventBody::Syscall(model::RawSyscall {
                name,
                nr: rec.nr,
                args: rec.args.iter().take(rec.nargs as usize).copied().collect(),
                ret,
            })
        }
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
            let (target, signal) = match name.as_str() {
                "tgkill" | "rt_tgsigqueueinfo" => (rec.args[1], rec.args[2]),
                _ => (rec.args[0], rec.args[1]),
            };
            let target_pid = if name == "pidfd_send_signal" {
                // The first argument is a pidfd: its pidfd_open, or the sender's fdinfo, names the process.
                let fd = target as u32 as i32;
                t.fds
                    .get(pid, i64::from(fd))
                    .and_then(|f| f.path.strip_prefix(PIDFD_PREFIX)?.parse().ok())
                    .or_else(|| pidfd_target(pid, fd))
                    .unwrap_or(0)
            } else {
                i64::from(target as u32 as i32)
            };
            EventBody::Kill(model::Kill {
                syscall: name,
                target_pid,
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
        SyscallOp::Connect => net::body(rec, NetOp::Connect, ret, t),
        SyscallOp::Bind => net::body(rec, NetOp::Bind, ret, t),
        SyscallOp::Listen => net::body(rec, NetOp::Listen, ret, t),
        SyscallOp::Accept => net::body(rec, NetOp::Accept, ret, t),
        // Handled before (`body`); never an event of its own.
        SyscallOp::Socket => EventBody::Syscall(model::RawSyscall {
            name,
            nr: rec.nr,
            args: rec.args.iter().take(rec.nargs as usize).copied().collect(),
            ret,
        }),
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

/// How the descriptor table names a pidfd: this prefix and the pid.
const PIDFD_PREFIX: &str = "pidfd:";

/// The pid a pidfd of process `pid` refers to, from its fdinfo (`None` when the descriptor is gone).
fn pidfd_target(pid: u32, fd: i32) -> Option<i64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
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
