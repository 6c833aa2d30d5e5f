//! io_uring events: a ring being set up, and each request submitted to one.

use auditloop_model_derive::Fields;
use serde::{Deserialize, Serialize};
use strum::{EnumIter, EnumString, IntoStaticStr, VariantNames};

/// An io_uring request (an `io_uring` event): one submitted SQE, with its completion.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "uring", kind = IoUring)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "uring_setup", kind = IoUringSetup)]
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

/// An `IORING_OP_*` opcode, in opcode order (the names of the kernel's uapi list, without the prefix).
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
#[expect(
    missing_docs,
    reason = "each variant is the uapi opcode of the same name"
)]
pub enum UringOp {
    #[default]
    Nop,
    Readv,
    Writev,
    Fsync,
    ReadFixed,
    WriteFixed,
    PollAdd,
    PollRemove,
    SyncFileRange,
    Sendmsg,
    Recvmsg,
    Timeout,
    TimeoutRemove,
    Accept,
    AsyncCancel,
    LinkTimeout,
    Connect,
    Fallocate,
    Openat,
    Close,
    FilesUpdate,
    Statx,
    Read,
    Write,
    Fadvise,
    Madvise,
    Send,
    Recv,
    Openat2,
    EpollCtl,
    Splice,
    ProvideBuffers,
    RemoveBuffers,
    Tee,
    Shutdown,
    Renameat,
    Unlinkat,
    Mkdirat,
    Symlinkat,
    Linkat,
    MsgRing,
    Fsetxattr,
    Setxattr,
    Fgetxattr,
    Getxattr,
    Socket,
    UringCmd,
    SendZc,
    SendmsgZc,
    ReadMultishot,
    Waitid,
    FutexWait,
    FutexWake,
    FutexWaitv,
    FixedFdInstall,
    Ftruncate,
    Bind,
    Listen,
    RecvZc,
    EpollWait,
    ReadvFixed,
    WritevFixed,
    Pipe,
    Nop128,
    UringCmd128,
    /// An opcode this build does not know (its number is in `uring.opcode`).
    Unknown,
}

impl UringOp {
    /// The op with this `IORING_OP_*` number; [`UringOp::Unknown`] past the known list.
    pub fn from_opcode(opcode: u8) -> UringOp {
        UringOp::all()
            .nth(usize::from(opcode))
            .filter(|op| *op != UringOp::Unknown)
            .unwrap_or(UringOp::Unknown)
    }
}

/// What could not be resolved about an io_uring op (values of `uring.unresolved`).
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
pub enum UringUnresolved {
    /// The ring was set up before capture started (or its setup was not seen): where its SQEs live is
    /// unknown, so only opcode, process and result are known.
    #[default]
    RingUnknown,
    /// The ring is known but no `mmap` of its SQ ring and SQE array was seen.
    LayoutUnknown,
    /// The SQE was not where the submission queue said (rewritten after submission, or out of the
    /// search window): its descriptor (from the kernel's file lookup, where there is one), flags and
    /// strings are unknown.
    SqeNotFound,
    /// `fd` is a registered-file index (or a direct descriptor) whose file the agent did not see opened.
    FixedFile,
    /// The descriptor was not seen opened and `/proc/<pid>/fd` no longer names it.
    FdUnknown,
    /// A path or socket address the SQE points to could not be read from the process's memory.
    StringUnreadable,
    /// A path was cut at 255 bytes.
    StringTruncated,
    /// The path could not be made canonical (an unknown dirfd, or a component that could not be read).
    PathUnresolved,
    /// openat2's `struct open_how` could not be read: flags and mode are unknown.
    OpenHowUnreadable,
    /// No completion was seen within a second: `ret` is absent (and an openat's descriptor unknown).
    NoCompletion,
}

crate::named!(UringOp, UringUnresolved);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcode_names_follow_the_uapi_list() {
        assert_eq!(UringOp::from_opcode(0), UringOp::Nop);
        assert_eq!(UringOp::from_opcode(18).as_str(), "openat");
        assert_eq!(UringOp::from_opcode(19).as_str(), "close");
        assert_eq!(UringOp::from_opcode(22).as_str(), "read");
        assert_eq!(UringOp::from_opcode(23).as_str(), "write");
        assert_eq!(UringOp::from_opcode(28).as_str(), "openat2");
        assert_eq!(UringOp::from_opcode(35).as_str(), "renameat");
        assert_eq!(UringOp::from_opcode(47).as_str(), "send_zc");
        assert_eq!(UringOp::from_opcode(56).as_str(), "bind");
        assert_eq!(UringOp::from_opcode(62).as_str(), "pipe");
        assert_eq!(UringOp::from_opcode(64).as_str(), "uring_cmd128");
        assert_eq!(UringOp::from_opcode(65), UringOp::Unknown);
        assert_eq!(UringOp::from_opcode(255), UringOp::Unknown);
        assert_eq!(UringOp::parse("openat2"), Some(UringOp::Openat2));
        assert_eq!(
            serde_json::to_string(&UringUnresolved::SqeNotFound).unwrap(),
            "\"sqe_not_found\""
        );
    }
}
