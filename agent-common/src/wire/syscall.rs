//! Data-driven syscall capture: the userspace agent tells the kernel, per syscall number, what a syscall
//! means ([`SyscallSpec`]); generic programs attached to `sys_enter_<name>` read the arguments and strings the
//! spec names into one [`Syscall`] record; one program on every matching `sys_exit_<name>` sends the result
//! as a [`SysExit`] record. Userspace pairs the two per thread.

use super::{COMM_LEN, RecordHeader};

/// Bytes kept of each string argument (paths, names, socket addresses), NUL included.
pub const STR_LEN: usize = 256;
/// Bytes of path compared by the in-kernel path filters (longer paths are compared on this prefix).
pub const PATH_KEY_LEN: usize = 128;
/// Ops (and `LOST` slots for them) this wire format can name.
pub const MAX_OPS: u32 = 64;

/// What a captured syscall does. Values are fixed forever and never reused.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyscallOp {
    /// open, openat, openat2, creat (writes, creates, truncates; read-only opens of sensitive paths).
    Open = 1,
    /// unlink, unlinkat (without `AT_REMOVEDIR`).
    Unlink = 2,
    /// rename, renameat, renameat2.
    Rename = 3,
    /// link, linkat.
    Link = 4,
    /// symlink, symlinkat.
    Symlink = 5,
    /// chmod, fchmod, fchmodat, fchmodat2.
    Chmod = 6,
    /// chown, lchown, fchown, fchownat.
    Chown = 7,
    /// truncate, ftruncate.
    Truncate = 8,
    /// mkdir, mkdirat.
    Mkdir = 9,
    /// rmdir.
    Rmdir = 10,
    /// utimensat.
    Utimens = 11,
    /// mount.
    Mount = 12,
    /// umount2 (the `umount` tracepoint).
    Umount = 13,
    /// chdir, fchdir (keeps the process table's cwd for path resolution).
    Chdir = 14,
    /// setuid, setgid, setreuid, setregid, setresuid, setresgid, setfsuid, setfsgid.
    SetId = 15,
    /// ptrace.
    Ptrace = 16,
    /// kill, tkill, tgkill.
    Kill = 17,
    /// prctl(PR_SET_NAME).
    SetName = 18,
    /// memfd_create.
    MemfdCreate = 19,
    /// connect.
    Connect = 20,
    /// bind.
    Bind = 21,
    /// listen.
    Listen = 22,
    /// accept, accept4 (recorded at return, with the peer address).
    Accept = 23,
    /// A syscall named in `capture.syscalls`: raw arguments and return value.
    Raw = 24,
    /// socket (not an event: userspace remembers the new descriptor's family, type and protocol for the
    /// network events on it).
    Socket = 25,
}

impl SyscallOp {
    /// Every op, in value order.
    pub const ALL: [SyscallOp; 25] = [
        SyscallOp::Open,
        SyscallOp::Unlink,
        SyscallOp::Rename,
        SyscallOp::Link,
        SyscallOp::Symlink,
        SyscallOp::Chmod,
        SyscallOp::Chown,
        SyscallOp::Truncate,
        SyscallOp::Mkdir,
        SyscallOp::Rmdir,
        SyscallOp::Utimens,
        SyscallOp::Mount,
        SyscallOp::Umount,
        SyscallOp::Chdir,
        SyscallOp::SetId,
        SyscallOp::Ptrace,
        SyscallOp::Kill,
        SyscallOp::SetName,
        SyscallOp::MemfdCreate,
        SyscallOp::Connect,
        SyscallOp::Bind,
        SyscallOp::Listen,
        SyscallOp::Accept,
        SyscallOp::Raw,
        SyscallOp::Socket,
    ];

    /// The op with this wire value, if any.
    pub fn from_u32(value: u32) -> Option<SyscallOp> {
        SyscallOp::ALL
            .iter()
            .copied()
            .find(|op| *op as u32 == value)
    }

    /// A short stable name.
    pub const fn name(self) -> &'static str {
        match self {
            SyscallOp::Open => "open",
            SyscallOp::Unlink => "unlink",
            SyscallOp::Rename => "rename",
            SyscallOp::Link => "link",
            SyscallOp::Symlink => "symlink",
            SyscallOp::Chmod => "chmod",
            SyscallOp::Chown => "chown",
            SyscallOp::Truncate => "truncate",
            SyscallOp::Mkdir => "mkdir",
            SyscallOp::Rmdir => "rmdir",
            SyscallOp::Utimens => "utimens",
            SyscallOp::Mount => "mount",
            SyscallOp::Umount => "umount",
            SyscallOp::Chdir => "chdir",
            SyscallOp::SetId => "setid",
            SyscallOp::Ptrace => "ptrace",
            SyscallOp::Kill => "kill",
            SyscallOp::SetName => "set_name",
            SyscallOp::MemfdCreate => "memfd_create",
            SyscallOp::Connect => "connect",
            SyscallOp::Bind => "bind",
            SyscallOp::Listen => "listen",
            SyscallOp::Accept => "accept",
            SyscallOp::Raw => "raw",
            SyscallOp::Socket => "socket",
        }
    }
}

/// `OP_ENABLED` slot for exec capture (slots below [`MAX_OPS`] are [`SyscallOp`] values).
pub const OP_SLOT_EXEC: u32 = 0;
/// `OP_ENABLED` slot for fork capture.
pub const OP_SLOT_FORK: u32 = MAX_OPS;
/// `OP_ENABLED` slot for exit capture.
pub const OP_SLOT_EXIT: u32 = MAX_OPS + 1;
/// `OP_ENABLED` slot for io_uring capture (ring setup and every submitted request).
pub const OP_SLOT_IO_URING: u32 = MAX_OPS + 2;
/// Size of the `OP_ENABLED` array.
pub const OP_SLOTS: u32 = MAX_OPS + 3;

/// The names of the `OP_ENABLED` switches (what `capture.disable` accepts): `exec`, `fork`, `exit`,
/// `io_uring`, then every [`SyscallOp`] name.
pub fn op_slot_names() -> impl Iterator<Item = &'static str> {
    ["exec", "fork", "exit", "io_uring"]
        .into_iter()
        .chain(SyscallOp::ALL.iter().map(|op| op.name()))
}

/// The `OP_ENABLED` slot a switch name turns on and off.
pub fn op_slot(name: &str) -> Option<u32> {
    match name {
        "exec" => Some(OP_SLOT_EXEC),
        "fork" => Some(OP_SLOT_FORK),
        "exit" => Some(OP_SLOT_EXIT),
        "io_uring" => Some(OP_SLOT_IO_URING),
        other => SyscallOp::ALL
            .iter()
            .find(|op| op.name() == other)
            .map(|op| *op as u32),
    }
}

/// "No argument" in a [`SyscallSpec`] argument index.
pub const NO_ARG: u8 = 0xff;

/// How the kernel treats one syscall number.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct SyscallSpec {
    /// [`SyscallOp`] value.
    pub op: u32,
    /// `SPEC_*` flags.
    pub flags: u32,
    /// Argument index of the first string (a user pointer), or [`NO_ARG`].
    pub str1_arg: u8,
    /// Argument index of the second string, or [`NO_ARG`].
    pub str2_arg: u8,
    /// Argument index of the open flags (for the write/read filter), or [`NO_ARG`].
    pub open_flags_arg: u8,
    /// Argument index holding the byte length of `str1` when [`SPEC_STR1_SOCKADDR`] is set, or [`NO_ARG`].
    pub len_arg: u8,
    /// Reserved, zero.
    pub reserved: u32,
}

/// Spec flag: `str1` is a socket address (raw bytes, length from `len_arg`), not a NUL-terminated string.
pub const SPEC_STR1_SOCKADDR: u32 = 1;
/// Spec flag: the syscall always opens for writing (creat).
pub const SPEC_ALWAYS_WRITE: u32 = 1 << 1;
/// Spec flag: `open_flags_arg` is a user pointer to `struct open_how` whose first u64 is the flags (openat2).
pub const SPEC_FLAGS_IN_OPEN_HOW: u32 = 1 << 2;
/// Spec flag: only record when argument 0 is `PR_SET_NAME` (prctl).
pub const SPEC_ONLY_PR_SET_NAME: u32 = 1 << 3;
/// Spec flag: `str1` is a path subject to the path filters.
pub const SPEC_STR1_PATH: u32 = 1 << 4;
/// Spec flag: argument 1 is a user pointer; the record carries the first 8 bytes it points to in its place
/// (`bpf(cmd, attr, size)`: the map, program or link fd or id every command starts its `attr` with).
pub const SPEC_DEREF_ARG1: u32 = 1 << 5;

/// `Syscall::flags`: `strs[0]` was cut at [`STR_LEN`].
pub const SYS_STR1_TRUNCATED: u32 = 1;
/// `Syscall::flags`: `strs[1]` was cut at [`STR_LEN`].
pub const SYS_STR2_TRUNCATED: u32 = 1 << 1;
/// `Syscall::flags`: a string argument could not be read from user memory.
pub const SYS_STR_UNREADABLE: u32 = 1 << 2;
/// `Syscall::flags`: an open for writing (write mode, create or truncate).
pub const SYS_OPEN_WRITE: u32 = 1 << 3;
/// `Syscall::flags`: a read-only open recorded because its path is in the sensitive list.
pub const SYS_OPEN_SENSITIVE: u32 = 1 << 4;
/// The path argument is not provably canonical (relative, with `.`, `..` or `//`, or through a `/proc`
/// link), so the kernel's path filters did not decide on it: userspace resolves it and decides.
pub const SYS_PATH_UNSURE: u32 = 1 << 5;
/// A read-only open of a directory (`O_DIRECTORY`) or an `O_PATH` open: not an event, but the descriptor
/// it returns names the base of later dirfd-relative paths, so userspace remembers it until it is closed.
pub const SYS_OPEN_DIR: u32 = 1 << 6;

/// A syscall entry (or, for accept, a return with the peer address).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct Syscall {
    /// Header; `kind` is `RecordKind::Syscall`.
    pub header: RecordHeader,
    /// [`SyscallOp`] value.
    pub op: u32,
    /// Syscall number (x86-64).
    pub nr: u32,
    /// `SYS_*` flags.
    pub flags: u32,
    /// Number of valid entries in `args`.
    pub nargs: u32,
    /// Raw arguments (pointers as addresses). For accept: listening fd, then the new fd.
    pub args: [u64; 6],
    /// Bytes used in each of `strs` (NUL included for strings).
    pub str_lens: [u32; 2],
    /// String arguments (or a socket address in `strs[0]`).
    pub strs: [[u8; STR_LEN]; 2],
}

/// Return of a syscall whose entry was recorded.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct SysExit {
    /// Header; `kind` is `RecordKind::SysExit`.
    pub header: RecordHeader,
    /// [`SyscallOp`] value of the entry.
    pub op: u32,
    /// Syscall number.
    pub nr: u32,
    /// Return value: `-errno` on failure.
    pub ret: i64,
}

/// A file descriptor opened for writing was closed by `close(2)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct CloseWrite {
    /// Header; `kind` is `RecordKind::CloseWrite`.
    pub header: RecordHeader,
    /// The descriptor.
    pub fd: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// Key of the path LPM tries: `prefix_bits` leading bits of `path` must match.
///
/// Store a directory prefix without a trailing NUL (`/proc/` matches everything below it) and an exact file
/// with its NUL (`/etc/shadow\0` does not match `/etc/shadow-`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct PathKey {
    /// Number of leading bits of `path` that are significant.
    pub prefix_bits: u32,
    /// The path bytes.
    pub path: [u8; PATH_KEY_LEN],
}

/// Key of the comm ignore map.
pub type CommKey = [u8; COMM_LEN];

const _: () = assert!(core::mem::size_of::<SyscallSpec>() == 16);
const _: () = assert!(core::mem::size_of::<Syscall>() == 56 + 16 + 48 + 8 + 2 * STR_LEN);
const _: () = assert!(core::mem::size_of::<SysExit>() == 72);
const _: () = assert!(core::mem::size_of::<CloseWrite>() == 64);
const _: () = assert!(core::mem::size_of::<PathKey>() == 4 + PATH_KEY_LEN);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_names_and_slots() {
        let names: [&str; 3] = ["exec", "open", "connect"];
        assert!(names.iter().all(|n| op_slot_names().any(|m| m == *n)));
        assert!(!op_slot_names().any(|m| m == "opne"));
        assert_eq!(op_slot("open"), Some(SyscallOp::Open as u32));
        assert_eq!(op_slot("fork"), Some(OP_SLOT_FORK));
        assert_eq!(op_slot("io_uring"), Some(OP_SLOT_IO_URING));
        const { assert!(OP_SLOT_IO_URING < OP_SLOTS) };
        assert_eq!(op_slot("opne"), None);
    }
}
