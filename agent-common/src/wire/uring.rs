//! io_uring capture: rings being set up and every submitted request, from the `io_uring:*` tracepoints.
//!
//! A ring is learnt at `io_uring_create` (with the user-memory layout read from the `io_uring_params` the
//! process passed to `io_uring_setup`, and the addresses of its `mmap`s of the ring fd). At
//! `io_uring_submit_req` the kernel program looks for the request's SQE in user memory (a bounded window
//! from the user-visible SQ head) and copies what it names: descriptor, flags, and the paths or socket
//! address it points to. `io_uring_file_get` supplies the descriptor of requests whose SQE was not found;
//! `io_uring_complete` the result. Kernel pointers (ring context, request) are join keys inside the kernel
//! only: records carry kernel-made numbers ([`UringOp::req`], [`UringOp::ring`]) instead, so no kernel
//! address ever reaches userspace.

use super::{RecordHeader, STR_LEN};

/// `UringSetup::layout`: the `io_uring_params` were read after setup (SQ head and array offsets known).
pub const URING_LAYOUT_PARAMS: u32 = 1;
/// `UringSetup::layout`: the ring uses memory the process supplied (`IORING_SETUP_NO_MMAP`); its
/// addresses came with the params.
pub const URING_LAYOUT_USER_MEMORY: u32 = 1 << 1;

/// A ring was set up (`io_uring_setup` returned a ring fd).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct UringSetup {
    /// Header; `kind` is `RecordKind::UringSetup`.
    pub header: RecordHeader,
    /// The ring's number, made by the kernel program (never an address); [`UringOp::ring`] refers to it.
    pub ring: u64,
    /// The ring fd in the creating process.
    pub fd: i32,
    /// Submission queue entries.
    pub sq_entries: u32,
    /// Completion queue entries.
    pub cq_entries: u32,
    /// `IORING_SETUP_*` flags.
    pub flags: u32,
    /// `URING_LAYOUT_*` flags: what the kernel program learnt of the ring's user memory.
    pub layout: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// `UringOp::flags`: the request's SQE was found in user memory; `fd`, `op_flags`, `len`, `off`,
/// `file_index` and the strings come from it.
pub const URING_SQE_FOUND: u32 = 1;
/// `UringOp::flags`: submitted by the ring's SQPOLL kernel thread (a thread of the ring's process).
pub const URING_SQ_THREAD: u32 = 1 << 1;
/// `UringOp::flags`: the ring's setup was not seen (it was set up before capture started), so its
/// memory layout is unknown and its SQEs cannot be read.
pub const URING_RING_UNKNOWN: u32 = 1 << 2;
/// `UringOp::flags`: the ring is known but where its SQ ring or SQE array is mapped is not (no `mmap` of
/// the ring fd was seen).
pub const URING_LAYOUT_UNKNOWN: u32 = 1 << 3;
/// `UringOp::flags`: a path or socket address the SQE points to could not be read from user memory.
pub const URING_STR_UNREADABLE: u32 = 1 << 4;
/// `UringOp::flags`: `strs[0]` was cut at [`STR_LEN`].
pub const URING_STR1_TRUNCATED: u32 = 1 << 5;
/// `UringOp::flags`: `strs[1]` was cut at [`STR_LEN`].
pub const URING_STR2_TRUNCATED: u32 = 1 << 6;
/// `UringOp::flags`: `strs[0]` holds a socket address (raw bytes), not a path.
pub const URING_STR1_SOCKADDR: u32 = 1 << 7;
/// `UringOp::flags`: an openat2 whose `struct open_how` could not be read (`op_flags`, `len` are 0).
pub const URING_HOW_UNREADABLE: u32 = 1 << 8;

/// `IOSQE_FIXED_FILE`: the SQE's `fd` is an index into the ring's registered files.
pub const IOSQE_FIXED_FILE: u8 = 1;
/// `IORING_FILE_INDEX_ALLOC`: an open into a direct descriptor slot the kernel picks (returned as result).
pub const IORING_FILE_INDEX_ALLOC: u32 = !0;
/// `IORING_CQE_F_MORE`: the request will post more completions (multishot).
pub const IORING_CQE_F_MORE: u32 = 1 << 1;

/// A request was submitted. Sent as is for opcodes that name no path or address, and as the head of a
/// [`UringOpStrs`] for those that do.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct UringOp {
    /// Header; `kind` is `RecordKind::UringOp` or `RecordKind::UringOpStrs`. For SQPOLL submissions the
    /// task is the ring's `iou-sqp-<pid>` thread (same process id).
    pub header: RecordHeader,
    /// The request's number, made by the kernel program; completions and fds refer to it.
    pub req: u64,
    /// The ring's number ([`UringSetup::ring`]); 0 when the ring's setup was not seen.
    pub ring: u64,
    /// The SQE's `off`/`addr2` (renameat/linkat/symlinkat: not used; connect/bind: address length;
    /// ftruncate: the length).
    pub off: u64,
    /// The SQE's `fd` (a dirfd for the *at ops, a registered-file index with [`IOSQE_FIXED_FILE`]).
    pub fd: i32,
    /// The SQE's `len` (openat/mkdirat: mode; renameat/linkat: the new dirfd).
    pub len: u32,
    /// The SQE's op flags word (`open_flags`, `rename_flags`, `unlink_flags`, …; openat2: `open_how.flags`).
    pub op_flags: u32,
    /// The SQE's `file_index` (openat/close into or of a direct descriptor: slot + 1, or
    /// [`IORING_FILE_INDEX_ALLOC`]).
    pub file_index: u32,
    /// `URING_*` flags.
    pub flags: u32,
    /// The ring fd in the creating process; -1 when the ring's setup was not seen.
    pub ring_fd: i32,
    /// `IORING_OP_*` opcode.
    pub opcode: u8,
    /// The SQE's `IOSQE_*` flags.
    pub sqe_flags: u8,
    /// Reserved, zero.
    pub reserved: [u8; 6],
}

/// A submitted request with the strings its SQE points to.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct UringOpStrs {
    /// The request.
    pub op: UringOp,
    /// Bytes used in each of `strs` (NUL included for paths).
    pub str_lens: [u32; 2],
    /// Paths (openat, statx, unlinkat, mkdirat: `strs[0]`; renameat, linkat: old and new; symlinkat:
    /// target and link) or a socket address (connect, bind: `strs[0]`).
    pub strs: [[u8; STR_LEN]; 2],
}

/// The descriptor the kernel looked up for a recorded request whose SQE was not found.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct UringFile {
    /// Header; `kind` is `RecordKind::UringFile`.
    pub header: RecordHeader,
    /// [`UringOp::req`].
    pub req: u64,
    /// The descriptor.
    pub fd: i32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// A recorded request completed (one record per completion; multishot requests post several).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct UringComplete {
    /// Header; `kind` is `RecordKind::UringComplete`, with `ktime_ns`; the task fields are zero (the
    /// task that completes a request — the submitter, an `iou-wrk` worker, another context — says
    /// nothing of it: `req` identifies it).
    pub header: RecordHeader,
    /// [`UringOp::req`].
    pub req: u64,
    /// Result: `-errno` on failure.
    pub res: i32,
    /// `IORING_CQE_F_*` flags.
    pub cflags: u32,
}

const _: () = assert!(core::mem::size_of::<UringSetup>() == 56 + 32);
const _: () = assert!(core::mem::size_of::<UringOp>() == 56 + 56);
const _: () = assert!(core::mem::size_of::<UringOpStrs>() == 56 + 56 + 8 + 2 * STR_LEN);
const _: () = assert!(core::mem::size_of::<UringFile>() == 72);
const _: () = assert!(core::mem::size_of::<UringComplete>() == 72);
