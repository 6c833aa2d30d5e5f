//! What the running kernel allows, found out at start by asking it (loading trivial programs, creating a
//! map, reading securityfs), and the enforcement tier chosen from that.
//!
//! Tiers:
//! - `lsm`: BPF LSM is active (`bpf` in `/sys/kernel/security/lsm`) and LSM programs load. Deny rules on
//!   execs and on protected files are refused in the kernel with `EPERM` before they happen, and refused
//!   paths come from the kernel (`bpf_d_path`).
//! - `tracepoint`: syscall tracepoints only. Exec rules kill at `sys_enter_execve` (SIGKILL) or are refused
//!   by the fanotify exec guard; file deny rules fall back to a kill after the event; paths are resolved in
//!   userspace.

use aya::programs::{LsmAttachType, ProgramType};
use aya::sys::{BpfHelper, is_helper_supported, is_map_supported, is_program_supported};

use crate::config::CaptureMode;
pub use crate::enforce::Tier;

/// Where securityfs lists the active LSMs.
const LSM_LIST: &str = "/sys/kernel/security/lsm";
/// Where securityfs shows the lockdown mode.
const LOCKDOWN: &str = "/sys/kernel/security/lockdown";
/// The kprobe PMU, present when the kernel can attach kprobes.
const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe";

/// Whether a feature is there, and why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Support {
    /// Available.
    Yes,
    /// Not available, and why.
    No(String),
}

impl Support {
    /// Whether available.
    pub fn yes(&self) -> bool {
        *self == Support::Yes
    }

    fn from_probe<E: std::error::Error>(probe: Result<bool, E>, refused: &str) -> Support {
        match probe {
            Ok(true) => Support::Yes,
            Ok(false) => Support::No(refused.to_owned()),
            Err(e) => {
                let mut why = e.to_string();
                let mut source = e.source();
                while let Some(s) = source {
                    why = format!("{why}: {s}");
                    source = s.source();
                }
                Support::No(why)
            }
        }
    }
}

/// What the kernel allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Features {
    /// Kernel release.
    pub kernel: String,
    /// BPF LSM active and its programs load.
    pub bpf_lsm: Support,
    /// fentry/fexit (tracing) programs load.
    pub fentry: Support,
    /// kprobes can be attached.
    pub kprobes: Support,
    /// `bpf_probe_read_kernel` is allowed (lockdown below confidentiality).
    pub kernel_reads: Support,
    /// Ring buffer maps.
    pub ringbuf: Support,
    /// `bpf_send_signal` from tracepoint programs.
    pub send_signal: Support,
    /// The kernel's own BTF.
    pub btf: Support,
}

impl Features {
    /// Asks the kernel.
    pub fn probe() -> Features {
        let btf = if std::path::Path::new(super::btf::VMLINUX_BTF).exists() {
            Support::Yes
        } else {
            Support::No(format!("no {}", super::btf::VMLINUX_BTF))
        };
        let lsm_list = std::fs::read_to_string(LSM_LIST).unwrap_or_default();
        let bpf_lsm = if !lsm_list.split(',').any(|l| l.trim() == "bpf") {
            Support::No(if lsm_list.is_empty() {
                format!("{LSM_LIST} unreadable (securityfs not mounted?)")
            } else {
                format!(
                    "bpf not in the active LSMs ({}); boot with lsm=…,bpf",
                    lsm_list.trim()
                )
            })
        } else if !btf.yes() {
            btf.clone()
        } else {
            Support::from_probe(
                is_program_supported(ProgramType::Lsm(LsmAttachType::Mac)),
                "the kernel refuses LSM programs",
            )
        };
        let fentry = if btf.yes() {
            Support::from_probe(
                is_program_supported(ProgramType::Tracing),
                "the kernel refuses tracing programs",
            )
        } else {
            btf.clone()
        };
        let kprobes = if std::path::Path::new(KPROBE_PMU).exists() {
            Support::Yes
        } else {
            Support::No(format!("no {KPROBE_PMU} (CONFIG_KPROBES off)"))
        };
        let lockdown = std::fs::read_to_string(LOCKDOWN).unwrap_or_default();
        let kernel_reads = if lockdown.contains("[confidentiality]") {
            Support::No("lockdown=confidentiality".into())
        } else {
            Support::from_probe(
                is_helper_supported(
                    ProgramType::TracePoint,
                    BpfHelper::BPF_FUNC_probe_read_kernel,
                ),
                "bpf_probe_read_kernel refused",
            )
        };
        Features {
            kernel: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            bpf_lsm,
            fentry,
            kprobes,
            kernel_reads,
            ringbuf: Support::from_probe(
                is_map_supported(aya::maps::MapType::RingBuf),
                "no ring buffer maps (kernel before 5.8)",
            ),
            send_signal: Support::from_probe(
                is_helper_supported(ProgramType::TracePoint, BpfHelper::BPF_FUNC_send_signal),
                "bpf_send_signal refused (kernel before 5.3)",
            ),
            btf,
        }
    }

    /// The tier for `mode`: the best the kernel allows, or the forced one (an error when the kernel does
    /// not allow it, naming why).
    pub fn tier(&self, mode: CaptureMode) -> Result<Tier, String> {
        match (mode, &self.bpf_lsm) {
            (CaptureMode::Auto, Support::Yes) | (CaptureMode::Lsm, Support::Yes) => Ok(Tier::Lsm),
            (CaptureMode::Auto, Support::No(_)) | (CaptureMode::Tracepoint, _) => {
                Ok(Tier::Tracepoint)
            }
            (CaptureMode::Lsm, Support::No(why)) => Err(format!(
                "capture.mode is lsm but this kernel cannot run BPF LSM programs: {why}"
            )),
        }
    }

    /// `name=yes` / `name=no(reason)` for each feature, space-separated.
    pub fn summary(&self) -> String {
        [
            ("bpf_lsm", &self.bpf_lsm),
            ("fentry", &self.fentry),
            ("kprobes", &self.kprobes),
            ("kernel_reads", &self.kernel_reads),
            ("ringbuf", &self.ringbuf),
            ("send_signal", &self.send_signal),
            ("btf", &self.btf),
        ]
        .iter()
        .map(|(name, s)| match s {
            Support::Yes => format!("{name}=yes"),
            Support::No(why) => format!("{name}=no({why})"),
        })
        .collect::<Vec<_>>()
        .join(" ")
    }
}
