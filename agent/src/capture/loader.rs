//! Loads the embedded kernel object, sizes its ring buffer, excludes the agent's own process and attaches
//! every tracepoint program. Dropping the returned [`Loaded::ebpf`] detaches them all.

use agent_common::wire::{MAP_EVENTS, MAP_IGNORE_TGIDS, MAP_LOST};
use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf},
    programs::TracePoint,
};

use super::CaptureError;
use crate::config::CaptureConfig;

/// The kernel programs, built by `build.rs`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/agent-ebpf"));

/// Program name in the object, tracepoint category, tracepoint name.
pub const TRACEPOINTS: &[(&str, &str, &str)] = &[
    ("sys_enter_execve", "syscalls", "sys_enter_execve"),
    ("sys_enter_execveat", "syscalls", "sys_enter_execveat"),
    ("sys_exit_execve", "syscalls", "sys_exit_execve"),
    ("sys_exit_execveat", "syscalls", "sys_exit_execveat"),
    ("sys_enter_clone", "syscalls", "sys_enter_clone"),
    ("sys_enter_clone3", "syscalls", "sys_enter_clone3"),
    ("sched_process_fork", "sched", "sched_process_fork"),
    ("sys_enter_exit_group", "syscalls", "sys_enter_exit_group"),
    ("sys_enter_exit", "syscalls", "sys_enter_exit"),
    ("signal_deliver", "signal", "signal_deliver"),
    ("sched_process_exit", "sched", "sched_process_exit"),
];

/// Loaded and attached programs, with the maps userspace reads.
pub struct Loaded {
    /// The object; keeps the programs attached while alive.
    pub ebpf: Ebpf,
    /// The ring buffer of records.
    pub ring: RingBuf<MapData>,
    /// Per-CPU counts of records the kernel could not reserve, by record kind.
    pub lost: PerCpuArray<MapData, u64>,
}

/// Loads and attaches everything.
pub fn load(config: &CaptureConfig) -> Result<Loaded, CaptureError> {
    raise_memlock_limit();
    let mut ebpf = EbpfLoader::new()
        .map_max_entries(MAP_EVENTS, config.ring_buffer_bytes)
        .load(OBJECT)
        .map_err(|e| CaptureError::Load(Box::new(e)))?;

    let mut ignore: BpfHashMap<_, u32, u8> = BpfHashMap::try_from(
        ebpf.map_mut(MAP_IGNORE_TGIDS)
            .ok_or(CaptureError::MissingMap(MAP_IGNORE_TGIDS))?,
    )
    .map_err(|e| CaptureError::Map(MAP_IGNORE_TGIDS, e))?;
    ignore
        .insert(std::process::id(), 1, 0)
        .map_err(|e| CaptureError::Map(MAP_IGNORE_TGIDS, e))?;

    for &(program, category, name) in TRACEPOINTS {
        let tp: &mut TracePoint = ebpf
            .program_mut(program)
            .ok_or(CaptureError::MissingProgram(program))?
            .try_into()
            .map_err(|e| CaptureError::Attach {
                tracepoint: format!("{category}:{name}"),
                source: Box::new(e),
            })?;
        tp.load().map_err(|e| CaptureError::Attach {
            tracepoint: format!("{category}:{name}"),
            source: Box::new(e),
        })?;
        tp.attach(category, name)
            .map_err(|e| CaptureError::Attach {
                tracepoint: format!("{category}:{name}"),
                source: Box::new(e),
            })?;
    }

    let ring = RingBuf::try_from(
        ebpf.take_map(MAP_EVENTS)
            .ok_or(CaptureError::MissingMap(MAP_EVENTS))?,
    )
    .map_err(|e| CaptureError::Map(MAP_EVENTS, e))?;
    let lost = PerCpuArray::try_from(
        ebpf.take_map(MAP_LOST)
            .ok_or(CaptureError::MissingMap(MAP_LOST))?,
    )
    .map_err(|e| CaptureError::Map(MAP_LOST, e))?;
    Ok(Loaded { ebpf, ring, lost })
}

/// Older kernels charge BPF memory to RLIMIT_MEMLOCK; newer ones use memory cgroups and ignore it.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads a valid, initialised struct.
    let ret = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
    if ret != 0 {
        tracing::debug!("could not raise RLIMIT_MEMLOCK; continuing");
    }
}
