//! The maps shared by all programs.

use agent_common::wire::{
    CommKey, DenyRule, ExecKillRule, InodeKey, LOST_SLOTS, OP_SLOTS, PathKey, SyscallSpec,
};
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf, lpm_trie::Key},
};

/// Default ring buffer size; the agent overrides it at load time from its config.
const EVENTS_BYTES: u32 = 8 * 1024 * 1024;

/// Every record goes here.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// Per-CPU count of records that could not be reserved, indexed by `RecordKind`.
#[map]
pub static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(LOST_SLOTS, 0);

/// Process ids (tgids) whose activity is not recorded; the agent adds itself.
#[map]
pub static IGNORE_TGIDS: HashMap<u32, u8> = HashMap::with_max_entries(1024, 0);

/// Slot 0: `bpf_ktime_get_ns` of the last forced reader wakeup.
#[map]
pub static LAST_WAKEUP: Array<u64> = Array::with_max_entries(1, 0);

/// clone flags of an in-flight clone/clone3, by thread id, until `sched_process_fork` reads them.
#[map]
pub static CLONE_FLAGS: LruHashMap<u32, u64> = LruHashMap::with_max_entries(16384, 0);

/// Exit status (low 32 bits: wait status; high 32 bits: `EXIT_*` flags) by tgid, until the process ends.
#[map]
pub static EXIT_STATUS: LruHashMap<u32, u64> = LruHashMap::with_max_entries(65536, 0);

/// Task names whose activity is not recorded.
#[map]
pub static IGNORE_COMMS: HashMap<CommKey, u8> = HashMap::with_max_entries(256, 0);

/// Path prefixes whose file events are not recorded.
#[map]
pub static IGNORE_PATHS: LpmTrie<[u8; agent_common::wire::PATH_KEY_LEN], u8> =
    LpmTrie::with_max_entries(1024, BPF_F_NO_PREALLOC);

/// Paths whose read-only opens are recorded.
#[map]
pub static SENSITIVE_PATHS: LpmTrie<[u8; agent_common::wire::PATH_KEY_LEN], u8> =
    LpmTrie::with_max_entries(1024, BPF_F_NO_PREALLOC);

/// What each captured syscall number means; filled by the agent.
#[map]
pub static SYSCALL_SPECS: HashMap<u32, SyscallSpec> = HashMap::with_max_entries(512, 0);

/// Enable flag per `SyscallOp` / `OP_SLOT_*` (absent or non-zero = on).
#[map]
pub static OP_ENABLED: Array<u8> = Array::with_max_entries(OP_SLOTS, 0);

/// Recorded syscall entry awaiting its return, by thread id: `nr << 32 | flags << 8 | op`.
#[map]
pub static PENDING: LruHashMap<u32, u64> = LruHashMap::with_max_entries(65536, 0);

/// File descriptors opened for writing, by `tgid << 32 | fd`, so `close` can report them.
#[map]
pub static WRITE_FDS: LruHashMap<u64, u8> = LruHashMap::with_max_entries(65536, 0);

/// accept/accept4 arguments by thread id (listening fd, sockaddr pointer, addrlen pointer) until return.
#[map]
pub static ACCEPT_ARGS: LruHashMap<u32, [u64; 3]> = LruHashMap::with_max_entries(16384, 0);

/// Per-CPU scratch space for building path filter keys.
#[map]
pub static PATH_SCRATCH: PerCpuArray<PathKey> = PerCpuArray::with_max_entries(1, 0);

/// `BPF_F_NO_PREALLOC`, required for LPM tries.
const BPF_F_NO_PREALLOC: u32 = 1;

/// Executable paths (exact, or prefixes) whose exec is killed before the new program runs.
#[map]
pub static EXEC_KILL: LpmTrie<[u8; agent_common::wire::PATH_KEY_LEN], ExecKillRule> =
    LpmTrie::with_max_entries(4096, BPF_F_NO_PREALLOC);

/// Executable paths (exact, or prefixes) whose exec the LSM program refuses.
#[map]
pub static EXEC_DENY: LpmTrie<[u8; agent_common::wire::PATH_KEY_LEN], DenyRule> =
    LpmTrie::with_max_entries(4096, BPF_F_NO_PREALLOC);

/// Executable files (by identity) whose exec the LSM program refuses.
#[map]
pub static EXEC_DENY_INODES: HashMap<InodeKey, DenyRule> = HashMap::with_max_entries(4096, 0);

/// Protected paths (exact, or prefixes) that the LSM program refuses to open for writing.
#[map]
pub static FILE_DENY: LpmTrie<[u8; agent_common::wire::PATH_KEY_LEN], DenyRule> =
    LpmTrie::with_max_entries(4096, BPF_F_NO_PREALLOC);

/// Protected files and directories by identity.
#[map]
pub static FILE_DENY_INODES: HashMap<InodeKey, DenyRule> = HashMap::with_max_entries(65536, 0);

/// Per-CPU scratch key for the LSM programs' path lookups (apart from [`PATH_SCRATCH`]: an LSM program may
/// be preempted by a tracepoint program on its CPU).
#[map]
pub static LSM_SCRATCH: PerCpuArray<Key<[u8; agent_common::wire::PATH_KEY_LEN]>> =
    PerCpuArray::with_max_entries(1, 0);

/// What the io_uring programs know of one ring, by kernel ring context (a join key, never sent).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RingState {
    /// The ring's number ([`agent_common::wire::UringSetup::ring`]).
    pub id: u64,
    /// User address of the SQ ring (head, tail, array), 0 while unknown.
    pub sq_ring: u64,
    /// User address of the SQE array, 0 while unknown.
    pub sqes: u64,
    /// Offset of the SQ head in the SQ ring.
    pub head_off: u32,
    /// Offset of the SQ index array in the SQ ring (unused with `IORING_SETUP_NO_SQARRAY`).
    pub array_off: u32,
    /// SQ entries (a power of two).
    pub entries: u32,
    /// `IORING_SETUP_*` flags.
    pub setup_flags: u32,
    /// The ring fd in the creating process.
    pub fd: i32,
    /// The user-visible SQ head of the batch being submitted.
    pub batch_head: u32,
    /// SQEs of that batch already matched (the search for the next one starts after them).
    pub batch_used: u32,
    /// Non-zero when the process that set the ring up is not recorded (`ignored()` at setup): its
    /// SQPOLL thread's submissions are skipped too, whatever that thread is called.
    pub ignored: u32,
}

/// Rings by kernel context pointer.
#[map]
pub static URING_RINGS: LruHashMap<u64, RingState> = LruHashMap::with_max_entries(4096, 0);

/// Ring context by `tgid << 32 | ring fd`, so an `mmap` of the ring fd can be matched to its ring.
#[map]
pub static URING_FDS: LruHashMap<u64, u64> = LruHashMap::with_max_entries(4096, 0);

/// `io_uring_setup`'s params pointer by thread id, from syscall entry until `io_uring_create`.
#[map]
pub static URING_SETUP_ARGS: LruHashMap<u32, u64> = LruHashMap::with_max_entries(1024, 0);

/// An in-flight `mmap` of a ring fd by thread id: ring context and mmap offset.
#[map]
pub static URING_MMAP_ARGS: LruHashMap<u32, [u64; 2]> = LruHashMap::with_max_entries(1024, 0);

/// A recorded request, by kernel request pointer (a join key, never sent).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ReqState {
    /// The request's number ([`agent_common::wire::UringOp::req`]).
    pub id: u64,
    /// Non-zero while the request's descriptor is still wanted from `io_uring_file_get`.
    pub want_fd: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// Recorded requests until their (last) completion. Per-CPU LRU lists (`BPF_F_NO_COMMON_LRU`): an insert
/// per submission and a delete per completion take no global lock.
#[map]
pub static URING_REQS: LruHashMap<u64, ReqState> =
    LruHashMap::with_max_entries(65536, BPF_F_NO_COMMON_LRU);

/// `BPF_F_NO_COMMON_LRU`: an LRU map with a free list per CPU.
const BPF_F_NO_COMMON_LRU: u32 = 1 << 1;

/// Per-CPU counter for ring and request numbers (combined with the CPU number).
#[map]
pub static URING_IDS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
