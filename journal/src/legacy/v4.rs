//! The event model of journal format 4 (payload tag 5, written until format 5 added `hold` events and
//! `exec.held_by_rule`), frozen where it differs from today's: records of that format decode into these
//! types and are converted into today's model, so journals and batches of agents of that format stay
//! readable.
//!
//! Only the exec type and the kind list changed; every other type is today's, unchanged since format 4
//! (`format_4_events_still_decode` in `record.rs` decodes a fixture written by a format-4 agent, so a change
//! to one of them fails that test: freeze the type here first). Never change these types.

use auditloop_model::{
    ActionTaken, AgentStart, Alert, Ancestor, ConfigChange, ConfigLoaded, Exit, File, Fork,
    IoUring, IoUringSetup, JournalRecovered, Kill, Loss, MemfdCreate, Net, Process, Ptrace,
    RawSyscall, RulesRejected, SetId, SetName, Tamper, WallTime,
};
use serde::{Deserialize, Serialize};

// `rules_loaded` as formats 3 and 4 wrote it, before the rule names: format 3's frozen type.
use super::v3::RulesLoaded;

/// One observed event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Journal sequence number.
    pub seq: u64,
    /// Wall-clock time of the event.
    pub time: WallTime,
    /// `CLOCK_MONOTONIC` nanoseconds.
    pub mono_ns: u64,
    /// The process that caused the event.
    pub process: Process,
    /// What happened.
    pub event: EventBody,
}

/// What happened, in format 4's variant order (no `hold`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[expect(
    missing_docs,
    reason = "a frozen copy; see today's model for the meanings"
)]
pub enum EventBody {
    Exec(Exec),
    Fork(Fork),
    Exit(Exit),
    Loss(Loss),
    AgentStart(AgentStart),
    AgentStop(auditloop_model::AgentStop),
    File(File),
    SetId(SetId),
    Ptrace(Ptrace),
    Kill(Kill),
    SetName(SetName),
    MemfdCreate(MemfdCreate),
    Net(Net),
    Syscall(RawSyscall),
    ConfigChange(ConfigChange),
    ConfigLoaded(ConfigLoaded),
    JournalRecovered(JournalRecovered),
    Alert(Alert),
    Action(ActionTaken),
    RulesLoaded(RulesLoaded),
    RulesRejected(RulesRejected),
    IoUring(IoUring),
    IoUringSetup(IoUringSetup),
    Tamper(Tamper),
}

/// `execve`/`execveat` (format 4).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[expect(
    missing_docs,
    reason = "a frozen copy; see today's model for the meanings"
)]
pub struct Exec {
    pub filename: String,
    pub argv: Vec<String>,
    pub argv_truncated: bool,
    pub truncated_args: Vec<u32>,
    pub filename_truncated: bool,
    pub dirfd: i32,
    pub at_flags: u32,
    pub ret: Option<i64>,
    pub success: bool,
    pub old_comm: String,
    pub from_memfd: bool,
    pub killed_by_rule: Option<u32>,
    pub raw_filename: String,
    pub dev: u64,
    pub inode: u64,
    pub sha256: Option<String>,
    pub stopped_by_rule: Option<String>,
    pub stopped_by: String,
    pub cwd: String,
    pub ancestors: Vec<Ancestor>,
}

impl From<Exec> for auditloop_model::Exec {
    fn from(e: Exec) -> Self {
        auditloop_model::Exec {
            filename: e.filename,
            argv: e.argv,
            argv_truncated: e.argv_truncated,
            truncated_args: e.truncated_args,
            filename_truncated: e.filename_truncated,
            dirfd: e.dirfd,
            at_flags: e.at_flags,
            ret: e.ret,
            success: e.success,
            old_comm: e.old_comm,
            from_memfd: e.from_memfd,
            killed_by_rule: e.killed_by_rule,
            raw_filename: e.raw_filename,
            dev: e.dev,
            inode: e.inode,
            sha256: e.sha256,
            stopped_by_rule: e.stopped_by_rule,
            stopped_by: e.stopped_by,
            cwd: e.cwd,
            ancestors: e.ancestors,
            // No rule held a process at exec in format 4.
            held_by_rule: None,
        }
    }
}

impl From<EventBody> for auditloop_model::EventBody {
    fn from(b: EventBody) -> Self {
        use auditloop_model::EventBody as Now;
        match b {
            EventBody::Exec(e) => Now::Exec(e.into()),
            EventBody::Fork(e) => Now::Fork(e),
            EventBody::Exit(e) => Now::Exit(e),
            EventBody::Loss(e) => Now::Loss(e),
            EventBody::AgentStart(e) => Now::AgentStart(e),
            EventBody::AgentStop(e) => Now::AgentStop(e),
            EventBody::File(e) => Now::File(e),
            EventBody::SetId(e) => Now::SetId(e),
            EventBody::Ptrace(e) => Now::Ptrace(e),
            EventBody::Kill(e) => Now::Kill(e),
            EventBody::SetName(e) => Now::SetName(e),
            EventBody::MemfdCreate(e) => Now::MemfdCreate(e),
            EventBody::Net(e) => Now::Net(e),
            EventBody::Syscall(e) => Now::Syscall(e),
            EventBody::ConfigChange(e) => Now::ConfigChange(e),
            EventBody::ConfigLoaded(e) => Now::ConfigLoaded(e),
            EventBody::JournalRecovered(e) => Now::JournalRecovered(e),
            EventBody::Alert(e) => Now::Alert(e),
            EventBody::Action(e) => Now::Action(e),
            EventBody::RulesLoaded(e) => Now::RulesLoaded(e.into()),
            EventBody::RulesRejected(e) => Now::RulesRejected(e),
            EventBody::IoUring(e) => Now::IoUring(e),
            EventBody::IoUringSetup(e) => Now::IoUringSetup(e),
            EventBody::Tamper(e) => Now::Tamper(e),
        }
    }
}

impl From<Event> for auditloop_model::Event {
    fn from(e: Event) -> Self {
        auditloop_model::Event {
            seq: e.seq,
            time: e.time,
            mono_ns: e.mono_ns,
            process: e.process,
            event: e.event.into(),
        }
    }
}
