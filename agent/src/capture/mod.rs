//! Capture stage: kernel programs → ring buffer → decoded records → model events.
//!
//! [`Capture::start`] loads and attaches the programs; [`Capture::run`] reads the ring buffer until shutdown
//! and sends every event, in sequence order, into a bounded channel. When the channel is full, capture waits
//! (backpressure): the ring buffer then fills and the kernel counts what it cannot reserve, and those counts
//! become `loss` events. Capture never drops an event in userspace.

mod assemble;
pub mod btf;
mod budget;
mod canon;
mod configwatch;
mod containers;
mod convert;
mod fdtable;
pub mod features;
pub mod filters;
pub mod integrity;
mod layout;
mod loader;
mod login;
mod loss;
mod lsm;
mod net;
#[cfg(test)]
mod net_tests;
mod netproc;
mod policy;
mod proctable;
mod sensitive;
pub(crate) use proctable::pids;
mod reader;
mod resolve;
mod sockaddr;
mod sockets;
pub mod syscalls;
mod tables;
mod tcpstate;
mod uring;

use std::collections::HashSet;
use std::path::Path;

use auditloop_model::{Event, EventKind};
use tokio::sync::{mpsc, watch};

pub use assemble::{Assembler, FileTouch};
pub use loss::LossBooks;
pub use proctable::ProcessTable;
pub use reader::Detacher;

use crate::clock::Clock;
use crate::config::{CaptureConfig, Config};
use crate::enforce::{Decisions, KernelDenyRule, KernelExecRule, LoadedRules};

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
    /// No program of the object reads this kernel's layout of a tracepoint record (`layout::HOOKS`).
    #[error(
        "no program for this kernel's record layout of the tracepoint `{0}` attaches to (see its format file)"
    )]
    Layout(&'static str),
    /// Reading the ring buffer or `/proc` failed.
    #[error("capture I/O")]
    Io(#[from] std::io::Error),
    /// The config-watch content store could not be opened.
    #[error("config watch")]
    Watch(#[from] crate::watch::WatchError),
    /// An LSM program could not be loaded or attached (the verifier's log included).
    #[error("BPF LSM program {program}: {message}")]
    Lsm {
        /// Program (= hook) name.
        program: &'static str,
        /// What failed.
        message: String,
    },
    /// The kernel's BTF could not be read for the LSM programs' offsets.
    #[error("kernel BTF")]
    Btf(#[from] btf::BtfError),
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
    /// Kernel deny rules (LSM tier) and their names by index.
    pub deny: (Vec<KernelDenyRule>, Vec<String>),
    /// Event kinds a rule may act on (`None`: any): their records wake the reader at once.
    pub acting: Option<HashSet<EventKind>>,
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
    sensitive: Option<sensitive::SensitiveWatch>,
    poll_interval: std::time::Duration,
    ring_buffer_bytes: u32,
    own: integrity::OwnObjects,
    telemetry: crate::telemetry::Telemetry,
    tier: features::Tier,
    features: features::Features,
}

impl Capture {
    /// Loads and attaches the programs, scans `/proc` for processes that already run, and snapshots the
    /// watched config files. Events are stamped with `clock`.
    pub fn start(
        full: &Config,
        rules: &LoadedRules,
        features: &features::Features,
        clock: Clock,
        decisions: Decisions,
    ) -> Result<Capture, CaptureError> {
        let config = &full.capture;
        let (watch, startup_changes) = configwatch::ConfigWatch::open_with_redaction(
            full.watch.paths.clone(),
            &full.watch.redact,
            &full.state_dir,
        )?;
        let lsm = rules.tier == features::Tier::Lsm;
        let offsets = if lsm {
            Some(lsm::offsets(&btf::Btf::from_sys_fs()?)?)
        } else {
            None
        };
        let mut loaded = loader::load(config, rules.acting.as_ref(), offsets.as_ref())?;
        filters::set_exec_kill(&mut loaded.ebpf, &rules.kernel)?;
        if lsm {
            lsm::set_deny(&mut loaded.ebpf, &rules.deny)?;
            loaded.attached += lsm::attach(&mut loaded.ebpf)?;
        }
        let assembler_names = rules.deny_names.clone();
        let mut procs = ProcessTable::new(PROCESS_TABLE_CAPACITY, Path::new("/proc"));
        procs.set_ancestry(config.ancestry.depth, config.ancestry.exec_depth);
        procs.scan()?;
        Ok(Capture {
            loaded,
            watch,
            startup_changes,
            assembler: {
                let mut a = Assembler::new(clock, procs);
                a.set_policy(policy::PathPolicy::new(config));
                a.set_ancestry(config.ancestry.depth, config.ancestry.exec_depth);
                a.set_decisions(decisions);
                a.set_deny_names(assembler_names);
                a
            },
            tier: rules.tier,
            features: features.clone(),
            sensitive: open_sensitive(config),
            poll_interval: std::time::Duration::from_millis(config.poll_interval_ms),
            ring_buffer_bytes: config.ring_buffer_bytes,
            own: integrity::OwnObjects::default(),
            telemetry: crate::telemetry::Telemetry::default(),
        })
    }

    /// Also watches the files drill overlays stage in `staged`.
    pub fn set_staged_paths(&mut self, staged: crate::watch::StagedPaths) {
        self.watch.set_staged(staged);
    }

    /// Counts the ring buffer's backlog in `telemetry`.
    pub fn set_telemetry(&mut self, telemetry: crate::telemetry::Telemetry) {
        self.telemetry = telemetry;
    }

    /// The ids of the agent's programs, links and maps (filled in when capture runs).
    pub fn own_objects(&self) -> integrity::OwnObjects {
        self.own.clone()
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

/// The fanotify watch of sensitive files, when there are any and fanotify is available (without it,
/// sensitive reads are recorded only under the names the kernel's path filter sees).
fn open_sensitive(config: &CaptureConfig) -> Option<sensitive::SensitiveWatch> {
    if config.sensitive_paths.is_empty() {
        return None;
    }
    match sensitive::SensitiveWatch::open(&config.sensitive_paths) {
        Ok(mut watch) => {
            watch.set_ignore(&config.ignore.pids, &config.ignore.comms);
            Some(watch)
        }
        Err(err) => {
            tracing::warn!(
                "fanotify unavailable ({err}): sensitive reads through links, bind mounts and io_uring \
                 are not seen"
            );
            None
        }
    }
}
