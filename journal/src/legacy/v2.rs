//! The event model of journal format 2 (payload tag 3, written until format 3 added ancestry, login
//! identity, the working directory of execs and both endpoints of network events), frozen: records of that
//! format decode into these types and are converted into today's model, so journals and batches of agents
//! of that format stay readable. Never change these types; a new format freezes a copy of its own.
//!
//! The vocabularies (`LossStage`, `NetOp`, `UringOp`, …) are encoded as their names in every format, so
//! today's enums read them.

use auditloop_model::{
    ActionKind, ChangeTrigger, FileOp, LossStage, NetOp, Severity, UringOp, UringUnresolved,
    WallTime,
};
use serde::{Deserialize, Serialize};

/// One observed event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Journal sequence number: assigned when the event is appended to the journal, strictly increasing
    /// across agent restarts and reboots (numbers in between belong to journal-internal records such as
    /// checkpoints). 0 before the event is journaled.
    pub seq: u64,
    /// Wall-clock time of the event.
    pub time: WallTime,
    /// `CLOCK_MONOTONIC` nanoseconds (kernel time for kernel events).
    pub mono_ns: u64,
    /// The process that caused the event (for agent events: the agent itself).
    pub process: Process,
    /// What happened.
    pub event: EventBody,
}

/// The process context of an event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// Process id (tgid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Parent process id; 0 when unknown.
    pub ppid: u32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// Task name (at most 15 bytes, as the kernel keeps it).
    pub comm: String,
    /// Effective user id as tracked by the agent (see `docs/events.md` for its limits).
    pub euid: u32,
    /// Executable path (from exec events or `/proc/<pid>/exe`); empty when unknown.
    pub exe: String,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// Container id (64 hex digits) when the cgroup path names one.
    pub container_id: Option<String>,
    /// Parent's executable path; empty when unknown.
    pub parent_exe: String,
    /// Parent's argv as last seen; empty when unknown.
    pub parent_argv: Vec<String>,
}

/// What happened, by kind. The JSON key of each variant is its kind name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventBody {
    /// A program was executed (or an exec attempt failed).
    Exec(Exec),
    /// A process or thread was created.
    Fork(Fork),
    /// A process ended.
    Exit(Exit),
    /// Records were lost or could not be decoded; counts are exact.
    Loss(Loss),
    /// The agent started capturing (the first event of a run).
    AgentStart(AgentStart),
    /// The agent stopped capturing (the last event of a run).
    AgentStop(AgentStop),
    /// A file was changed (or a sensitive file read).
    File(File),
    /// Credentials changed: the setuid/setgid family.
    #[serde(rename = "setid")]
    SetId(SetId),
    /// ptrace.
    Ptrace(Ptrace),
    /// A signal was sent to another process.
    Kill(Kill),
    /// A process renamed itself (prctl PR_SET_NAME).
    SetName(SetName),
    /// An anonymous memory file was created (memfd_create).
    MemfdCreate(MemfdCreate),
    /// connect, bind, listen, accept.
    Net(Net),
    /// A syscall named in `capture.syscalls`.
    Syscall(RawSyscall),
    /// A watched configuration file changed.
    ConfigChange(ConfigChange),
    /// The agent loaded its configuration.
    ConfigLoaded(ConfigLoaded),
    /// At start, the journal's torn tail (from a crash) was cut.
    JournalRecovered(JournalRecovered),
    /// A rule matched.
    Alert(Alert),
    /// An action a rule asked for was carried out (or failed).
    Action(ActionTaken),
    /// A rule set was loaded and is in force.
    RulesLoaded(RulesLoaded),
    /// A new rule set was rejected; the previous rules stay in force.
    RulesRejected(RulesRejected),
    /// A request was submitted to an io_uring instance (with its completion).
    IoUring(IoUring),
    /// An io_uring instance was set up.
    IoUringSetup(IoUringSetup),
}

/// `execve`/`execveat`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// fork/vfork/clone/clone3.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fork {
    /// Process id of the new process (thread id of the new thread when `thread` is set).
    pub child_pid: u32,
    /// The new task is a thread of the parent's process (`CLONE_THREAD`).
    pub thread: bool,
    /// clone flags, when the task was made by clone/clone3.
    pub clone_flags: Option<u64>,
}

/// A process ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// Exit code passed to `exit`/`exit_group`, when the process exited by itself.
    pub code: Option<i32>,
    /// Terminating signal number, when a fatal signal ended it.
    pub signal: Option<i32>,
}

/// setuid/setgid family.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetName {
    /// The new name.
    pub name: String,
    /// Result; `None` when lost.
    pub ret: Option<i64>,
}

/// memfd_create.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemfdCreate {
    /// Name given (shown as `/memfd:<name>` in `/proc`).
    pub name: String,
    /// `MFD_*` flags.
    pub flags: u64,
    /// The new descriptor, or `-errno`; `None` when lost.
    pub ret: Option<i64>,
}

/// Records that did not reach userspace (or could not be decoded), with exact counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loss {
    /// Where the loss happened.
    pub stage: LossStage,
    /// Record kind lost (`exec_enter`, `fork`, …; `unknown` when it could not be told).
    pub record: String,
    /// Records lost since the previous loss event for this stage and record kind.
    pub count: u64,
    /// Records lost since the agent started, for this stage and record kind.
    pub total: u64,
}

/// The agent loaded its configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigLoaded {
    /// Config file (absent file = defaults).
    pub path: String,
    /// SHA-256 of its content; `None` when absent.
    pub sha256: Option<String>,
    /// Why: `start` or `sighup`.
    pub reason: String,
}

/// The journal's torn tail was cut at start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecovered {
    /// Segment file that was cut.
    pub segment: String,
    /// Offset of the cut.
    pub offset: u64,
    /// Bytes removed.
    pub bytes_cut: u64,
    /// Sequence number of the last valid record before the cut.
    pub last_seq: u64,
    /// What was wrong with the tail.
    pub reason: String,
}

/// A rule set is in force.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesLoaded {
    /// Rules file or directory.
    pub path: String,
    /// Rules loaded.
    pub rules: u32,
    /// Rules enforced in the kernel at exec time.
    pub kernel_rules: u32,
    /// Why: `start` or `reload`.
    pub reason: String,
}

/// A rule set was rejected.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesRejected {
    /// Rules file or directory.
    pub path: String,
    /// Every error, each naming `file:line:col`.
    pub errors: String,
}

/// The agent started capturing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStart {
    /// Agent version.
    pub version: String,
    /// Number of tracepoints attached.
    pub tracepoints: u32,
    /// Kernel ring buffer size in bytes.
    pub ring_buffer_bytes: u32,
}

/// The agent stopped capturing; counters cover the whole run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStop {
    /// Records read from the kernel ring buffer.
    pub records: u64,
    /// Events produced (this one excluded).
    pub events: u64,
    /// Records the kernel could not reserve (each also reported in a `loss` event).
    pub kernel_lost: u64,
    /// Records that could not be decoded (each also reported in a `loss` event).
    pub decode_errors: u64,
    /// Records the kernel could not decide on that userspace filtered: their canonical path is ignored,
    /// or it is not sensitive for a read-only open.
    pub filtered: u64,
}

/// A file operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    /// What was done (`open` is a write, create or truncate; `read` a read-only open of a sensitive path).
    pub op: FileOp,
    /// The syscall used (`openat`, `renameat2`, `fchmod`, …).
    pub syscall: String,
    /// The file the kernel acted on: absolute and canonical (`.`, `..` and `//` collapsed, symlinks and
    /// `/proc/<pid>/{root,cwd,fd}` links followed the way the syscall follows them) when it could be
    /// resolved (see `resolved`); for `symlink` the link created; for `mount` the mount point.
    pub path: String,
    /// Second path: rename/link destination, symlink target (as written), mount source.
    pub target: String,
    /// `path` (and `target` where it is a path) were made absolute from the process's cwd or dirfd.
    pub resolved: bool,
    /// A path argument was cut at 255 bytes or could not be read.
    pub path_truncated: bool,
    /// Open flags (`O_*`), rename/link/unlink/utimens flags.
    pub flags: u64,
    /// Mode for open/creat/mkdir/chmod.
    pub mode: u32,
    /// New owner for chown (`4294967295` = unchanged).
    pub uid: u32,
    /// New group for chown (`4294967295` = unchanged).
    pub gid: u32,
    /// New length for truncate.
    pub length: i64,
    /// File descriptor argument (f* variants) or the descriptor an open returned; -1 when none.
    pub fd: i64,
    /// Syscall result: `-errno` on failure; `None` when the return record was lost.
    pub ret: Option<i64>,
    /// Whether the syscall succeeded.
    pub success: bool,
    /// The path argument as passed, when it differs from `path`; empty otherwise.
    pub raw_path: String,
    /// The second path argument as passed, when it differs from `target`; empty otherwise.
    pub raw_target: String,
}

/// A watched configuration file changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigChange {
    /// The watched file.
    pub path: String,
    /// What made the agent look at the file again.
    pub trigger: ChangeTrigger,
    /// SHA-256 of the last known content; `None` for a new file.
    pub old_sha256: Option<String>,
    /// SHA-256 of the content now; `None` when the file is gone.
    pub new_sha256: Option<String>,
    /// Size in bytes now.
    pub size: u64,
    /// Mode now (permission and type bits).
    pub mode: u32,
    /// Owner now.
    pub uid: u32,
    /// Group now.
    pub gid: u32,
    /// Permission bits of the last known version (what a rollback restores); `None` for a new file.
    pub old_mode: Option<u32>,
    /// Owner of the last known version (what a rollback restores); `None` for a new file.
    pub old_uid: Option<u32>,
    /// Group of the last known version (what a rollback restores); `None` for a new file.
    pub old_gid: Option<u32>,
    /// Unified diff (text files up to the size limit); `None` for a redacted file.
    pub diff: Option<String>,
    /// The diff was cut at its length limit.
    pub diff_truncated: bool,
    /// The file's content is secret (`watch.redact`, or it holds a private key): no content or diff is
    /// recorded, only hashes, size, metadata and `changed_entries`.
    pub redacted: bool,
    /// For a redacted file in `name:…` line format (shadow, gshadow, passwd-like): the names whose lines
    /// were added, removed or changed (never their other fields).
    pub changed_entries: Vec<String>,
    /// The watched path, or a directory on it, is now a symbolic link pointing here (as written; it is
    /// never followed).
    pub link_target: Option<String>,
}

/// A rule matched an event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Rule name.
    pub rule: String,
    /// Severity.
    pub severity: Severity,
    /// The rule's rendered output.
    pub output: String,
    /// The rule's tags (e.g. ATT&CK ids).
    pub tags: Vec<String>,
    /// Journal sequence number of the triggering event.
    pub trigger_seq: u64,
}

/// An action carried out for a rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionTaken {
    /// Which action.
    pub action: ActionKind,
    /// Rule name.
    pub rule: String,
    /// Journal sequence number of the triggering event.
    pub trigger_seq: u64,
    /// Target process (kill actions).
    pub target_pid: Option<u32>,
    /// Target file (rollback).
    pub path: Option<String>,
    /// SHA-256 before (rollback: the unwanted content).
    pub before_sha256: Option<String>,
    /// SHA-256 after (rollback: the restored content).
    pub after_sha256: Option<String>,
    /// Whether it succeeded.
    pub ok: bool,
    /// Details or the error.
    pub detail: String,
}

/// A network operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Net {
    /// Which operation.
    pub op: NetOp,
    /// The socket descriptor (for accept: the listening socket).
    pub fd: i64,
    /// `inet`, `inet6`, `unix`, `none` (listen) or `family <n>`.
    pub family: String,
    /// IP address text, unix socket path (`@name` for abstract), or empty.
    pub address: String,
    /// Port for inet/inet6, else 0.
    pub port: u16,
    /// listen backlog, else 0.
    pub backlog: i64,
    /// Result (for accept: the new descriptor); `None` when lost.
    pub ret: Option<i64>,
    /// Whether it succeeded (`connect` on a non-blocking socket reports `-115`, EINPROGRESS).
    pub success: bool,
}

/// A syscall from `capture.syscalls`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawSyscall {
    /// Syscall name.
    pub name: String,
    /// Syscall number.
    pub nr: u32,
    /// Raw arguments.
    pub args: Vec<u64>,
    /// Return value; `None` when lost.
    pub ret: Option<i64>,
}

/// An io_uring request (an `io_uring` event): one submitted SQE, with its completion.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoUring {
    /// The operation (`IORING_OP_*` in snake_case: `openat`, `read`, `write`, `close`, `connect`, …;
    /// `unknown` for an opcode this build does not name, see `opcode`).
    pub op: UringOp,
    /// The `IORING_OP_*` number.
    pub opcode: u32,
    /// The ring's fd in the process that set it up; -1 when the ring was set up before capture started.
    pub ring_fd: i64,
    /// The SQE's descriptor: the file or socket, the dirfd of the `*at` ops (`-100` = the cwd), or a
    /// registered-file index when `fixed_file` is set; -1 when unknown. For an `openat` that
    /// succeeded into a normal descriptor, the descriptor it returned.
    pub fd: i64,
    /// `fd` is an index into the ring's registered files (`IOSQE_FIXED_FILE`), not a descriptor.
    pub fixed_file: bool,
    /// The file: for the path ops the canonical path of their (first) path, resolved against the cwd or
    /// dirfd as for syscalls; for descriptor ops the file the descriptor was seen opened on. Empty when
    /// unknown (see `unresolved`).
    pub path: String,
    /// The path as the SQE gave it, when it differs from `path`; empty otherwise.
    pub raw_path: String,
    /// Second path: renameat/linkat destination (canonical), symlinkat target (as written).
    pub target: String,
    /// The second path as the SQE gave it, when it differs from `target`; empty otherwise.
    pub raw_target: String,
    /// connect/bind: `inet`, `inet6`, `unix` or `family <n>`; empty for other ops.
    pub family: String,
    /// connect/bind: IP address text or unix socket path; empty otherwise.
    pub address: String,
    /// connect/bind: port for inet/inet6, else 0.
    pub port: u16,
    /// The op's flags word: open flags (`O_*`) for openat/openat2, rename, unlink, link or statx flags.
    pub flags: u64,
    /// Mode for openat/openat2/mkdirat.
    pub mode: u32,
    /// The completion's result (`-errno` on failure; a descriptor for a successful openat or accept);
    /// `None` when no completion was seen within a second.
    pub ret: Option<i64>,
    /// Whether the completion reported success (result ≥ 0).
    pub success: bool,
    /// Submitted by the ring's SQPOLL kernel thread (a thread of this process) rather than by a
    /// syscall of the process.
    pub sq_thread: bool,
    /// The op also produced an ordinary `file` or `net` event (an open for writing, creating or
    /// truncating, a read-only open of a sensitive path, unlinkat, renameat, mkdirat, symlinkat, linkat,
    /// ftruncate, connect, bind), with `syscall: io_uring_<op>`.
    pub file_or_net: bool,
    /// What could not be resolved about this op; empty when everything was.
    pub unresolved: Vec<UringUnresolved>,
}

/// An io_uring instance was set up (an `io_uring_setup` event).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoUringSetup {
    /// The ring fd.
    pub ring_fd: i64,
    /// Submission queue entries.
    pub sq_entries: u32,
    /// Completion queue entries.
    pub cq_entries: u32,
    /// `IORING_SETUP_*` flags.
    pub flags: u32,
    /// A kernel thread polls the submission queue (`IORING_SETUP_SQPOLL`): requests are submitted
    /// without syscalls.
    pub sqpoll: bool,
    /// Whether the agent learnt where the ring's submission queue lives in the process's memory (so the
    /// paths and addresses of its requests can be read). False when the setup params could not be read.
    pub layout_known: bool,
}

impl From<Event> for auditloop_model::Event {
    fn from(x: Event) -> auditloop_model::Event {
        auditloop_model::Event {
            seq: x.seq,
            time: x.time,
            mono_ns: x.mono_ns,
            process: x.process.into(),
            event: x.event.into(),
        }
    }
}

impl From<Process> for auditloop_model::Process {
    fn from(x: Process) -> auditloop_model::Process {
        auditloop_model::Process {
            pid: x.pid,
            tid: x.tid,
            ppid: x.ppid,
            uid: x.uid,
            gid: x.gid,
            comm: x.comm,
            euid: x.euid,
            exe: x.exe,
            cgroup_id: x.cgroup_id,
            container_id: x.container_id,
            parent_exe: x.parent_exe,
            parent_argv: x.parent_argv,
            start: None,
            loginuid: None,
            loginname: String::new(),
            sessionid: None,
            tty: String::new(),
            pgid: None,
            sid: None,
            ssh_client_address: String::new(),
            ssh_client_port: None,
            lineage: auditloop_model::Lineage::default(),
        }
    }
}

impl From<EventBody> for auditloop_model::EventBody {
    fn from(b: EventBody) -> auditloop_model::EventBody {
        match b {
            EventBody::Exec(x) => auditloop_model::EventBody::Exec(x.into()),
            EventBody::Fork(x) => auditloop_model::EventBody::Fork(x.into()),
            EventBody::Exit(x) => auditloop_model::EventBody::Exit(x.into()),
            EventBody::Loss(x) => auditloop_model::EventBody::Loss(x.into()),
            EventBody::AgentStart(x) => auditloop_model::EventBody::AgentStart(x.into()),
            EventBody::AgentStop(x) => auditloop_model::EventBody::AgentStop(x.into()),
            EventBody::File(x) => auditloop_model::EventBody::File(x.into()),
            EventBody::SetId(x) => auditloop_model::EventBody::SetId(x.into()),
            EventBody::Ptrace(x) => auditloop_model::EventBody::Ptrace(x.into()),
            EventBody::Kill(x) => auditloop_model::EventBody::Kill(x.into()),
            EventBody::SetName(x) => auditloop_model::EventBody::SetName(x.into()),
            EventBody::MemfdCreate(x) => auditloop_model::EventBody::MemfdCreate(x.into()),
            EventBody::Net(x) => auditloop_model::EventBody::Net(x.into()),
            EventBody::Syscall(x) => auditloop_model::EventBody::Syscall(x.into()),
            EventBody::ConfigChange(x) => auditloop_model::EventBody::ConfigChange(x.into()),
            EventBody::ConfigLoaded(x) => auditloop_model::EventBody::ConfigLoaded(x.into()),
            EventBody::JournalRecovered(x) => {
                auditloop_model::EventBody::JournalRecovered(x.into())
            }
            EventBody::Alert(x) => auditloop_model::EventBody::Alert(x.into()),
            EventBody::Action(x) => auditloop_model::EventBody::Action(x.into()),
            EventBody::RulesLoaded(x) => auditloop_model::EventBody::RulesLoaded(x.into()),
            EventBody::RulesRejected(x) => auditloop_model::EventBody::RulesRejected(x.into()),
            EventBody::IoUring(x) => auditloop_model::EventBody::IoUring(x.into()),
            EventBody::IoUringSetup(x) => auditloop_model::EventBody::IoUringSetup(x.into()),
        }
    }
}

impl From<Exec> for auditloop_model::Exec {
    fn from(x: Exec) -> auditloop_model::Exec {
        auditloop_model::Exec {
            filename: x.filename,
            argv: x.argv,
            argv_truncated: x.argv_truncated,
            truncated_args: x.truncated_args,
            filename_truncated: x.filename_truncated,
            dirfd: x.dirfd,
            at_flags: x.at_flags,
            ret: x.ret,
            success: x.success,
            old_comm: x.old_comm,
            from_memfd: x.from_memfd,
            killed_by_rule: x.killed_by_rule,
            raw_filename: x.raw_filename,
            dev: x.dev,
            inode: x.inode,
            sha256: x.sha256,
            stopped_by: if x.stopped_by_rule.is_some() {
                "exec_guard".into()
            } else {
                String::new()
            },
            stopped_by_rule: x.stopped_by_rule,
            held_by_rule: None,
            cwd: String::new(),
            ancestors: Vec::new(),
        }
    }
}

impl From<Fork> for auditloop_model::Fork {
    fn from(x: Fork) -> auditloop_model::Fork {
        auditloop_model::Fork {
            child_pid: x.child_pid,
            thread: x.thread,
            clone_flags: x.clone_flags,
        }
    }
}

impl From<Exit> for auditloop_model::Exit {
    fn from(x: Exit) -> auditloop_model::Exit {
        auditloop_model::Exit {
            code: x.code,
            signal: x.signal,
        }
    }
}

impl From<SetId> for auditloop_model::SetId {
    fn from(x: SetId) -> auditloop_model::SetId {
        auditloop_model::SetId {
            syscall: x.syscall,
            ids: x.ids,
            ret: x.ret,
            success: x.success,
        }
    }
}

impl From<Ptrace> for auditloop_model::Ptrace {
    fn from(x: Ptrace) -> auditloop_model::Ptrace {
        auditloop_model::Ptrace {
            request: x.request,
            request_name: x.request_name,
            target_pid: x.target_pid,
            ret: x.ret,
            success: x.success,
        }
    }
}

impl From<Kill> for auditloop_model::Kill {
    fn from(x: Kill) -> auditloop_model::Kill {
        auditloop_model::Kill {
            syscall: x.syscall,
            target_pid: x.target_pid,
            signal: x.signal,
            ret: x.ret,
            success: x.success,
        }
    }
}

impl From<SetName> for auditloop_model::SetName {
    fn from(x: SetName) -> auditloop_model::SetName {
        auditloop_model::SetName {
            name: x.name,
            ret: x.ret,
        }
    }
}

impl From<MemfdCreate> for auditloop_model::MemfdCreate {
    fn from(x: MemfdCreate) -> auditloop_model::MemfdCreate {
        auditloop_model::MemfdCreate {
            name: x.name,
            flags: x.flags,
            ret: x.ret,
        }
    }
}

impl From<Loss> for auditloop_model::Loss {
    fn from(x: Loss) -> auditloop_model::Loss {
        auditloop_model::Loss {
            stage: x.stage,
            record: x.record,
            count: x.count,
            total: x.total,
        }
    }
}

impl From<ConfigLoaded> for auditloop_model::ConfigLoaded {
    fn from(x: ConfigLoaded) -> auditloop_model::ConfigLoaded {
        auditloop_model::ConfigLoaded {
            path: x.path,
            sha256: x.sha256,
            reason: x.reason,
        }
    }
}

impl From<JournalRecovered> for auditloop_model::JournalRecovered {
    fn from(x: JournalRecovered) -> auditloop_model::JournalRecovered {
        auditloop_model::JournalRecovered {
            segment: x.segment,
            offset: x.offset,
            bytes_cut: x.bytes_cut,
            last_seq: x.last_seq,
            reason: x.reason,
        }
    }
}

impl From<RulesLoaded> for auditloop_model::RulesLoaded {
    fn from(x: RulesLoaded) -> auditloop_model::RulesLoaded {
        auditloop_model::RulesLoaded {
            names: Vec::new(),
            path: x.path,
            rules: x.rules,
            kernel_rules: x.kernel_rules,
            reason: x.reason,
        }
    }
}

impl From<RulesRejected> for auditloop_model::RulesRejected {
    fn from(x: RulesRejected) -> auditloop_model::RulesRejected {
        auditloop_model::RulesRejected {
            path: x.path,
            errors: x.errors,
        }
    }
}

impl From<AgentStart> for auditloop_model::AgentStart {
    fn from(x: AgentStart) -> auditloop_model::AgentStart {
        auditloop_model::AgentStart {
            version: x.version,
            tracepoints: x.tracepoints,
            ring_buffer_bytes: x.ring_buffer_bytes,
            kernel: String::new(),
            tier: String::new(),
            features: String::new(),
        }
    }
}

impl From<AgentStop> for auditloop_model::AgentStop {
    fn from(x: AgentStop) -> auditloop_model::AgentStop {
        auditloop_model::AgentStop {
            records: x.records,
            events: x.events,
            kernel_lost: x.kernel_lost,
            decode_errors: x.decode_errors,
            filtered: x.filtered,
        }
    }
}

impl From<File> for auditloop_model::File {
    fn from(x: File) -> auditloop_model::File {
        auditloop_model::File {
            op: x.op,
            syscall: x.syscall,
            path: x.path,
            target: x.target,
            resolved: x.resolved,
            path_truncated: x.path_truncated,
            flags: x.flags,
            mode: x.mode,
            uid: x.uid,
            gid: x.gid,
            length: x.length,
            fd: x.fd,
            ret: x.ret,
            success: x.success,
            raw_path: x.raw_path,
            raw_target: x.raw_target,
            denied_by_rule: None,
            kernel_path: String::new(),
        }
    }
}

impl From<ConfigChange> for auditloop_model::ConfigChange {
    fn from(x: ConfigChange) -> auditloop_model::ConfigChange {
        auditloop_model::ConfigChange {
            path: x.path,
            trigger: x.trigger,
            old_sha256: x.old_sha256,
            new_sha256: x.new_sha256,
            size: x.size,
            mode: x.mode,
            uid: x.uid,
            gid: x.gid,
            old_mode: x.old_mode,
            old_uid: x.old_uid,
            old_gid: x.old_gid,
            diff: x.diff,
            diff_truncated: x.diff_truncated,
            redacted: x.redacted,
            changed_entries: x.changed_entries,
            link_target: x.link_target,
        }
    }
}

impl From<Alert> for auditloop_model::Alert {
    fn from(x: Alert) -> auditloop_model::Alert {
        auditloop_model::Alert {
            rule: x.rule,
            severity: x.severity,
            output: x.output,
            tags: x.tags,
            trigger_seq: x.trigger_seq,
        }
    }
}

impl From<ActionTaken> for auditloop_model::ActionTaken {
    fn from(x: ActionTaken) -> auditloop_model::ActionTaken {
        auditloop_model::ActionTaken {
            action: x.action,
            rule: x.rule,
            trigger_seq: x.trigger_seq,
            target_pid: x.target_pid,
            path: x.path,
            before_sha256: x.before_sha256,
            after_sha256: x.after_sha256,
            ok: x.ok,
            detail: x.detail,
        }
    }
}

impl From<Net> for auditloop_model::Net {
    fn from(x: Net) -> auditloop_model::Net {
        auditloop_model::Net {
            op: x.op,
            fd: x.fd,
            family: x.family,
            address: x.address,
            port: x.port,
            backlog: x.backlog,
            ret: x.ret,
            success: x.success,
            protocol: auditloop_model::NetProtocol::Unknown,
            local_address: String::new(),
            local_port: 0,
            remote_address: String::new(),
            remote_port: 0,
            path: String::new(),
        }
    }
}

impl From<RawSyscall> for auditloop_model::RawSyscall {
    fn from(x: RawSyscall) -> auditloop_model::RawSyscall {
        auditloop_model::RawSyscall {
            name: x.name,
            nr: x.nr,
            args: x.args,
            ret: x.ret,
        }
    }
}

impl From<IoUring> for auditloop_model::IoUring {
    fn from(x: IoUring) -> auditloop_model::IoUring {
        auditloop_model::IoUring {
            op: x.op,
            opcode: x.opcode,
            ring_fd: x.ring_fd,
            fd: x.fd,
            fixed_file: x.fixed_file,
            path: x.path,
            raw_path: x.raw_path,
            target: x.target,
            raw_target: x.raw_target,
            family: x.family,
            address: x.address,
            port: x.port,
            flags: x.flags,
            mode: x.mode,
            ret: x.ret,
            success: x.success,
            sq_thread: x.sq_thread,
            file_or_net: x.file_or_net,
            unresolved: x.unresolved,
        }
    }
}

impl From<IoUringSetup> for auditloop_model::IoUringSetup {
    fn from(x: IoUringSetup) -> auditloop_model::IoUringSetup {
        auditloop_model::IoUringSetup {
            ring_fd: x.ring_fd,
            sq_entries: x.sq_entries,
            cq_entries: x.cq_entries,
            flags: x.flags,
            sqpoll: x.sqpoll,
            layout_known: x.layout_known,
        }
    }
}
