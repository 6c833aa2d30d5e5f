//! `cargo xtask vm`: the VM test tier. Boots Debian's cloud kernels in qemu (TCG; no KVM here) with an
//! initramfs holding a static agent and the suite of `tests/vm/`, with and without the BPF LSM, and reads
//! each case's result from the serial console (the protocol is in `tests/vm/README.md`).
//!
//! The boots run one after another (each VM takes both cores). A boot fails when a case fails, an expected
//! case reports nothing, `VMTEST-END` is missing, or the boot runs out of time (qemu is killed).

mod boot;
mod fetch;
mod initramfs;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;

use crate::cmd;

/// A kernel of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kernel {
    /// Debian 12's 6.1 LTS (`linux-image-6.1.0-*-cloud-amd64-unsigned`).
    #[value(name = "6.1")]
    V6_1,
    /// Debian 12's backported 6.12 LTS (`linux-image-6.12.*+deb12-cloud-amd64-unsigned`).
    #[value(name = "6.12")]
    V6_12,
}

impl Kernel {
    /// The name used in flags, logs and the summary.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::V6_1 => "6.1",
            Kernel::V6_12 => "6.12",
        }
    }
}

/// Which LSM settings to boot each kernel with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LsmChoice {
    /// Only with the BPF LSM (`lsm=…,bpf`).
    On,
    /// Only without it.
    Off,
    /// Both.
    Both,
}

/// Options of `cargo xtask vm`.
#[derive(Debug, clap::Args)]
pub struct VmArgs {
    /// Kernel to boot (repeat for several; default: all of the matrix).
    #[arg(long = "kernel", value_enum)]
    kernels: Vec<Kernel>,
    /// Boot with the BPF LSM enabled, disabled, or both (default: both).
    #[arg(long, value_enum)]
    lsm: Option<LsmChoice>,
    /// Run the whole matrix, every kernel with and without the BPF LSM (4 boots). Without it and without
    /// --kernel/--lsm, the default run boots 6.12 with the BPF LSM and 6.1 without it: each kernel and each
    /// LSM state once, in the time `cargo xtask test` has for this tier (docs/kernels.md).
    #[arg(long)]
    full: bool,
    /// Keep the work directory (the initramfs tree) for inspection.
    #[arg(long)]
    keep: bool,
    /// Seconds one boot may take, from qemu's start to its exit.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Run only these cases (comma-separated names of `tests/vm/cases/NAME.sh`).
    #[arg(long, value_delimiter = ',')]
    cases: Vec<String>,
}

impl VmArgs {
    /// The default matrix, as `cargo xtask test` runs it.
    pub fn ci() -> VmArgs {
        VmArgs {
            kernels: Vec::new(),
            lsm: None,
            full: false,
            keep: false,
            timeout: 600,
            cases: Vec::new(),
        }
    }

    /// The boots to run: kernel × LSM state.
    fn matrix(&self) -> Vec<(Kernel, bool)> {
        if !self.full && self.kernels.is_empty() && self.lsm.is_none() {
            return vec![(Kernel::V6_12, true), (Kernel::V6_1, false)];
        }
        let kernels = if self.kernels.is_empty() {
            vec![Kernel::V6_1, Kernel::V6_12]
        } else {
            self.kernels.clone()
        };
        let lsms: &[bool] = match self.lsm.unwrap_or(LsmChoice::Both) {
            LsmChoice::On => &[true],
            LsmChoice::Off => &[false],
            LsmChoice::Both => &[true, false],
        };
        kernels
            .iter()
            .flat_map(|&k| lsms.iter().map(move |&lsm| (k, lsm)))
            .collect()
    }
}

/// Where the tier keeps its files: `<target>/vm/{cache,build,logs,work}`.
pub struct Dirs {
    /// Downloaded packages and their extracted trees (kept between runs).
    pub cache: PathBuf,
    /// The static agent's cargo target directory.
    pub build: PathBuf,
    /// One serial-console log per boot.
    pub logs: PathBuf,
    /// The initramfs tree and image of this run.
    pub work: PathBuf,
}

impl Dirs {
    fn new() -> anyhow::Result<Dirs> {
        let root = cmd::target_dir()?.join("vm");
        let dirs = Dirs {
            cache: root.join("cache"),
            build: root.join("build"),
            logs: root.join("logs"),
            work: root.join("work"),
        };
        for dir in [&dirs.cache, &dirs.logs] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        Ok(dirs)
    }
}

/// `cargo xtask vm`: [`passes`] as an exit status.
pub fn vm(args: &VmArgs) -> anyhow::Result<ExitCode> {
    Ok(if passes(args)? {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs the tier: fetch the kernels, build the initramfs, boot the matrix, print the summary; true when
/// every boot passed.
pub fn passes(args: &VmArgs) -> anyhow::Result<bool> {
    let started = Instant::now();
    crate::setup::ensure_packages(&crate::setup::VM_PACKAGES)?;
    let dirs = Dirs::new()?;
    let matrix = args.matrix();
    let mut kernels: Vec<Kernel> = matrix.iter().map(|&(k, _)| k).collect();
    kernels.dedup();
    let images = kernels
        .iter()
        .map(|&k| Ok((k, fetch::kernel(&dirs.cache, k)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let busybox = fetch::busybox(&dirs.cache)?;
    let agent = initramfs::build_agent(&dirs.build)?;
    let suite = initramfs::Suite::read(&cmd::workspace_root().join("tests/vm"), &args.cases)?;
    let initrd = initramfs::build(&dirs.work, &busybox, &agent, &suite)?;
    let prepared = started.elapsed();
    eprintln!(
        "xtask: vm: {} case(s), {} boot(s); prepared in {:.0} s",
        suite.cases.len(),
        matrix.len(),
        prepared.as_secs_f64()
    );
    let mut results = Vec::new();
    for (kernel, lsm) in matrix {
        let Some((_, image)) = images.iter().find(|(k, _)| *k == kernel) else {
            continue;
        };
        let spec = boot::Boot {
            kernel,
            lsm,
            image,
            initrd: &initrd,
            log: dirs
                .logs
                .join(format!("{}-{}.log", kernel.name(), lsm_name(lsm))),
            timeout: std::time::Duration::from_secs(args.timeout),
            cases: &suite.cases,
        };
        results.push(boot::run(&spec)?);
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dirs.work);
    }
    Ok(!report::summary(&results, started.elapsed()))
}

/// `lsm-on` or `lsm-off`: how logs and the summary name an LSM state.
pub fn lsm_name(lsm: bool) -> &'static str {
    if lsm { "lsm-on" } else { "lsm-off" }
}
