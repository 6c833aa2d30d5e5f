//! Capture stage: kernel programs → ring buffer → decoded records → model events.
//!
//! [`Capture::start`] loads and attaches the programs; [`Capture::run`] reads the ring buffer until shutdown
//! and sends every event, in sequence order, into a bounded channel. When the channel is full, capture waits
//! (backpressure): the ring buffer then fills and the kernel counts what it cannot reserve, and those counts
//! become `loss` events. Capture never drops an event in userspace.

mod assemble;
mod bounded;
mod canon;
mod configwatch;
mod containers;
mod convert;
mod fdtable;
pub mod filters;
mod identity;
mod loader;
mod loss;
mod proctable;
pub(crate) use proctable::pids;
mod reader;
mod resolve;
mod sockaddr;
pub mod syscalls;

use std::path::Path;

use auditloop_model::Event;
use tokio::sync::{mpsc, watch};

pub use assemble::{Assembler, FileTouch};
pub use loss::LossBooks;
pub use proctable::{ProcessTable, stat_field};
pub use reader::Detacher;

use crate::clock::Clock;
use crate::config::{CaptureConfig, Config};
use crate::enforce::KernelExecRule;

/// Most processes the process table keeps.
const PROCESS_TABLE_CAPACITY: usize = 1 << 17;

/// Why capture could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The kernel refused the object (verifier, missing BPF support, lockdown, privileges).
    #[error("loading the kernel programs failed")]
    Load(#[source] Box<aya::EbpfError>),
    /// The object lacks a program this build expects.
    #[error("kernel object has no program `{0}`")]
    MissingProgram(&'static str),
    /// The object lacks a map this build expects.
    #[error("kernel object has no map `{0}`")]
    MissingMap(&'static str),
    /// A map could not be opened or updated.
    #[error("map `{0}`")]
    Map(&'static str, #[source] aya::maps::MapError),
    /// A tracepoint program could not be loaded or attached.
    #[error(
        "attaching tracepoint {tracepoint} failed (is tracefs mounted at /sys/kernel/tracing?)"
    )]
    Attach {
        /// `category:name`.
        tracepoint: String,
        /// The loader's error.
        source: Box<aya::programs::ProgramError>,
    },
    /// Reading the ring buffer or `/proc` failed.
    #[error("capture I/O")]
    Io(#[from] std::io::Error),
    /// The config-watch content store could not be opened.
    #[error("config watch")]
    Watch(#[from] crate::watch::WatchError),
    /// `capture.syscalls` names a syscall this kernel cannot trace.
    #[error(transparent)]
    UnknownSyscall(#[from] syscalls::UnknownSyscall),
}

/// What can change while capture runs (on reload).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Filters and enable flags.
    pub capture: CaptureConfig,
    /// Kernel exec rules.
    pub exec_kill: Vec<KernelExecRule>,
}

/// Counters of one capture run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Records read from the ring buffer.
    pub records: u64,
    /// Events sent on.
    pub events: u64,
    /// Records the kernel could not reserve.
    pub kernel_lost: u64,
    /// Records that could not be decoded.
    pub decode_errors: u64,
}

/// Attached kernel programs plus the userspace state that turns their records into events.
pub struct Capture {
    loaded: loader::Loaded,
    watch: configwatch::ConfigWatch,
    startup_changes: Vec<crate::watch::FileChange>,
    assembler: Assembler,
    poll_interval: std::time::Duration,
    ring_buffer_bytes: u32,
}

impl Capture {
    /// Loads and attaches the programs, scans `/proc` for processes that already run, and snapshots the
    /// watched config files. Events are stamped with `clock`.
    pub fn start(
        full: &Config,
        exec_kill: &[KernelExecRule],
        clock: Clock,
    ) -> Result<Capture, CaptureError> {
        let config = &full.capture;
        let (watch, startup_changes) =
            configwatch::ConfigWatch::open(full.watch.paths.clone(), &full.state_dir)?;
        let mut loaded = loader::load(config)?;
        filters::set_exec_kill(&mut loaded.ebpf, exec_kill)?;
        let mut procs = ProcessTable::new(PROCESS_TABLE_CAPACITY, Path::new("/proc"));
        procs.scan()?;
        Ok(Capture {
            loaded,
            watch,
            startup_changes,
            assembler: Assembler::new(clock, procs),
            poll_interval: std::time::Duration::from_millis(config.poll_interval_ms),
            ring_buffer_bytes: config.ring_buffer_bytes,
        })
    }

    /// Reads events until `shutdown` changes (or its sender is dropped), then detaches the programs, drains
    /// the ring buffer and returns. Events go to `events` in sequence order. A new config on `reload` is
    /// applied to the in-kernel filters at once.
    pub async fn run(
        self,
        events: mpsc::Sender<Event>,
        shutdown: watch::Receiver<bool>,
        reload: watch::Receiver<Settings>,
    ) -> Result<(CaptureStats, Detacher), CaptureError> {
        reader::run(self, events, shutdown, reload).await
    }
}
