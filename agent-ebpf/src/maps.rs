//! The maps shared by all programs.

use agent_common::wire::MAX_KINDS;
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};

/// Default ring buffer size; the agent overrides it at load time from its config.
const EVENTS_BYTES: u32 = 8 * 1024 * 1024;

/// Every record goes here.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// Per-CPU count of records that could not be reserved, indexed by `RecordKind`.
#[map]
pub static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_KINDS, 0);

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
