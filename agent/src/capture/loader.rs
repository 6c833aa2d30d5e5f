//! Loads the embedded kernel object, sizes its ring buffer, excludes the agent's own process and attaches
//! every tracepoint program. Dropping the returned [`Loaded::ebpf`] detaches them all.

use std::collections::HashSet;
use std::path::Path;

use agent_common::wire::{
    GLOBAL_LSM_OFFSETS, LSM_OFFSETS_LEN, MAP_EVENTS, MAP_LOST, MAP_SYSCALL_SPECS,
};
use auditloop_model::EventKind;
use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf},
    programs::{TracePoint, trace_point::TracePointLinkId},
};

use super::CaptureError;
use super::syscalls::{
    ACCEPT_SYSCALLS, BUILTIN, SYSCALL_EVENTS_DIR, SyscallDef, argument_count, check_raw_name,
    traceable,
};
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
    ("inet_sock_set_state", "sock", "inet_sock_set_state"),
];

/// The io_uring programs (attached when the kernel has io_uring tracepoints): program, category, name.
pub const URING_TRACEPOINTS: &[(&str, &str, &str)] = &[
    (
        "sys_enter_io_uring_setup",
        "syscalls",
        "sys_enter_io_uring_setup",
    ),
    ("io_uring_create", "io_uring", "io_uring_create"),
    ("sys_enter_mmap", "syscalls", "sys_enter_mmap"),
    ("sys_exit_mmap", "syscalls", "sys_exit_mmap"),
    ("io_uring_submit_req", "io_uring", "io_uring_submit_req"),
    ("io_uring_file_get", "io_uring", "io_uring_file_get"),
    ("io_uring_complete", "io_uring", "io_uring_complete"),
];

/// Where tracefs lists the tracepoints.
const TRACING_EVENTS: &str = "/sys/kernel/tracing/events";

/// Where the io_uring tracepoints are, when the kernel has io_uring.
const URING_EVENTS_DIR: &str = "/sys/kernel/tracing/events/io_uring";

/// Loaded and attached programs, with the maps userspace reads.
pub struct Loaded {
    /// The object; keeps the programs attached while alive.
    pub ebpf: Ebpf,
    /// The ring buffer of records.
    pub ring: RingBuf<MapData>,
    /// Per-CPU counts of records the kernel could not reserve, by record kind.
    pub lost: PerCpuArray<MapData, u64>,
    /// Tracepoints attached.
    pub attached: usize,
    /// Every attachment: program name and link id (for a fast parallel detach at shutdown).
    pub links: Vec<(&'static str, TracePointLinkId)>,
}

/// Loads and attaches everything.
///
/// `lsm_offsets` (LSM tier) are the structure offsets the LSM programs read, set before the object loads
/// (the LSM programs themselves are attached by the caller).
pub fn load(
    config: &CaptureConfig,
    acting: Option<&HashSet<EventKind>>,
    lsm_offsets: Option<&[u32; LSM_OFFSETS_LEN]>,
) -> Result<Loaded, CaptureError> {
    raise_memlock_limit();
    let mut loader = EbpfLoader::new();
    loader.map_max_entries(MAP_EVENTS, config.ring_buffer_bytes);
    if let Some(offsets) = lsm_offsets {
        loader.override_global(GLOBAL_LSM_OFFSETS, &offsets[..], true);
    }
    let mut ebpf = loader
        .load(OBJECT)
        .map_err(|e| CaptureError::Load(Box::new(e)))?;

    super::filters::apply(config, acting, &mut ebpf)?;
    let mut links = Vec::new();
    for &(program, category, name) in TRACEPOINTS {
        links.push(attach_fitting(&mut ebpf, program, category, name)?);
    }
    attach_syscalls(&mut ebpf, config, &mut links)?;
    // The io_uring programs read the tracepoints of 6.4 and later (`io_uring_submit_req`; 6.1 has
    // `io_uring_submit_sqe` with another layout, not read): all of them, or none.
    let missing: Vec<&str> = URING_TRACEPOINTS
        .iter()
        .filter(|(_, category, name)| !Path::new(TRACING_EVENTS).join(category).join(name).is_dir())
        .map(|(_, _, name)| *name)
        .collect();
    if missing.is_empty() {
        for &(program, category, name) in URING_TRACEPOINTS {
            links.push(attach_fitting(&mut ebpf, program, category, name)?);
        }
    } else if !Path::new(URING_EVENTS_DIR).is_dir() {
        tracing::warn!(
            "this kernel has no io_uring tracepoints: io_uring requests are not recorded"
        );
    } else {
        tracing::warn!(
            missing = %missing.join(","),
            "this kernel lacks io_uring tracepoints the agent reads (they appeared in 6.4): io_uring \
             requests are not recorded"
        );
    }
    let attached = links.len();

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
    Ok(Loaded {
        ebpf,
        ring,
        lost,
        attached,
        links,
    })
}

/// Attaches `program` to `category:name`, or, when the record's layout differs between kernels
/// ([`super::layout::HOOKS`]), the program that reads this kernel's layout (chosen by the tracepoint's
/// format file; none fitting is an error: a program would read the wrong bytes). Returns the program
/// attached and its link.
fn attach_fitting(
    ebpf: &mut Ebpf,
    program: &'static str,
    category: &str,
    name: &str,
) -> Result<(&'static str, TracePointLinkId), CaptureError> {
    let Some(hook) = super::layout::HOOKS.iter().find(|h| h.default == program) else {
        return Ok((program, attach(ebpf, program, category, name)?));
    };
    let variant = super::layout::choose(hook, Path::new(TRACING_EVENTS))
        .ok_or(CaptureError::Layout(program))?;
    if variant.program != program {
        tracing::info!(
            tracepoint = %format!("{}:{}", variant.category, variant.tracepoint),
            program = variant.program,
            "this kernel's record layout needs another program"
        );
    }
    let id = attach(ebpf, variant.program, variant.category, variant.tracepoint)?;
    Ok((variant.program, id))
}

/// Loads `program` if not yet loaded and attaches it to `category:name`.
fn attach(
    ebpf: &mut Ebpf,
    program: &'static str,
    category: &str,
    name: &str,
) -> Result<TracePointLinkId, CaptureError> {
    let failed = |e: aya::programs::ProgramError| CaptureError::Attach {
        tracepoint: format!("{category}:{name}"),
        source: Box::new(e),
    };
    let tp: &mut TracePoint = ebpf
        .program_mut(program)
        .ok_or(CaptureError::MissingProgram(program))?
        .try_into()
        .map_err(failed)?;
    if tp.fd().is_err() {
        tp.load().map_err(failed)?;
    }
    tp.attach(category, name).map_err(failed)
}

/// Detaches every link, many at once: each detach waits for a tracing grace period, so one at a time
/// takes seconds for a hundred tracepoints.
pub fn detach_all(ebpf: &mut Ebpf, links: Vec<(&'static str, TracePointLinkId)>) {
    let mut taken = Vec::with_capacity(links.len());
    for (program, id) in links {
        let tp: Option<&mut TracePoint> = ebpf.program_mut(program).and_then(|p| p.try_into().ok());
        if let Some(link) = tp.and_then(|tp| tp.take_link(id).ok()) {
            taken.push(link);
        }
    }
    const WORKERS: usize = 32;
    let per = taken.len().div_ceil(WORKERS).max(1);
    std::thread::scope(|s| {
        while !taken.is_empty() {
            let chunk: Vec<_> = taken.drain(..per.min(taken.len())).collect();
            s.spawn(move || drop(chunk));
        }
    });
}

const ENTER_PROGRAMS: [&str; 7] = [
    "sys_enter_args0",
    "sys_enter_args1",
    "sys_enter_args2",
    "sys_enter_args3",
    "sys_enter_args4",
    "sys_enter_args5",
    "sys_enter_args6",
];

/// Fills `SYSCALL_SPECS` and attaches the generic programs to every built-in syscall this kernel has and to
/// each raw syscall of the config, adding the links to `links`.
fn attach_syscalls(
    ebpf: &mut Ebpf,
    config: &CaptureConfig,
    links: &mut Vec<(&'static str, TracePointLinkId)>,
) -> Result<(), CaptureError> {
    let dir = Path::new(SYSCALL_EVENTS_DIR);
    let available = traceable(dir);
    let mut defs: Vec<SyscallDef> = BUILTIN
        .iter()
        .filter(|d| available.contains(d.name))
        .copied()
        .collect();
    for name in &config.syscalls {
        check_raw_name(name, &available)?;
        if defs.iter().any(|d| d.name == name) {
            continue;
        }
        defs.push(SyscallDef::raw(Box::leak(name.clone().into_boxed_str())));
    }
    let mut specs: BpfHashMap<&mut MapData, u32, [u8; 16]> = BpfHashMap::try_from(
        ebpf.map_mut(MAP_SYSCALL_SPECS)
            .ok_or(CaptureError::MissingMap(MAP_SYSCALL_SPECS))?,
    )
    .map_err(|e| CaptureError::Map(MAP_SYSCALL_SPECS, e))?;
    let mut planned = Vec::new();
    for def in &defs {
        let (Some(nr), Some(nargs)) = (def.number(), argument_count(dir, def.name)) else {
            tracing::debug!(
                syscall = def.name,
                "no syscall number or format; not captured"
            );
            continue;
        };
        let spec: [u8; 16] = bytemuck::cast(def.spec());
        specs
            .insert(nr, spec, 0)
            .map_err(|e| CaptureError::Map(MAP_SYSCALL_SPECS, e))?;
        planned.push((def.name, nargs.min(6)));
    }
    for (name, nargs) in planned {
        let enter = ENTER_PROGRAMS[nargs];
        let id = attach(ebpf, enter, "syscalls", &format!("sys_enter_{name}"))?;
        links.push((enter, id));
        let id = attach(
            ebpf,
            "sys_exit_generic",
            "syscalls",
            &format!("sys_exit_{name}"),
        )?;
        links.push(("sys_exit_generic", id));
    }
    for name in ACCEPT_SYSCALLS.iter().filter(|n| available.contains(**n)) {
        let id = attach(
            ebpf,
            "sys_enter_accept",
            "syscalls",
            &format!("sys_enter_{name}"),
        )?;
        links.push(("sys_enter_accept", id));
        let id = attach(
            ebpf,
            "sys_exit_accept",
            "syscalls",
            &format!("sys_exit_{name}"),
        )?;
        links.push(("sys_exit_accept", id));
    }
    let id = attach(ebpf, "sys_enter_close", "syscalls", "sys_enter_close")?;
    links.push(("sys_enter_close", id));
    Ok(())
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
