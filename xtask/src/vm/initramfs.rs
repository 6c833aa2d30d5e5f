//! The initramfs: busybox (one link per applet), the static agent, and the suite of `tests/vm/` (its
//! `/init`, runner, shared helpers and cases), packed as a gzip'd newc cpio archive.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::cmd::{self, command};

/// The target the static agent is built for (its `RUSTFLAGS` variable is per target, so the nested
/// cargo that `agent/build.rs` runs for the BPF target does not get `+crt-static`).
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds the agent linked statically into `build` (its own target directory); returns the binary.
pub fn build_agent(build: &Path) -> anyhow::Result<PathBuf> {
    cmd::run(
        cmd::cargo()
            .args(["build", "--release", "-p", "auditloop", "--target", TARGET])
            .arg("--target-dir")
            .arg(build)
            .env(
                "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
                "-C target-feature=+crt-static",
            ),
    )
    .context("building the static agent")?;
    let bin = build.join(TARGET).join("release/auditloop");
    require_static(&bin)?;
    Ok(bin)
}

/// Fails unless `file(1)` calls `bin` statically linked (the initramfs has no dynamic loader or libc).
fn require_static(bin: &Path) -> anyhow::Result<()> {
    let what = cmd::output(command("file").arg("-b").arg(bin))
        .with_context(|| format!("`file {}` failed", bin.display()))?;
    if !(what.contains("statically linked") || what.contains("static-pie linked")) {
        bail!("{} is not static: {}", bin.display(), what.trim());
    }
    Ok(())
}

/// The suite's files and the cases it runs.
pub struct Suite {
    /// `tests/vm/`.
    pub dir: PathBuf,
    /// Case names (`cases/NAME.sh`), in the order the runner runs them (by name).
    pub cases: Vec<String>,
}

impl Suite {
    /// Reads the case list from `dir/cases`; `only` (when not empty) keeps the cases it names.
    pub fn read(dir: &Path, only: &[String]) -> anyhow::Result<Suite> {
        let cases_dir = dir.join("cases");
        let mut cases: Vec<String> = std::fs::read_dir(&cases_dir)
            .with_context(|| format!("reading {}", cases_dir.display()))?
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".sh").map(str::to_owned))
            .collect();
        cases.sort();
        if let Some(unknown) = only.iter().find(|c| !cases.contains(c)) {
            bail!(
                "no case `{unknown}` in {} (known: {})",
                cases_dir.display(),
                cases.join(", ")
            );
        }
        if !only.is_empty() {
            cases.retain(|c| only.contains(c));
        }
        Ok(Suite {
            dir: dir.to_path_buf(),
            cases,
        })
    }
}

/// Builds `<work>/initrd.gz` from a fresh tree `<work>/root`.
pub fn build(work: &Path, busybox: &Path, agent: &Path, suite: &Suite) -> anyhow::Result<PathBuf> {
    let root = work.join("root");
    let _ = std::fs::remove_dir_all(work);
    for dir in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "run", "var/lib",
        "vm/cases", "vm/rules",
    ] {
        std::fs::create_dir_all(root.join(dir)).with_context(|| format!("creating {dir}"))?;
    }
    copy(busybox, &root.join("bin/busybox"), 0o755)?;
    install_applets(busybox, &root)?;
    copy(agent, &root.join("bin/auditloop"), 0o755)?;
    copy(&suite.dir.join("init"), &root.join("init"), 0o755)?;
    copy(&suite.dir.join("run.sh"), &root.join("vm/run.sh"), 0o755)?;
    copy(&suite.dir.join("lib.sh"), &root.join("vm/lib.sh"), 0o644)?;
    for case in &suite.cases {
        let name = format!("{case}.sh");
        copy(
            &suite.dir.join("cases").join(&name),
            &root.join("vm/cases").join(&name),
            0o755,
        )?;
    }
    for rules in files_in(&suite.dir.join("rules"), ".yaml")? {
        if let Some(name) = rules.file_name() {
            copy(&rules, &root.join("vm/rules").join(name), 0o644)?;
        }
    }
    // Users and groups for the agent's name lookups; nothing else reads /etc.
    write(&root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    write(&root.join("etc/group"), "root:x:0:\n")?;
    write(
        &root.join("etc/machine-id"),
        "a11d170000000000000000000000a100\n",
    )?;
    let initrd = work.join("initrd.gz");
    cmd::run(
        command("sh")
            .current_dir(&root)
            .arg("-c")
            .arg("find . | cpio -o -H newc -R 0:0 --quiet | gzip -1 > ../initrd.gz"),
    )
    .context("packing the initramfs (cpio, gzip)")?;
    Ok(initrd)
}

/// One symbolic link `bin/<applet> -> busybox` per applet busybox lists (the host runs the static binary).
fn install_applets(busybox: &Path, root: &Path) -> anyhow::Result<()> {
    let list = cmd::output(std::process::Command::new(busybox).arg("--list-full"))
        .context("`busybox --list-full` failed")?;
    for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let link = root.join(applet);
        if link.exists() {
            continue;
        }
        let depth = applet.matches('/').count();
        let target = format!("{}bin/busybox", "../".repeat(depth));
        std::os::unix::fs::symlink(&target, &link)
            .with_context(|| format!("linking {} to busybox", link.display()))?;
    }
    Ok(())
}

/// The files in `dir` whose names end with `suffix`.
fn files_in(dir: &Path, suffix: &str) -> anyhow::Result<Vec<PathBuf>> {
    Ok(std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect())
}

fn copy(from: &Path, to: &Path, mode: u32) -> anyhow::Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", to.display()))
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
