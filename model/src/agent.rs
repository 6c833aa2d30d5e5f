//! The agent's own events: its lifecycle, loss accounting, configuration and rules.

use auditloop_model_derive::Fields;
use serde::{Deserialize, Serialize};

use crate::vocab::LossStage;

/// Records that did not reach userspace (or could not be decoded), with exact counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "loss", kind = Loss)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "config", kind = ConfigLoaded)]
pub struct ConfigLoaded {
    /// Config file (absent file = defaults).
    pub path: String,
    /// SHA-256 of its content; `None` when absent.
    pub sha256: Option<String>,
    /// Why: `start` or `sighup`.
    pub reason: String,
}

/// The journal's torn tail was cut at start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "recovered", kind = JournalRecovered)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "rules_loaded", kind = RulesLoaded)]
pub struct RulesLoaded {
    /// Rules file or directory.
    pub path: String,
    /// Rules loaded.
    pub rules: u32,
    /// Rules enforced in the kernel at exec time.
    pub kernel_rules: u32,
    /// Why: `start` or `reload`.
    pub reason: String,
    /// The names of the rules loaded, in file order (so a collector can tell the rules that never fired).
    pub names: Vec<String>,
}

/// A rule set was rejected.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "rules_rejected", kind = RulesRejected)]
pub struct RulesRejected {
    /// Rules file or directory.
    pub path: String,
    /// Every error, each naming `file:line:col`.
    pub errors: String,
}

/// The agent started capturing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "agent_start", kind = AgentStart)]
pub struct AgentStart {
    /// Agent version.
    pub version: String,
    /// Number of tracepoints attached.
    pub tracepoints: u32,
    /// Kernel ring buffer size in bytes.
    pub ring_buffer_bytes: u32,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Enforcement tier chosen: `lsm` (BPF LSM hooks refuse denied execs and file changes with `EPERM`,
    /// paths from the kernel) or `tracepoint` (SIGKILL at exec, the fanotify exec guard, userspace paths).
    pub tier: String,
    /// What the kernel allows, each `name=yes` or `name=no(reason)`: `bpf_lsm`, `fentry`, `kprobes`,
    /// `kernel_reads`, `ringbuf`, `send_signal`, `btf`.
    pub features: String,
}

/// The agent stopped capturing; counters cover the whole run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "agent_stop", kind = AgentStop)]
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

/// Something another process did to the agent: a signal, a stop, a ptrace, a write to its files, a
/// change to its kernel programs or maps; or the previous run ended without a clean stop. The event's
/// process is whoever did it (the agent itself for what it found by checking).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "tamper", kind = Tamper)]
pub struct Tamper {
    /// What: `signal`, `stop`, `ptrace`, `memory`, `write`, `bpf` or `unclean_stop`.
    pub what: String,
    /// What it was aimed at: the agent's pid, one of its files, a program or map id.
    pub target: String,
    /// In words: the signal, the syscall and request, the file operation, what changed.
    pub detail: String,
    /// The journal sequence number of the event that showed it (0: found by the agent's own check).
    pub trigger_seq: u64,
}
