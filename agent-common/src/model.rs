//! The userspace event model: one `Event` type used by capture, output, journal, rules, shipper and collector.
//!
//! The model serializes with serde. It avoids representations that only self-describing formats can read
//! back (no `flatten`, no internally tagged enums, no skipped fields), so the same type round-trips through
//! JSON and through compact binary encodings. [`WallTime`] prints as RFC 3339 text in human-readable formats
//! and as integer nanoseconds otherwise.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

impl Event {
    /// A short stable name of the event's kind (`exec`, `fork`, `exit`, `loss`, …).
    pub fn kind(&self) -> &'static str {
        self.event.kind()
    }
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

/// What happened, by kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
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
}

impl EventBody {
    /// A short stable name of this kind.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::Exec(_) => "exec",
            EventBody::Fork(_) => "fork",
            EventBody::Exit(_) => "exit",
            EventBody::Loss(_) => "loss",
            EventBody::AgentStart(_) => "agent_start",
            EventBody::AgentStop(_) => "agent_stop",
            EventBody::File(_) => "file",
            EventBody::SetId(_) => "setid",
            EventBody::Ptrace(_) => "ptrace",
            EventBody::Kill(_) => "kill",
            EventBody::SetName(_) => "set_name",
            EventBody::MemfdCreate(_) => "memfd_create",
            EventBody::Net(_) => "net",
            EventBody::Syscall(_) => "syscall",
            EventBody::ConfigChange(_) => "config_change",
            EventBody::ConfigLoaded(_) => "config_loaded",
            EventBody::JournalRecovered(_) => "journal_recovered",
            EventBody::Alert(_) => "alert",
            EventBody::Action(_) => "action",
            EventBody::RulesLoaded(_) => "rules_loaded",
            EventBody::RulesRejected(_) => "rules_rejected",
        }
    }
}

/// `execve`/`execveat`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exec {
    /// Filename as passed to the syscall.
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

/// Records that did not reach userspace (or could not be decoded), with exact counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loss {
    /// Where the loss happened: `kernel_ring_buffer` or `decode`.
    pub stage: String,
    /// Record kind lost (`exec_enter`, `fork`, …; `unknown` when it could not be told).
    pub record: String,
    /// Records lost since the previous loss event for this stage and record kind.
    pub count: u64,
    /// Records lost since the agent started, for this stage and record kind.
    pub total: u64,
}

/// A file operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    /// `open` (write/create/truncate), `read` (read-only open of a sensitive path), `unlink`, `rename`,
    /// `link`, `symlink`, `chmod`, `chown`, `truncate`, `mkdir`, `rmdir`, `utimens`, `mount`, `umount`,
    /// `chdir`.
    pub op: String,
    /// The syscall used (`openat`, `renameat2`, `fchmod`, …).
    pub syscall: String,
    /// The file, absolute when it could be resolved (see `resolved`); for `symlink` the link created; for
    /// `mount` the mount point.
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

/// A network operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Net {
    /// `connect`, `bind`, `listen` or `accept`.
    pub op: String,
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

/// A watched configuration file changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigChange {
    /// The watched file.
    pub path: String,
    /// What triggered the check: `close_write`, `rename`, `truncate`, `unlink`, `exit`, `chmod`, `chown`.
    pub trigger: String,
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
    /// Unified diff (text files up to the size limit).
    pub diff: Option<String>,
    /// The diff was cut at its length limit.
    pub diff_truncated: bool,
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

/// A rule matched an event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Rule name.
    pub rule: String,
    /// Severity (`emergency` … `debug`).
    pub severity: String,
    /// The rule's rendered output.
    pub output: String,
    /// The rule's tags (e.g. ATT&CK ids).
    pub tags: Vec<String>,
    /// Journal sequence number of the triggering event.
    pub trigger_seq: u64,
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

/// An action carried out for a rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionTaken {
    /// `kill`, `kill_group`, `kernel_kill` (SIGKILL at exec, in the kernel), `rollback`, `webhook`, `deny`.
    pub action: String,
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
}

/// Wall-clock time in nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WallTime(pub u64);

impl WallTime {
    /// The current wall-clock time.
    pub fn now() -> WallTime {
        WallTime::from(SystemTime::now())
    }

    /// As a `SystemTime`.
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.0)
    }
}

impl From<SystemTime> for WallTime {
    fn from(t: SystemTime) -> WallTime {
        let nanos = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        WallTime(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

impl fmt::Display for WallTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            humantime::format_rfc3339_nanos(self.to_system_time())
        )
    }
}

impl Serialize for WallTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_u64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for WallTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<WallTime, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            humantime::parse_rfc3339(&text)
                .map(WallTime::from)
                .map_err(serde::de::Error::custom)
        } else {
            u64::deserialize(deserializer).map(WallTime)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        Event {
            seq: 3,
            time: WallTime(1_700_000_000_123_456_789),
            mono_ns: 42,
            process: Process {
                pid: 1,
                tid: 1,
                ppid: 0,
                uid: 0,
                gid: 0,
                comm: "true".into(),
                ..Process::default()
            },
            event: EventBody::Exec(Exec {
                filename: "/bin/true".into(),
                argv: vec!["true".into(), "x".into()],
                ret: Some(0),
                success: true,
                dirfd: -100,
                ..Exec::default()
            }),
        }
    }

    #[test]
    fn kind_names_are_the_serialized_tags() {
        let bodies = [
            EventBody::Exec(Exec::default()),
            EventBody::Fork(Fork::default()),
            EventBody::Exit(Exit::default()),
            EventBody::Loss(Loss::default()),
            EventBody::AgentStart(AgentStart::default()),
            EventBody::AgentStop(AgentStop::default()),
            EventBody::File(File::default()),
            EventBody::SetId(SetId::default()),
            EventBody::Ptrace(Ptrace::default()),
            EventBody::Kill(Kill::default()),
            EventBody::SetName(SetName::default()),
            EventBody::MemfdCreate(MemfdCreate::default()),
            EventBody::Net(Net::default()),
            EventBody::Syscall(RawSyscall::default()),
            EventBody::ConfigChange(ConfigChange::default()),
            EventBody::ConfigLoaded(ConfigLoaded::default()),
            EventBody::JournalRecovered(JournalRecovered::default()),
            EventBody::Alert(Alert::default()),
            EventBody::Action(ActionTaken::default()),
            EventBody::RulesLoaded(RulesLoaded::default()),
            EventBody::RulesRejected(RulesRejected::default()),
        ];
        for body in bodies {
            let value = serde_json::to_value(&body).unwrap();
            let tag = value
                .as_object()
                .and_then(|o| o.keys().next().cloned())
                .unwrap();
            assert_eq!(tag, body.kind(), "kind() and the JSON key must agree");
        }
    }

    #[test]
    fn json_round_trip_and_shape() {
        let ev = sample();
        let text = serde_json::to_string(&ev).unwrap();
        assert!(
            text.contains(r#""time":"2023-11-14T22:13:20.123456789Z""#),
            "{text}"
        );
        assert!(
            text.contains(r#""event":{"exec":{"filename":"/bin/true""#),
            "{text}"
        );
        let back: Event = serde_json::from_str(&text).unwrap();
        assert_eq!(back, ev);
        assert_eq!(back.kind(), "exec");
    }
}
