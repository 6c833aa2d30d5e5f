//! One finished io_uring request → the `io_uring` body, and for ops with file or network meaning the
//! ordinary `file`/`net` body (`syscall: io_uring_<op>`), so every file and network rule applies.
//!
//! Paths are resolved with the syscall machinery (`tables::resolve_at`: the cwd or the dirfd from the
//! descriptor table, then the canonical walk), and the same path lists decide: file events on ignored
//! paths are not made, read-only opens make one only for sensitive paths. Descriptors returned by openat
//! are remembered (here, and in the shared descriptor table for writes and directories) so later
//! read/write/close requests — and syscalls — on them name the file; so are direct descriptors, by ring
//! and slot.

use agent_common::wire::{
    IORING_FILE_INDEX_ALLOC, IOSQE_FIXED_FILE, URING_HOW_UNREADABLE, URING_LAYOUT_UNKNOWN,
    URING_RING_UNKNOWN, URING_SQ_THREAD, URING_SQE_FOUND, URING_STR_UNREADABLE,
    URING_STR1_TRUNCATED, URING_STR2_TRUNCATED,
};
use auditloop_model::{
    self as model, EventBody, FileOp, IoUring, NetOp, UringOp, UringUnresolved as Gap,
};

use super::PendingOp;
use crate::bounded::BoundedMap;
use crate::capture::canon::Last;
use crate::capture::fdtable::FdInfo;
use crate::capture::sockaddr;
use crate::capture::tables::{PathArg, Tables, fd_file, resolve_at};

const O_WRONLY: u64 = libc::O_WRONLY as u64;
const O_RDWR: u64 = libc::O_RDWR as u64;
const O_CREAT: u64 = libc::O_CREAT as u64;
const O_TRUNC: u64 = libc::O_TRUNC as u64;
const O_DIRECTORY: u64 = libc::O_DIRECTORY as u64;
const O_PATH: u64 = libc::O_PATH as u64;
const O_NOFOLLOW: u64 = libc::O_NOFOLLOW as u64;
const AT_SYMLINK_NOFOLLOW: u64 = libc::AT_SYMLINK_NOFOLLOW as u64;
const AT_SYMLINK_FOLLOW: u64 = libc::AT_SYMLINK_FOLLOW as u64;
const AT_REMOVEDIR: u64 = libc::AT_REMOVEDIR as u64;

/// Most descriptors and direct-descriptor slots remembered.
const FILES_CAPACITY: usize = 1 << 16;

/// A file opened through io_uring.
#[derive(Clone, Debug, PartialEq, Eq)]
struct OpenFile {
    path: String,
    write: bool,
}

/// What io_uring opens left behind: descriptors by process, direct descriptors by ring and slot.
#[derive(Debug)]
pub struct UringFiles {
    fds: BoundedMap<(u32, i64), OpenFile>,
    fixed: BoundedMap<(u64, u32), OpenFile>,
}

impl Default for UringFiles {
    fn default() -> UringFiles {
        UringFiles {
            fds: BoundedMap::new(FILES_CAPACITY),
            fixed: BoundedMap::new(FILES_CAPACITY),
        }
    }
}

impl UringFiles {
    /// Forgets the descriptors of an ended process.
    pub fn forget_process(&mut self, pid: u32) {
        for key in self.fds.keys_where(|(p, _)| *p == pid) {
            self.fds.remove(&key);
        }
    }
}

/// What one request became.
#[derive(Clone, Debug, PartialEq)]
pub struct Converted {
    /// The `io_uring` body.
    pub op: IoUring,
    /// The `file` or `net` body of an op with that meaning.
    pub also: Option<EventBody>,
    /// A descriptor opened for writing through io_uring was closed by this request: its file.
    pub closed_write: Option<String>,
}

/// Whether the SQE's `fd` of `op` is a file or socket descriptor (as opposed to a count, a domain, a
/// ring or nothing).
fn names_descriptor(op: UringOp) -> bool {
    match op {
        UringOp::Readv
        | UringOp::Writev
        | UringOp::Fsync
        | UringOp::ReadFixed
        | UringOp::WriteFixed
        | UringOp::PollAdd
        | UringOp::SyncFileRange
        | UringOp::Sendmsg
        | UringOp::Recvmsg
        | UringOp::Accept
        | UringOp::Connect
        | UringOp::Fallocate
        | UringOp::Close
        | UringOp::Read
        | UringOp::Write
        | UringOp::Fadvise
        | UringOp::Send
        | UringOp::Recv
        | UringOp::Splice
        | UringOp::Tee
        | UringOp::Shutdown
        | UringOp::Fsetxattr
        | UringOp::Fgetxattr
        | UringOp::UringCmd
        | UringOp::SendZc
        | UringOp::SendmsgZc
        | UringOp::ReadMultishot
        | UringOp::Ftruncate
        | UringOp::Bind
        | UringOp::Listen
        | UringOp::RecvZc
        | UringOp::ReadvFixed
        | UringOp::WritevFixed
        | UringOp::UringCmd128 => true,
        UringOp::Nop
        | UringOp::PollRemove
        | UringOp::Timeout
        | UringOp::TimeoutRemove
        | UringOp::AsyncCancel
        | UringOp::LinkTimeout
        | UringOp::Openat
        | UringOp::FilesUpdate
        | UringOp::Statx
        | UringOp::Madvise
        | UringOp::Openat2
        | UringOp::EpollCtl
        | UringOp::ProvideBuffers
        | UringOp::RemoveBuffers
        | UringOp::Renameat
        | UringOp::Unlinkat
        | UringOp::Mkdirat
        | UringOp::Symlinkat
        | UringOp::Linkat
        | UringOp::MsgRing
        | UringOp::Setxattr
        | UringOp::Getxattr
        | UringOp::Socket
        | UringOp::Waitid
        | UringOp::FutexWait
        | UringOp::FutexWake
        | UringOp::FutexWaitv
        | UringOp::FixedFdInstall
        | UringOp::EpollWait
        | UringOp::Pipe
        | UringOp::Nop128
        | UringOp::Unknown => false,
    }
}

/// The parts of one conversion.
struct Ctx<'p, 'x, 'a> {
    p: &'p PendingOp,
    t: &'x mut Tables<'a>,
    files: &'x mut UringFiles,
    gaps: Vec<Gap>,
}

impl Ctx<'_, '_, '_> {
    fn pid(&self) -> u32 {
        self.p.op.header.pid
    }

    fn text(&self, slot: usize) -> String {
        self.p
            .strs
            .as_ref()
            .map(|s| s.text(slot))
            .unwrap_or_default()
    }

    /// Resolves string `slot` against dirfd `fd`; notes an unresolvable path.
    fn path(&mut self, slot: usize, fd: i64, last: Last) -> PathArg {
        let raw = self.text(slot);
        let (pid, tid) = (self.pid(), self.p.op.header.tid);
        let arg = resolve_at(pid, tid, &raw, fd, last, self.t);
        if !arg.resolved && !self.gaps.contains(&Gap::PathUnresolved) {
            self.gaps.push(Gap::PathUnresolved);
        }
        arg
    }

    /// The file descriptor (or registered-file slot) `fd` names; empty (and noted) when unknown.
    fn fd_path(&mut self, fd: i64, fixed: bool) -> String {
        if fd < 0 {
            return String::new();
        }
        let known = if fixed {
            u32::try_from(fd)
                .ok()
                .and_then(|slot| self.files.fixed.get(&(self.p.op.ring, slot)))
                .map(|f| f.path.clone())
        } else {
            self.files
                .fds
                .get(&(self.pid(), fd))
                .map(|f| f.path.clone())
                .or_else(|| fd_file(self.pid(), fd, self.t))
        };
        known.unwrap_or_else(|| {
            self.gaps.push(if fixed {
                Gap::FixedFile
            } else {
                Gap::FdUnknown
            });
            String::new()
        })
    }
}

/// Converts a finished request (`ret` is its completion's result, `None` when none came).
pub fn convert(
    p: &PendingOp,
    ret: Option<i64>,
    t: &mut Tables<'_>,
    files: &mut UringFiles,
) -> Converted {
    let op = &p.op;
    let kind = UringOp::from_opcode(op.opcode);
    let found = op.flags & URING_SQE_FOUND != 0;
    let mut gaps = Vec::new();
    if op.flags & URING_RING_UNKNOWN != 0 {
        gaps.push(Gap::RingUnknown);
    } else if op.flags & URING_LAYOUT_UNKNOWN != 0 {
        gaps.push(Gap::LayoutUnknown);
    } else if !found {
        gaps.push(Gap::SqeNotFound);
    }
    if op.flags & URING_STR_UNREADABLE != 0 {
        gaps.push(Gap::StringUnreadable);
    }
    if op.flags & (URING_STR1_TRUNCATED | URING_STR2_TRUNCATED) != 0 {
        gaps.push(Gap::StringTruncated);
    }
    if op.flags & URING_HOW_UNREADABLE != 0 {
        gaps.push(Gap::OpenHowUnreadable);
    }
    let success = matches!(ret, Some(r) if r >= 0);
    let fixed = found && op.sqe_flags & IOSQE_FIXED_FILE != 0;
    let fd = if found {
        i64::from(op.fd)
    } else {
        p.looked_up_fd.map_or(-1, i64::from)
    };
    let mut out = IoUring {
        op: kind,
        opcode: u32::from(op.opcode),
        ring_fd: i64::from(op.ring_fd),
        fd,
        fixed_file: fixed,
        ret,
        success,
        sq_thread: op.flags & URING_SQ_THREAD != 0,
        ..IoUring::default()
    };
    let mut cx = Ctx { p, t, files, gaps };
    let (also, closed_write) = if found {
        described(&mut cx, &mut out)
    } else {
        if names_descriptor(kind) {
            out.path = cx.fd_path(fd, false);
        }
        (None, None)
    };
    if ret.is_none() {
        cx.gaps.push(Gap::NoCompletion);
    }
    out.unresolved = cx.gaps;
    out.file_or_net = also.is_some();
    Converted {
        op: out,
        also,
        closed_write,
    }
}

/// Fills `out` from a found SQE; the file/net body and a closed write descriptor, if any.
fn described(cx: &mut Ctx<'_, '_, '_>, out: &mut IoUring) -> (Option<EventBody>, Option<String>) {
    let op = cx.p.op;
    let flags = u64::from(op.op_flags);
    let second_dirfd = i64::from(op.len as i32);
    let fop = match out.op {
        UringOp::Openat | UringOp::Openat2 => {
            out.flags = flags;
            out.mode = op.len;
            let last = if flags & O_NOFOLLOW != 0 {
                Last::NoFollow
            } else {
                Last::Follow
            };
            let arg = cx.path(0, out.fd, last);
            (out.path, out.raw_path) = (arg.path, arg.raw);
            return opened(cx, out, arg.resolved);
        }
        UringOp::Statx => {
            out.flags = flags;
            let last = if flags & AT_SYMLINK_NOFOLLOW != 0 {
                Last::NoFollow
            } else {
                Last::Follow
            };
            let arg = cx.path(0, out.fd, last);
            (out.path, out.raw_path) = (arg.path, arg.raw);
            None
        }
        UringOp::Unlinkat => {
            out.flags = flags;
            set_path(cx, out, 0, Last::NoFollow);
            Some(if flags & AT_REMOVEDIR != 0 {
                FileOp::Rmdir
            } else {
                FileOp::Unlink
            })
        }
        UringOp::Mkdirat => {
            out.mode = op.len;
            set_path(cx, out, 0, Last::NoFollow);
            Some(FileOp::Mkdir)
        }
        UringOp::Renameat => {
            out.flags = flags;
            set_path(cx, out, 0, Last::NoFollow);
            let arg = cx.path(1, second_dirfd, Last::NoFollow);
            (out.target, out.raw_target) = (arg.path, arg.raw);
            Some(FileOp::Rename)
        }
        UringOp::Linkat => {
            out.flags = flags;
            let last = if flags & AT_SYMLINK_FOLLOW != 0 {
                Last::Follow
            } else {
                Last::NoFollow
            };
            set_path(cx, out, 0, last);
            let arg = cx.path(1, second_dirfd, Last::NoFollow);
            (out.target, out.raw_target) = (arg.path, arg.raw);
            Some(FileOp::Link)
        }
        UringOp::Symlinkat => {
            // The target is a string, not a path walked here; the link is created at the second path.
            out.target = cx.text(0);
            let arg = cx.path(1, out.fd, Last::NoFollow);
            (out.path, out.raw_path) = (arg.path, arg.raw);
            Some(FileOp::Symlink)
        }
        UringOp::Connect | UringOp::Bind => {
            let addr = sockaddr::decode(cx.p.strs.as_ref().map_or(&[][..], |s| s.bytes(0)));
            (out.family, out.address, out.port) = (addr.family, addr.address, addr.port);
            let net_op = if out.op == UringOp::Connect {
                NetOp::Connect
            } else {
                NetOp::Bind
            };
            // The end the request names; the protocol when the socket was seen created (no lookup in
            // `/proc`: the request completed asynchronously and the descriptor may be gone).
            let sock = (!out.fixed_file)
                .then(|| cx.t.socks.get(cx.pid(), out.fd))
                .flatten();
            let mut net = model::Net {
                op: net_op,
                fd: out.fd,
                family: out.family.clone(),
                address: out.address.clone(),
                port: out.port,
                backlog: 0,
                ret: out.ret,
                success: out.success,
                protocol: match sock {
                    Some(s) => s.transport(),
                    None if addr.domain == sockaddr::AF_UNIX => auditloop_model::NetProtocol::Unix,
                    None => auditloop_model::NetProtocol::Unknown,
                },
                ..model::Net::default()
            };
            if net_op == NetOp::Connect {
                (net.remote_address, net.remote_port) = (out.address.clone(), out.port);
                if let Some(local) = sock.and_then(|s| s.local.as_ref()) {
                    (net.local_address, net.local_port) = (local.address.clone(), local.port);
                }
            } else {
                (net.local_address, net.local_port) = (out.address.clone(), out.port);
            }
            return (Some(EventBody::Net(net)), None);
        }
        UringOp::Close if op.file_index != 0 => {
            // A direct descriptor: slot `file_index - 1` of the ring's table.
            let slot = op.file_index - 1;
            let key = (op.ring, slot);
            match cx.files.fixed.get(&key).map(|f| f.path.clone()) {
                Some(path) => out.path = path,
                None => cx.gaps.push(Gap::FixedFile),
            }
            if out.success {
                cx.files.fixed.remove(&key);
            }
            None
        }
        UringOp::Close => {
            out.path = cx.fd_path(out.fd, out.fixed_file);
            if !out.success || out.fixed_file {
                return (None, None);
            }
            let pid = cx.pid();
            let closed = cx.files.fds.remove(&(pid, out.fd));
            let shared = cx.t.fds.remove(pid, out.fd);
            let wrote = closed.is_some_and(|f| f.write) || shared.is_some_and(|f| !f.dir);
            return (
                None,
                wrote.then(|| out.path.clone()).filter(|p| !p.is_empty()),
            );
        }
        UringOp::Ftruncate => {
            out.path = cx.fd_path(out.fd, out.fixed_file);
            Some(FileOp::Truncate)
        }
        other => {
            if names_descriptor(other) {
                out.path = cx.fd_path(out.fd, out.fixed_file);
            }
            None
        }
    };
    let Some(fop) = fop else {
        return (None, None);
    };
    let mut file = file_body(out, fop, cx.p);
    file.resolved = !cx.gaps.contains(&Gap::PathUnresolved) && !out.path.is_empty();
    if fop == FileOp::Truncate {
        file.length = cx.p.op.off as i64;
    }
    if cx.t.policy.ignored(&file.path) {
        return (None, None);
    }
    (Some(EventBody::File(file)), None)
}

/// The first path of the SQE, resolved against its dirfd, into `out.path`/`raw_path`.
fn set_path(cx: &mut Ctx<'_, '_, '_>, out: &mut IoUring, slot: usize, last: Last) {
    let arg = cx.path(slot, out.fd, last);
    (out.path, out.raw_path) = (arg.path, arg.raw);
}

/// After an openat: remembers the descriptor (or direct-descriptor slot) and decides on the file event.
fn opened(
    cx: &mut Ctx<'_, '_, '_>,
    out: &mut IoUring,
    resolved: bool,
) -> (Option<EventBody>, Option<String>) {
    let write = out.flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC) != 0;
    let dir = !write && out.flags & (O_DIRECTORY | O_PATH) != 0;
    let op = cx.p.op;
    if let Some(r) = out.ret.filter(|r| *r >= 0) {
        let file = OpenFile {
            path: out.path.clone(),
            write,
        };
        if op.file_index != 0 {
            let slot = if op.file_index == IORING_FILE_INDEX_ALLOC {
                u32::try_from(r).unwrap_or(u32::MAX)
            } else {
                op.file_index - 1
            };
            cx.files.fixed.insert((op.ring, slot), file);
        } else {
            out.fd = r;
            let pid = cx.pid();
            cx.files.fds.insert((pid, r), file);
            if (write || dir) && resolved {
                let info = FdInfo {
                    path: out.path.clone(),
                    memfd: None,
                    dir,
                };
                cx.t.fds.insert(pid, r, info);
            }
        }
    }
    let policy = cx.t.policy;
    let fop = if write {
        FileOp::Open
    } else if !dir && policy.sensitive(&out.path) {
        FileOp::Read
    } else {
        return (None, None);
    };
    if policy.ignored(&out.path) {
        return (None, None);
    }
    let mut file = file_body(out, fop, cx.p);
    file.resolved = resolved;
    if op.file_index != 0 {
        // Opened into a direct descriptor: no descriptor of the process names the file.
        file.fd = -1;
    }
    (Some(EventBody::File(file)), None)
}

/// The `file` body of an op.
fn file_body(out: &IoUring, fop: FileOp, p: &PendingOp) -> model::File {
    model::File {
        op: fop,
        syscall: format!("io_uring_{}", out.op.as_str()),
        path: out.path.clone(),
        target: out.target.clone(),
        resolved: true,
        path_truncated: p.op.flags
            & (URING_STR1_TRUNCATED | URING_STR2_TRUNCATED | URING_STR_UNREADABLE)
            != 0,
        flags: out.flags,
        mode: out.mode,
        uid: u32::MAX,
        gid: u32::MAX,
        length: 0,
        fd: out.fd,
        ret: out.ret,
        success: out.success,
        raw_path: out.raw_path.clone(),
        raw_target: out.raw_target.clone(),
        denied_by_rule: None,
        kernel_path: String::new(),
    }
}
