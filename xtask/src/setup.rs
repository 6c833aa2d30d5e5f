//! `cargo xtask setup`: installs what is missing, mounts what is unmounted, and checks what cannot be
//! fixed, with one line each. Quick when everything is present.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::cmd::{self, command, output};

/// Debian package providing LLVM 22 (bpf-linker links against it).
const LLVM_PACKAGE: &str = "llvm-22-dev";
/// Debian packages the integration tests need: gcc and liburing build their io_uring test program
/// (`tests/uring/`); the package tests check the units with `systemd-analyze` (systemd) and
/// `cargo xtask package` computes dependencies with `dpkg-shlibdeps` (dpkg-dev); the self-protection tests
/// detach and change the agent's BPF objects with bpftool; the console test drives chromium (with
/// node and npm, which install its Playwright driver from `tests/ui/package-lock.json`) and tampers with
/// the collector's database from python3; the PostgreSQL store's tests and `cargo xtask cluster` run a
/// real PostgreSQL server ([`POSTGRES_PACKAGES`]).
const TEST_PACKAGES: &[&str] = &[
    "gcc",
    "liburing-dev",
    "systemd",
    "dpkg-dev",
    "bpftool",
    "chromium",
    "python3",
];
/// Debian's PostgreSQL (server and client programs), which `auditloop_testkit::postgres` starts for the
/// tests and `cargo xtask cluster` (never its system cluster: each test run gets a cluster of its own).
pub const POSTGRES_PACKAGES: &[&str] = &["postgresql"];
/// Debian packages the VM test tier needs (`cargo xtask vm`): qemu boots the kernels, cpio packs the
/// initramfs.
pub const VM_PACKAGES: [&str; 2] = ["qemu-system-x86", "cpio"];
/// bpf-linker release line this project builds with.
const BPF_LINKER_VERSION: &str = "0.13";

/// Runs every setup step; errors name what is missing and why it cannot be fixed here.
pub fn setup() -> anyhow::Result<()> {
    let started = Instant::now();
    let mut problems = Vec::new();
    if !nix_is_root() {
        problems.push(
            "not root: the agent loads BPF programs and setup installs packages; run as root"
                .to_string(),
        );
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        problems.push("no BTF: /sys/kernel/btf/vmlinux is missing (kernel built without CONFIG_DEBUG_INFO_BTF)".to_string());
    }
    if let Err(why) = bpf_syscall_works() {
        problems.push(format!("no BPF syscall: {why}"));
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("xtask: setup: {p}");
        }
        bail!(
            "{} prerequisite(s) cannot be fixed by setup",
            problems.len()
        );
    }
    mount_if_missing(
        "tracefs",
        "/sys/kernel/tracing",
        "/sys/kernel/tracing/events",
    )?;
    mount_if_missing(
        "securityfs",
        "/sys/kernel/security",
        "/sys/kernel/security/lsm",
    )?;
    ensure_packages(&[LLVM_PACKAGE])?;
    ensure_packages(&[TEST_PACKAGES, POSTGRES_PACKAGES].concat())?;
    ensure_packages(&VM_PACKAGES)?;
    ensure_nightly_rust_src()?;
    ensure_bpf_linker()?;
    eprintln!(
        "xtask: setup complete in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Creates (and closes) a one-entry array map: proves the bpf(2) syscall is there and usable.
fn bpf_syscall_works() -> Result<(), String> {
    #[repr(C)]
    struct MapCreate {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
    }
    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_MAP_TYPE_ARRAY: u32 = 2;
    let mut attr = [0u8; 128];
    let create = MapCreate {
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
    };
    // SAFETY: `attr` is larger than `MapCreate`; the write is unaligned-safe.
    unsafe { std::ptr::write_unaligned(attr.as_mut_ptr().cast::<MapCreate>(), create) };
    // SAFETY: bpf(BPF_MAP_CREATE) reads `attr.len()` bytes from a valid buffer.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_MAP_CREATE, attr.as_ptr(), attr.len()) };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::ENOSYS) => "the kernel has no bpf(2) (CONFIG_BPF_SYSCALL off)".into(),
            Some(libc::EPERM) => {
                "bpf(2) refused with EPERM (missing CAP_BPF/CAP_SYS_ADMIN?)".into()
            }
            _ => format!("bpf(2) map creation failed: {err}"),
        });
    }
    // SAFETY: `fd` is a descriptor this function owns.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

fn mount_if_missing(fstype: &str, target: &str, probe: &str) -> anyhow::Result<()> {
    if Path::new(probe).exists() {
        return Ok(());
    }
    eprintln!("xtask: setup: mounting {fstype} on {target}");
    cmd::run(command("mount").args(["-t", fstype, fstype, target]))
        .with_context(|| format!("mounting {fstype} on {target}"))
}

/// Whether Debian package `name` is installed.
pub fn installed(name: &str) -> bool {
    let status = output(command("dpkg-query").args(["-W", "-f=${Status}", name]));
    status.as_deref() == Some("install ok installed")
}

/// Installs the Debian packages of `names` that are not installed (one `apt-get install` for all).
pub fn ensure_packages(names: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| !installed(name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: setup: installing {}", missing.join(" "));
    cmd::run(command("apt-get").args(["update", "-q"]))?;
    cmd::run(
        command("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .with_context(|| format!("installing Debian packages {}", missing.join(" ")))
}

fn ensure_nightly_rust_src() -> anyhow::Result<()> {
    let installed = output(command("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]));
    match installed {
        Some(list) if list.lines().any(|l| l.starts_with("rust-src")) => Ok(()),
        Some(_) => cmd::run(command("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ])),
        None => {
            eprintln!("xtask: setup: installing the nightly toolchain");
            cmd::run(command("rustup").args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ]))
            .context("no nightly toolchain, and rustup could not install one")
        }
    }
}

fn ensure_bpf_linker() -> anyhow::Result<()> {
    if let Some(why) = bpf_linker_problem() {
        eprintln!("xtask: setup: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 ({why})");
        cmd::run(cmd::cargo().args([
            "install",
            "bpf-linker",
            "--force",
            "--version",
            &format!("~{BPF_LINKER_VERSION}"),
            "--no-default-features",
            "--features",
            "llvm-22",
        ]))
        .context("building bpf-linker")?;
        if let Some(why) = bpf_linker_problem() {
            bail!("bpf-linker still unusable after install: {why}");
        }
    }
    Ok(())
}

/// Why the installed bpf-linker is unusable, if it is.
fn bpf_linker_problem() -> Option<String> {
    let Ok(path) = which::which_in("bpf-linker", Some(cmd::tool_path()), "/") else {
        return Some("not installed".into());
    };
    let version = output(std::process::Command::new(&path).arg("--version"))?;
    if !version.contains(&format!("bpf-linker {BPF_LINKER_VERSION}.")) {
        return Some(format!("found {}", version.trim()));
    }
    let libs = output(std::process::Command::new("ldd").arg(&path)).unwrap_or_default();
    let llvm = libs.lines().find(|l| l.contains("libLLVM"));
    match llvm {
        Some(line) if line.contains("libLLVM.so.22") && !line.contains("not found") => None,
        Some(line) => Some(format!("linked against {}", line.trim())),
        None => Some("not linked against a shared LLVM 22".into()),
    }
}
