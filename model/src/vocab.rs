//! The small vocabularies events carry: where a loss happened, which action was taken, how severe a
//! finding is. Each is one enum; its names (snake_case) are derived from it, and it is serialized as that
//! name in every format, so the journal's bytes and the JSON output spell it the same way.

use strum::{EnumIter, EnumString, IntoStaticStr, VariantNames};

/// Where records were lost (a `loss` event's `stage`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    EnumString,
    IntoStaticStr,
    VariantNames,
    strum::Display,
    serde_with::SerializeDisplay,
    serde_with::DeserializeFromStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum LossStage {
    /// The kernel could not reserve ring-buffer space for a record (counted in the kernel).
    #[default]
    KernelRingBuffer,
    /// A record from the kernel could not be decoded.
    Decode,
    /// The journal's spool was full of records the collector had not acknowledged.
    SpoolOverflow,
    /// The journal could not be written (disk full, I/O error); counted until it could again.
    Journal,
    /// Standard output was blocked; the events are in the journal, only their printed copies were
    /// dropped.
    Stdout,
    /// The webhook queue was full; the alerts are in the journal, only their deliveries were dropped.
    Webhook,
}

/// An action carried out for a rule (an `action` event's `action`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    EnumString,
    IntoStaticStr,
    VariantNames,
    strum::Display,
    serde_with::SerializeDisplay,
    serde_with::DeserializeFromStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum ActionKind {
    /// SIGKILL through a pidfd.
    #[default]
    Kill,
    /// SIGKILL to the process group.
    KillGroup,
    /// SIGKILL sent in the kernel at exec, before the program ran.
    KernelKill,
    /// A watched file restored from the content store.
    Rollback,
    /// The operation refused (where the kernel allows it).
    Deny,
}

/// How serious a finding is (syslog levels; `Emergency` is the most severe and sorts first).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    EnumIter,
    EnumString,
    IntoStaticStr,
    VariantNames,
    strum::Display,
    serde_with::SerializeDisplay,
    serde_with::DeserializeFromStr,
)]
#[strum(serialize_all = "snake_case", ascii_case_insensitive)]
pub enum Severity {
    /// System is unusable.
    Emergency,
    /// Act immediately.
    Alert,
    /// Critical.
    Critical,
    /// Error.
    Error,
    /// Warning (the default).
    #[default]
    Warning,
    /// Normal but significant.
    Notice,
    /// Informational.
    Informational,
    /// Debugging.
    Debug,
}

/// What a file event did (a `file` event's `op`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    EnumString,
    IntoStaticStr,
    VariantNames,
    strum::Display,
    serde_with::SerializeDisplay,
    serde_with::DeserializeFromStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum FileOp {
    /// An open for writing, creating or truncating.
    #[default]
    Open,
    /// A read-only open of a sensitive path.
    Read,
    /// unlink, unlinkat without `AT_REMOVEDIR`.
    Unlink,
    /// rename, renameat, renameat2.
    Rename,
    /// link, linkat.
    Link,
    /// symlink, symlinkat.
    Symlink,
    /// chmod family.
    Chmod,
    /// chown family.
    Chown,
    /// truncate, ftruncate.
    Truncate,
    /// mkdir, mkdirat.
    Mkdir,
    /// rmdir (and unlinkat with `AT_REMOVEDIR`).
    Rmdir,
    /// utimensat.
    Utimens,
    /// mount.
    Mount,
    /// umount2.
    Umount,
    /// chdir, fchdir.
    Chdir,
}

/// What a network event did (a `net` event's `op`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    EnumString,
    IntoStaticStr,
    VariantNames,
    strum::Display,
    serde_with::SerializeDisplay,
    serde_with::DeserializeFromStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum NetOp {
    /// connect.
    #[default]
    Connect,
    /// bind.
    Bind,
    /// listen.
    Listen,
    /// accept, accept4.
    Accept,
}

/// The transport of a network event's socket (a `net` event's `protocol`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    EnumString,
    IntoStaticStr,
    VariantNames,
    strum::Display,
    serde_with::SerializeDisplay,
    serde_with::DeserializeFromStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum NetProtocol {
    /// Not known: the socket was created before the agent saw it and was gone from `/proc` when looked up.
    #[default]
    Unknown,
    /// TCP (an inet or inet6 stream socket).
    Tcp,
    /// UDP (an inet or inet6 datagram socket).
    Udp,
    /// A UNIX domain socket (stream, datagram or seqpacket).
    Unix,
    /// Any other socket (raw, ICMP, netlink, packet, …); `family` names its family.
    Other,
}

/// What made the agent look at a watched file again (a `config_change` event's `trigger`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    EnumString,
    IntoStaticStr,
    VariantNames,
    strum::Display,
    serde_with::SerializeDisplay,
    serde_with::DeserializeFromStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum ChangeTrigger {
    /// A descriptor opened for writing was closed.
    #[default]
    CloseWrite,
    /// The file was renamed over.
    Rename,
    /// It was truncated.
    Truncate,
    /// It was unlinked.
    Unlink,
    /// Its mode changed.
    Chmod,
    /// Its owner changed.
    Chown,
    /// A process that had it open for writing exited.
    Exit,
    /// The agent started and found it different from the last known content.
    Startup,
}

/// Where a hold stands (a `hold` event's `state`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    EnumString,
    IntoStaticStr,
    VariantNames,
    strum::Display,
    serde_with::SerializeDisplay,
    serde_with::DeserializeFromStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum HoldState {
    /// The process is stopped and waits for a decision.
    #[default]
    Requested,
    /// Approved: the process was continued (SIGCONT).
    Approved,
    /// Denied: the process was killed (SIGKILL).
    Denied,
    /// Nobody decided in time: the rule's default was applied (`decision` says which).
    TimedOut,
    /// The process exited (or was killed by someone else) while held.
    Gone,
    /// The hold could not be placed or applied (refused target, signal failure); `detail` says why.
    Failed,
}

/// What stopped a held process (a `hold` event's `stopped_by`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    EnumString,
    IntoStaticStr,
    VariantNames,
    strum::Display,
    serde_with::SerializeDisplay,
    serde_with::DeserializeFromStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum HoldStopper {
    /// SIGSTOP sent in the kernel at `sys_enter_execve`: the new program ran no instruction.
    #[default]
    Kernel,
    /// SIGSTOP sent through a pidfd after the event was journaled.
    Pidfd,
}

/// What a hold ends in: the rule's `default`, or a decision (a `hold` event's `default` and `decision`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    EnumString,
    IntoStaticStr,
    VariantNames,
    strum::Display,
    serde_with::SerializeDisplay,
    serde_with::DeserializeFromStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum HoldDecision {
    /// Let the process run on (SIGCONT).
    Approve,
    /// Kill it (SIGKILL).
    #[default]
    Deny,
}

crate::named!(
    HoldState,
    HoldStopper,
    HoldDecision,
    LossStage,
    ActionKind,
    Severity,
    FileOp,
    NetOp,
    NetProtocol,
    ChangeTrigger
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_snake_case_and_serialize_as_text() {
        assert_eq!(LossStage::SpoolOverflow.as_str(), "spool_overflow");
        assert_eq!(ActionKind::KernelKill.to_string(), "kernel_kill");
        assert_eq!(Severity::parse("WARNING"), Some(Severity::Warning));
        assert_eq!(
            serde_json::to_string(&LossStage::KernelRingBuffer).unwrap(),
            "\"kernel_ring_buffer\""
        );
        let back: ActionKind = serde_json::from_str("\"kill_group\"").unwrap();
        assert_eq!(back, ActionKind::KillGroup);
        assert!(serde_json::from_str::<ActionKind>("\"nope\"").is_err());
        assert!(Severity::Emergency < Severity::Debug);
    }

    #[test]
    fn binary_encoding_is_the_name() {
        // The journal's bytes for a vocabulary value are those of its name as a string, as they were when
        // these fields were plain strings.
        let config = bincode::config::standard();
        let typed = bincode::serde::encode_to_vec(LossStage::Decode, config).unwrap();
        let text = bincode::serde::encode_to_vec("decode", config).unwrap();
        assert_eq!(typed, text);
    }
}
