//! Process events: exec, fork, exit, credentials, ptrace, signals, renames and memory files.

use auditloop_model_derive::Fields;
use serde::{Deserialize, Serialize};

use crate::lineage::Ancestor;

/// `execve`/`execveat`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "exec", kind = Exec)]
pub struct Exec {
    /// The executed file: its canonical path (absolute, `.`/`..`/`//` and symlinks resolved, as the kernel
    /// found it), or the filename as passed when it could not be resolved.
    pub filename: String,
    /// The first argv entries (see `argv_truncated` and `truncated_args`).
    pub argv: Vec<String>,
    /// argv had more entries than were captured.
    pub argv_truncated: bool,
    /// Indexes of argv entries that were cut at the per-argument limit.
    pub truncated_args: Vec<u32>,
    /// The filename was cut at the path limit.
    pub filename_truncated: bool,
    /// `dirfd` of `execveat`; `-100` (`AT_FDCWD`) for `execve`.
    pub dirfd: i32,
    /// `flags` of `execveat`; 0 for `execve`.
    pub at_flags: u32,
    /// Syscall result: 0 on success, `-errno` on failure; `None` when the result record was lost.
    pub ret: Option<i64>,
    /// Whether the exec succeeded (the process now runs `filename`).
    pub success: bool,
    /// Task name before the exec (`process.comm` is the name after a successful exec).
    pub old_comm: String,
    /// The executed file is an anonymous memory file (memfd): fileless execution.
    pub from_memfd: bool,
    /// Index of the kernel exec rule that killed the task before the new program ran.
    pub killed_by_rule: Option<u32>,
    /// The filename as passed to the syscall, when it differs from `filename` (then the canonical path of
    /// the executed file); empty otherwise.
    pub raw_filename: String,
    /// Device number of the executed file (`st_dev`); 0 when unknown.
    pub dev: u64,
    /// Inode number of the executed file; 0 when unknown.
    pub inode: u64,
    /// SHA-256 of the executed file; absent when it was not computed (gone, unreadable or over the size
    /// limit).
    pub sha256: Option<String>,
    /// The rule whose exec guard refused this exec before the program ran (the exec failed with `EPERM`;
    /// a kill rule also killed the task).
    pub stopped_by_rule: Option<String>,
    /// What refused it, with `stopped_by_rule`: `lsm` (the kernel's BPF LSM hook `bprm_check_security`)
    /// or `exec_guard` (fanotify, in userspace); empty otherwise.
    #[field(absent_if_empty)]
    pub stopped_by: String,
    /// The working directory the program was started in (canonical); empty when unknown.
    #[field(absent_if_empty)]
    pub cwd: String,
    /// The process's nearest ancestors, parent first, in compact form (pid, start, exe, comm; no argv), at
    /// most `capture.ancestry.exec_depth` of them; ends with an `unknown` one when the chain breaks
    /// earlier. Rules read the whole chain as `proc.aname[N]` and the like.
    #[field(skip)]
    pub ancestors: Vec<Ancestor>,
    /// Index of the kernel exec rule that stopped the task (SIGSTOP at `sys_enter_execve`) for a `hold`:
    /// the new program runs no instruction until the hold is decided (see `hold` events).
    pub held_by_rule: Option<u32>,
}

/// fork/vfork/clone/clone3.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "fork", kind = Fork)]
pub struct Fork {
    /// Process id of the new process (thread id of the new thread when `thread` is set).
    pub child_pid: u32,
    /// The new task is a thread of the parent's process (`CLONE_THREAD`).
    pub thread: bool,
    /// clone flags, when the task was made by clone/clone3.
    pub clone_flags: Option<u64>,
}

/// A process ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "exit", kind = Exit)]
pub struct Exit {
    /// Exit code passed to `exit`/`exit_group`, when the process exited by itself.
    pub code: Option<i32>,
    /// Terminating signal number, when a fatal signal ended it.
    pub signal: Option<i32>,
}

/// setuid/setgid family.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "setid", kind = SetId)]
pub struct SetId {
    /// The syscall (`setuid`, `setresgid`, …).
    pub syscall: String,
    /// Its id arguments in order (`4294967295` = leave unchanged).
    pub ids: Vec<u32>,
    /// Result (`-errno` on failure); `None` when lost.
    pub ret: Option<i64>,
    /// Whether it succeeded.
    pub success: bool,
}

/// ptrace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "ptrace", kind = Ptrace)]
pub struct Ptrace {
    /// Request number (`PTRACE_ATTACH` = 16, `PTRACE_SEIZE` = 0x4206, …).
    pub request: i64,
    /// Request name when known.
    pub request_name: String,
    /// Target pid.
    pub target_pid: i64,
    /// Result; `None` when lost.
    pub ret: Option<i64>,
    /// Whether it succeeded.
    pub success: bool,
}

/// A signal sent to another process.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "kill", kind = Kill)]
pub struct Kill {
    /// `kill`, `tkill` or `tgkill`.
    pub syscall: String,
    /// Target pid (kill: may be 0 or negative for process groups) or tid.
    pub target_pid: i64,
    /// Signal number.
    pub signal: i64,
    /// Result; `None` when lost.
    pub ret: Option<i64>,
    /// Whether it succeeded.
    pub success: bool,
}

/// prctl(PR_SET_NAME).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "set_name", kind = SetName)]
pub struct SetName {
    /// The new name.
    pub name: String,
    /// Result; `None` when lost.
    pub ret: Option<i64>,
}

/// memfd_create.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "memfd", kind = MemfdCreate)]
pub struct MemfdCreate {
    /// Name given (shown as `/memfd:<name>` in `/proc`).
    pub name: String,
    /// `MFD_*` flags.
    pub flags: u64,
    /// The new descriptor, or `-errno`; `None` when lost.
    pub ret: Option<i64>,
}
