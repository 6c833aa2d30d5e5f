//! The benches' temporary directories: a work directory on disk (collector, journals, auditd's log) and a
//! directory on tmpfs for the file workloads (below `/dev/shm` when that is tmpfs, else a tmpfs the bench
//! mounts and unmounts). Both are removed when dropped, and never while something is mounted below them.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::cmd::{self, command};

const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Whether `path` is on tmpfs.
fn on_tmpfs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: an all-zero statfs is a valid value to be overwritten.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a valid statfs to write to.
    let ret = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    // `f_type`'s integer type differs between architectures.
    #[allow(clippy::useless_conversion)]
    let f_type = i64::from(st.f_type);
    ret == 0 && f_type == TMPFS_MAGIC
}

/// Whether any mount point is at or below `dir`.
fn has_mount_below(dir: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return true;
    };
    info.lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .any(|mount| Path::new(mount).starts_with(dir))
}

/// Removes `dir` and what it holds, unless a file system is mounted below it.
fn remove_tree(dir: &Path) {
    if has_mount_below(dir) {
        eprintln!(
            "xtask: not removing {}: something is mounted below it",
            dir.display()
        );
        return;
    }
    if let Err(err) = std::fs::remove_dir_all(dir) {
        eprintln!("xtask: could not remove {}: {err}", dir.display());
    }
}

/// The benches' directories.
pub struct Scratch {
    /// On disk, root-owned (mode 0755): collector, state directories, auditd.
    pub work: PathBuf,
    /// On tmpfs: the file workloads' files.
    pub tmpfs: PathBuf,
    mounted: bool,
}

impl Scratch {
    /// Creates both, named after `name` and this process.
    pub fn create(name: &str) -> anyhow::Result<Scratch> {
        let id = format!("auditloop-{name}-{}", std::process::id());
        let work = std::env::temp_dir().join(&id);
        std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
        let shm = Path::new("/dev/shm");
        let (tmpfs, mounted) = if on_tmpfs(shm) {
            (shm.join(&id), false)
        } else {
            (std::env::temp_dir().join(format!("{id}-tmpfs")), true)
        };
        std::fs::create_dir_all(&tmpfs).with_context(|| format!("creating {}", tmpfs.display()))?;
        let mut scratch = Scratch {
            work,
            tmpfs,
            mounted: false,
        };
        if mounted {
            cmd::run(
                command("mount")
                    .args(["-t", "tmpfs", "-o", "size=1g", "tmpfs"])
                    .arg(&scratch.tmpfs),
            )
            .context("mounting a tmpfs for the file workloads")?;
            scratch.mounted = true;
        }
        if !on_tmpfs(&scratch.tmpfs) {
            bail!("{} is not on tmpfs", scratch.tmpfs.display());
        }
        Ok(scratch)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.mounted {
            let unmounted = command("umount").arg(&self.tmpfs).status();
            if unmounted.map(|s| s.success()).unwrap_or(false) {
                let _ = std::fs::remove_dir(&self.tmpfs);
            } else {
                eprintln!("xtask: could not unmount {}", self.tmpfs.display());
            }
        } else {
            remove_tree(&self.tmpfs);
        }
        remove_tree(&self.work);
    }
}
