//! The event envelope: who did it ([`Process`]), when, and what happened ([`EventBody`], by [`EventKind`]).
//!
//! [`EventKind`] is derived from [`EventBody`] by the compiler: a new kind is one new variant here (and its
//! body type), and every exhaustive `match` over kinds elsewhere stops compiling until it handles it. The
//! variant order is the binary encoding's tag: append new kinds at the end, never reorder.

use auditloop_model_derive::Fields;
use serde::{Deserialize, Serialize};
use strum::{EnumCount, EnumDiscriminants, EnumIter, EnumString, IntoStaticStr, VariantNames};

use crate::agent::{
    AgentStart, AgentStop, ConfigLoaded, JournalRecovered, Loss, RulesLoaded, RulesRejected, Tamper,
};
use crate::file::{ConfigChange, File};
use crate::finding::{ActionTaken, Alert, Hold};
use crate::lineage::Lineage;
use crate::net::Net;
use crate::process::{Exec, Exit, Fork, Kill, MemfdCreate, Ptrace, SetId, SetName};
use crate::syscall::RawSyscall;
use crate::time::WallTime;
use crate::uring::{IoUring, IoUringSetup};

/// One observed event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Fields)]
#[fields(prefix = "evt")]
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
    #[field(skip)]
    pub process: Process,
    /// What happened.
    #[field(skip)]
    pub event: EventBody,
}

impl Event {
    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        self.event.kind()
    }
}

/// The process context of an event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "proc", at = process)]
pub struct Process {
    /// Process id (tgid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Parent process id; 0 when unknown.
    pub ppid: u32,
    /// Real user id.
    #[field(name = "user.uid")]
    pub uid: u32,
    /// Real group id.
    #[field(name = "user.gid")]
    pub gid: u32,
    /// Task name (at most 15 bytes, as the kernel keeps it).
    #[field(rename = "name")]
    pub comm: String,
    /// Effective user id as tracked by the agent (see `docs/events.md` for its limits).
    #[field(name = "user.euid")]
    pub euid: u32,
    /// Executable path (from exec events or `/proc/<pid>/exe`); empty when unknown.
    #[field(absent_if_empty)]
    pub exe: String,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// Container id (64 hex digits) when the cgroup path names one.
    #[field(name = "container.id", absent_if_empty)]
    pub container_id: Option<String>,
    /// Parent's executable path; empty when unknown.
    #[field(rename = "pexe", absent_if_empty)]
    pub parent_exe: String,
    /// Parent's argv as last seen; empty when unknown.
    #[field(rename = "pcmdline", absent_if_empty)]
    pub parent_argv: Vec<String>,
    /// When the process started: its fork as the kernel reported it, or `/proc/<pid>/stat` for processes
    /// running before the agent.
    pub start: Option<WallTime>,
    /// Audit login uid (`/proc/<pid>/loginuid`): the user who logged in, kept across `su`, `sudo` and
    /// setuid programs; absent when no login set it (4294967295, daemons started at boot).
    #[field(name = "user.loginuid")]
    pub loginuid: Option<u32>,
    /// Name of the login uid's user (`/etc/passwd`); empty when the uid is absent or has no entry there.
    #[field(name = "user.loginname", absent_if_empty)]
    pub loginname: String,
    /// Audit session id (`/proc/<pid>/sessionid`): one per login; absent when no login set it.
    #[field(name = "user.sessionid")]
    pub sessionid: Option<u32>,
    /// Controlling terminal (`pts/3`, `tty1`, `ttyS0`, or `tty(<major>:<minor>)`); empty when none.
    #[field(absent_if_empty)]
    pub tty: String,
    /// Process group id (`/proc/<pid>/stat`, as read at the process's first event after its fork or
    /// exec); absent when unknown.
    pub pgid: Option<u32>,
    /// Session id of the kernel's session (the session leader's pid, `/proc/<pid>/stat`, read like
    /// `pgid`); not the audit session (`user.sessionid`). Absent when unknown.
    pub sid: Option<u32>,
    /// For a process under sshd: the SSH client's address, from the TCP connection of the nearest sshd
    /// ancestor (the kernel's socket table, never the environment); empty otherwise.
    #[field(name = "user.ssh_client_address", absent_if_empty)]
    pub ssh_client_address: String,
    /// For a process under sshd: the SSH client's port (see `user.ssh_client_address`).
    #[field(name = "user.ssh_client_port")]
    pub ssh_client_port: Option<u16>,
    /// The agent's whole view of the ancestry and the cwd (in memory only, never serialized: a journaled
    /// or printed event has an empty one). Rules read `proc.aname[N]`, `proc.apid[N]`, `proc.aexe[N]`,
    /// `proc.acmdline[N]`, `proc.ancestors` and `proc.cwd` from it.
    #[field(skip)]
    #[serde(skip)]
    pub lineage: Lineage,
}

/// What happened, by kind. The JSON key of each variant is its [`EventKind`] name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, EnumDiscriminants)]
#[serde(rename_all = "snake_case")]
#[strum_discriminants(
    name(EventKind),
    doc = "The kind of an event: the names rules (`evt.kind`), exports and the collector use.",
    derive(
        Hash,
        PartialOrd,
        Ord,
        EnumIter,
        EnumCount,
        EnumString,
        IntoStaticStr,
        VariantNames,
        strum::Display,
        serde_with::SerializeDisplay,
        serde_with::DeserializeFromStr
    ),
    strum(serialize_all = "snake_case")
)]
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
    #[strum_discriminants(strum(serialize = "setid"))]
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
    /// Another process did something to the agent, or its previous run ended without a clean stop.
    Tamper(Tamper),
    /// A process was held for a rule (stopped until a decision), or its hold was decided.
    Hold(Hold),
}

impl EventBody {
    /// This body's kind.
    pub fn kind(&self) -> EventKind {
        EventKind::from(self)
    }

    /// A body of `kind` with every field at its default (synthetic events, e.g. to test a rule against
    /// every kind it can match).
    pub fn empty(kind: EventKind) -> EventBody {
        match kind {
            EventKind::Exec => EventBody::Exec(Exec::default()),
            EventKind::Fork => EventBody::Fork(Fork::default()),
            EventKind::Exit => EventBody::Exit(Exit::default()),
            EventKind::Loss => EventBody::Loss(Loss::default()),
            EventKind::AgentStart => EventBody::AgentStart(AgentStart::default()),
            EventKind::AgentStop => EventBody::AgentStop(AgentStop::default()),
            EventKind::File => EventBody::File(File::default()),
            EventKind::SetId => EventBody::SetId(SetId::default()),
            EventKind::Ptrace => EventBody::Ptrace(Ptrace::default()),
            EventKind::Kill => EventBody::Kill(Kill::default()),
            EventKind::SetName => EventBody::SetName(SetName::default()),
            EventKind::MemfdCreate => EventBody::MemfdCreate(MemfdCreate::default()),
            EventKind::Net => EventBody::Net(Net::default()),
            EventKind::Syscall => EventBody::Syscall(RawSyscall::default()),
            EventKind::ConfigChange => EventBody::ConfigChange(ConfigChange::default()),
            EventKind::ConfigLoaded => EventBody::ConfigLoaded(ConfigLoaded::default()),
            EventKind::JournalRecovered => EventBody::JournalRecovered(JournalRecovered::default()),
            EventKind::Alert => EventBody::Alert(Alert::default()),
            EventKind::Action => EventBody::Action(ActionTaken::default()),
            EventKind::RulesLoaded => EventBody::RulesLoaded(RulesLoaded::default()),
            EventKind::RulesRejected => EventBody::RulesRejected(RulesRejected::default()),
            EventKind::IoUring => EventBody::IoUring(IoUring::default()),
            EventKind::IoUringSetup => EventBody::IoUringSetup(IoUringSetup::default()),
            EventKind::Tamper => EventBody::Tamper(Tamper::default()),
            EventKind::Hold => EventBody::Hold(Hold::default()),
        }
    }
}

crate::named!(EventKind);

/// The number of event kinds.
pub const EVENT_KIND_COUNT: usize = <EventKind as EnumCount>::COUNT;
