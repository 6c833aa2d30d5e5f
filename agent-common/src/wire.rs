//! The records the kernel programs write into the `EVENTS` ring buffer.
//!
//! Every record starts with a [`RecordHeader`] whose `kind` is a [`RecordKind`]. All structs are `repr(C)`,
//! `Copy`, hold only integers and byte arrays, and are padded explicitly (the `user` feature derives
//! `bytemuck::Pod`, which refuses implicit padding), so any byte pattern of the right length is a valid value.
//! Sizes are asserted at compile time: a change here is a wire change and must be made on both sides at once.

/// Length of a task's `comm` (the kernel's `TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;
/// Bytes kept of an exec's filename, NUL included.
pub const PATH_LEN: usize = 256;
/// Number of argv entries kept for one exec.
pub const MAX_ARGS: usize = 16;
/// Bytes kept of one argv entry, NUL included.
pub const ARG_LEN: usize = 256;
/// Slots in the per-kind loss counter array (`LOST`); every [`RecordKind`] value is below this.
pub const MAX_KINDS: u32 = 32;
/// Slots in the `LOST` array: record kinds below [`MAX_KINDS`], then `MAX_KINDS + op` for [`Syscall`]
/// records of each [`SyscallOp`].
pub const LOST_SLOTS: u32 = MAX_KINDS + MAX_OPS;

/// Name of the ring buffer map carrying all records.
pub const MAP_EVENTS: &str = "EVENTS";
/// Name of the per-CPU array counting, per [`RecordKind`], records that could not be reserved.
pub const MAP_LOST: &str = "LOST";
/// Name of the hash map of process ids (tgids) whose activity is not recorded (the agent itself).
pub const MAP_IGNORE_TGIDS: &str = "IGNORE_TGIDS";
/// Name of the hash map of task names (`comm`, NUL-padded to 16 bytes) whose activity is not recorded.
pub const MAP_IGNORE_COMMS: &str = "IGNORE_COMMS";
/// Name of the LPM trie of path prefixes ([`PathKey`]) whose file events are not recorded.
pub const MAP_IGNORE_PATHS: &str = "IGNORE_PATHS";
/// Name of the LPM trie of paths ([`PathKey`]) whose read-only opens are recorded.
pub const MAP_SENSITIVE_PATHS: &str = "SENSITIVE_PATHS";
/// Name of the hash map from syscall number to its [`SyscallSpec`].
pub const MAP_SYSCALL_SPECS: &str = "SYSCALL_SPECS";
/// Name of the array (indexed by [`SyscallOp`], plus [`OP_SLOT_EXEC`] etc.) of enable flags: 0 off,
/// [`OP_ON`] on, [`OP_URGENT`] on and waking the reader at once (a rule may act on it).
pub const MAP_OP_ENABLED: &str = "OP_ENABLED";
/// `OP_ENABLED` value: captured.
pub const OP_ON: u8 = 1;
/// `OP_ENABLED` value: captured, and a completed record wakes the reader at once (rate-limited) instead
/// of waiting for a batch, because a rule may kill or deny on it.
pub const OP_URGENT: u8 = 2;

/// `AT_FDCWD`, the `dirfd` recorded for a plain `execve`.
pub const AT_FDCWD: i32 = -100;

/// Kind of a kernel record. Values are fixed forever and never reused.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// [`ExecEnter`]: `execve`/`execveat` entered, with filename and argv.
    ExecEnter = 1,
    /// [`ExecExit`]: `execve`/`execveat` returned (0 on success, `-errno` on failure).
    ExecExit = 2,
    /// [`Fork`]: a task was created by fork/vfork/clone/clone3.
    Fork = 3,
    /// [`Exit`]: the last thread of a process exited.
    Exit = 4,
    /// [`Syscall`]: a syscall described by a [`SyscallSpec`] was entered (file, process, network, raw).
    Syscall = 5,
    /// [`SysExit`]: the syscall of the thread's preceding [`Syscall`] record returned.
    SysExit = 6,
    /// [`CloseWrite`]: a file descriptor opened for writing was closed.
    CloseWrite = 7,
    /// [`UringSetup`]: an io_uring instance was set up.
    UringSetup = 8,
    /// [`UringOp`]: an io_uring request was submitted (an opcode that names no path or address).
    UringOp = 9,
    /// [`UringOpStrs`]: an io_uring request was submitted, with the paths or address its SQE names.
    UringOpStrs = 10,
    /// [`UringFile`]: the descriptor of a recorded io_uring request whose SQE was not found.
    UringFile = 11,
    /// [`UringComplete`]: a recorded io_uring request completed.
    UringComplete = 12,
    /// [`SockState`]: a TCP socket changed state (the transitions that tell a connection's ends).
    SockState = 13,
    /// [`LsmDeny`]: a BPF LSM program refused an operation.
    LsmDeny = 14,
}

impl RecordKind {
    /// Every kind, in value order.
    pub const ALL: [RecordKind; 14] = [
        RecordKind::ExecEnter,
        RecordKind::ExecExit,
        RecordKind::Fork,
        RecordKind::Exit,
        RecordKind::Syscall,
        RecordKind::SysExit,
        RecordKind::CloseWrite,
        RecordKind::UringSetup,
        RecordKind::UringOp,
        RecordKind::UringOpStrs,
        RecordKind::UringFile,
        RecordKind::UringComplete,
        RecordKind::SockState,
        RecordKind::LsmDeny,
    ];

    /// The kind with this wire value, if any.
    pub const fn from_u32(value: u32) -> Option<RecordKind> {
        match value {
            1 => Some(RecordKind::ExecEnter),
            2 => Some(RecordKind::ExecExit),
            3 => Some(RecordKind::Fork),
            4 => Some(RecordKind::Exit),
            5 => Some(RecordKind::Syscall),
            6 => Some(RecordKind::SysExit),
            7 => Some(RecordKind::CloseWrite),
            8 => Some(RecordKind::UringSetup),
            9 => Some(RecordKind::UringOp),
            10 => Some(RecordKind::UringOpStrs),
            11 => Some(RecordKind::UringFile),
            12 => Some(RecordKind::UringComplete),
            13 => Some(RecordKind::SockState),
            14 => Some(RecordKind::LsmDeny),
            _ => None,
        }
    }

    /// A short stable name, used in loss events and logs.
    pub const fn name(self) -> &'static str {
        match self {
            RecordKind::ExecEnter => "exec_enter",
            RecordKind::ExecExit => "exec_exit",
            RecordKind::Fork => "fork",
            RecordKind::Exit => "exit",
            RecordKind::Syscall => "syscall",
            RecordKind::SysExit => "sys_exit",
            RecordKind::CloseWrite => "close_write",
            RecordKind::UringSetup => "uring_setup",
            RecordKind::UringOp => "uring_op",
            RecordKind::UringOpStrs => "uring_op_strs",
            RecordKind::UringFile => "uring_file",
            RecordKind::UringComplete => "uring_complete",
            RecordKind::SockState => "sock_state",
            RecordKind::LsmDeny => "lsm_deny",
        }
    }
}

/// Common prefix of every record: who did it and when.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct RecordHeader {
    /// A [`RecordKind`] value.
    pub kind: u32,
    /// Kind-specific extra word: for `ExecEnter` with [`EXEC_KILLED`] or [`EXEC_HELD`], the index of the
    /// kernel exec rule that killed or stopped the task; otherwise zero.
    pub aux: u32,
    /// `CLOCK_MONOTONIC` time in nanoseconds (`bpf_ktime_get_ns`).
    pub ktime_ns: u64,
    /// Process id (the kernel's tgid).
    pub pid: u32,
    /// Thread id (the kernel's pid).
    pub tid: u32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// Task name, NUL-padded.
    pub comm: [u8; COMM_LEN],
    /// cgroup v2 id of the task (`bpf_get_current_cgroup_id`).
    pub cgroup_id: u64,
}

/// `ExecEnter::flags`: the filename did not fit in [`PATH_LEN`] bytes.
pub const EXEC_FILENAME_TRUNCATED: u32 = 1;
/// `ExecEnter::flags`: argv had more than [`MAX_ARGS`] entries.
pub const EXEC_ARGS_TRUNCATED: u32 = 1 << 1;
/// `ExecEnter::flags`: argv could not be read from user memory (bad pointer, or paged out).
pub const EXEC_ARGS_UNREADABLE: u32 = 1 << 2;
/// `ExecEnter::flags`: the filename could not be read from user memory.
pub const EXEC_FILENAME_UNREADABLE: u32 = 1 << 3;
/// `ExecEnter::flags`: a kernel exec rule matched and SIGKILL was sent before the new program ran;
/// `header.aux` holds the rule index.
pub const EXEC_KILLED: u32 = 1 << 4;
/// `ExecEnter::flags`: a kernel exec rule of a `hold` matched and SIGSTOP was sent, so the task stops on
/// its return to user mode, before the new program's first instruction; `header.aux` holds the rule index.
pub const EXEC_HELD: u32 = 1 << 5;
/// [`ExecKillRule::signal`] of a kill rule.
pub const SIGNAL_KILL: u32 = 9;
/// [`ExecKillRule::signal`] of a hold rule.
pub const SIGNAL_STOP: u32 = 19;

/// Name of the LPM trie ([`PathKey`] → [`ExecKillRule`]) of executable paths (exact, or prefixes ending
/// in `/`) whose exec is killed in the kernel.
pub const MAP_EXEC_KILL: &str = "EXEC_KILL";

/// A kernel exec rule: which rule, for which user, and which signal.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct ExecKillRule {
    /// Index of the rule in the agent's rule table (reported back in `header.aux`).
    pub rule: u32,
    /// Only this real uid; `u32::MAX` = any user.
    pub uid: u32,
    /// The signal to send: [`SIGNAL_KILL`] (the exec is killed) or [`SIGNAL_STOP`] (the task is held).
    pub signal: u32,
    /// Zero.
    pub reserved: u32,
}

/// `execve`/`execveat` entry: what is about to be executed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct ExecEnter {
    /// Header; `kind` is [`RecordKind::ExecEnter`].
    pub header: RecordHeader,
    /// `dirfd` of `execveat`, [`AT_FDCWD`] for `execve`.
    pub dirfd: i32,
    /// `flags` of `execveat`, 0 for `execve`.
    pub at_flags: u32,
    /// Number of argv entries captured (at most [`MAX_ARGS`]).
    pub argc: u32,
    /// `EXEC_*` flags.
    pub flags: u32,
    /// Bit `i` set: argv entry `i` did not fit in [`ARG_LEN`] bytes and was cut.
    pub arg_truncated: u32,
    /// Bytes of `filename` used, NUL included (0 if unreadable).
    pub filename_len: u32,
    /// Bytes of each `args[i]` used, NUL included.
    pub arg_lens: [u16; MAX_ARGS],
    /// Filename as passed to the syscall (may be relative to `dirfd` or the cwd).
    pub filename: [u8; PATH_LEN],
    /// The first [`MAX_ARGS`] argv entries, each NUL-terminated within its slot.
    pub args: [[u8; ARG_LEN]; MAX_ARGS],
}

/// `execve`/`execveat` return.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct ExecExit {
    /// Header; `kind` is [`RecordKind::ExecExit`]. `comm` is the new image's name on success.
    pub header: RecordHeader,
    /// Syscall return: 0 on success, `-errno` on failure.
    pub ret: i64,
}

/// `Fork::flags`: `clone_flags` holds the flags passed to clone/clone3 (otherwise fork/vfork or a kernel thread).
pub const FORK_CLONE_FLAGS_KNOWN: u32 = 1;

/// A new task. The header describes the parent (the task that called fork/clone).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct Fork {
    /// Header; `kind` is [`RecordKind::Fork`].
    pub header: RecordHeader,
    /// Thread id of the new task (its process id unless `CLONE_THREAD` is set).
    pub child_tid: u32,
    /// `FORK_*` flags.
    pub flags: u32,
    /// clone flags (`CLONE_*`), valid when [`FORK_CLONE_FLAGS_KNOWN`] is set.
    pub clone_flags: u64,
}

/// `CLONE_THREAD`: the new task is a thread of the caller's process.
pub const CLONE_THREAD: u64 = 0x0001_0000;

/// `Exit::flags`: the process called `exit_group`/`exit`; `status` holds its exit code in bits 8..16.
pub const EXIT_CODE_KNOWN: u32 = 1;
/// `Exit::flags`: a fatal signal was delivered; `status` holds its number in bits 0..7.
pub const EXIT_SIGNAL_KNOWN: u32 = 1 << 1;

/// The last thread of a process exited.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct Exit {
    /// Header; `kind` is [`RecordKind::Exit`].
    pub header: RecordHeader,
    /// Wait status as `waitpid` reports it: exit code `<< 8`, or the terminating signal.
    pub status: u32,
    /// `EXIT_*` flags saying which part of `status` is known.
    pub flags: u32,
}

const _: () = assert!(core::mem::size_of::<RecordHeader>() == 56);
const _: () = assert!(core::mem::size_of::<ExecKillRule>() == 16);
const _: () = assert!(core::mem::size_of::<ExecEnter>() == 4464);
const _: () = assert!(core::mem::size_of::<ExecExit>() == 64);
const _: () = assert!(core::mem::size_of::<Fork>() == 72);
const _: () = assert!(core::mem::size_of::<Exit>() == 64);
const _: () = assert!(MAX_ARGS <= 32, "arg_truncated is a u32 bitmask");
const _: () = assert!(ARG_LEN <= u16::MAX as usize, "arg_lens are u16");

mod syscall;
pub use syscall::*;
mod uring;
pub use uring::*;
mod sock;
pub use sock::*;
mod lsm;
pub use lsm::*;
