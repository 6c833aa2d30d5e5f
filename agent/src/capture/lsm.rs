//! The LSM tier: the structure offsets the LSM programs need (from the kernel's BTF), loading and attaching
//! them, and filling their deny maps from the kernel deny rules.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use agent_common::wire::{
    DENY_BELOW, DENY_KILL, DenyRule, HOOK_EXEC, HOOK_OPEN, InodeKey, LSM_OFFSETS_LEN,
    MAP_EXEC_DENY, MAP_EXEC_DENY_INODES, MAP_FILE_DENY, MAP_FILE_DENY_INODES, OFF_BPRM_FILE,
    OFF_DENTRY_INODE, OFF_DENTRY_PARENT, OFF_FILE_INODE, OFF_FILE_MODE, OFF_FILE_PATH,
    OFF_INODE_INO, OFF_INODE_SB, OFF_PATH_DENTRY, OFF_SB_DEV,
};
use aya::Ebpf;
use aya::maps::{HashMap as BpfHashMap, MapData};
use aya::programs::Lsm;

use super::CaptureError;
use super::btf::{Btf, BtfError};
use super::filters::{path_key, replace_trie};
use crate::enforce::KernelDenyRule;

/// Program name in the object = LSM hook name.
pub const LSM_PROGRAMS: &[&str] = &[
    "bprm_check_security",
    "file_open",
    "path_unlink",
    "path_rename",
    "path_chmod",
    "path_chown",
    "path_truncate",
];

/// Most files and directories registered below one protected directory prefix.
const MAX_BELOW: usize = 4096;

/// The offsets, indexed by `OFF_*`, from the running kernel's BTF.
pub fn offsets(btf: &Btf) -> Result<[u32; LSM_OFFSETS_LEN], BtfError> {
    let mut off = [0u32; LSM_OFFSETS_LEN];
    for (slot, ty, member) in [
        (OFF_BPRM_FILE, "linux_binprm", "file"),
        (OFF_FILE_PATH, "file", "f_path"),
        (OFF_FILE_INODE, "file", "f_inode"),
        (OFF_FILE_MODE, "file", "f_mode"),
        (OFF_PATH_DENTRY, "path", "dentry"),
        (OFF_DENTRY_INODE, "dentry", "d_inode"),
        (OFF_INODE_INO, "inode", "i_ino"),
        (OFF_INODE_SB, "inode", "i_sb"),
        (OFF_SB_DEV, "super_block", "s_dev"),
        (OFF_DENTRY_PARENT, "dentry", "d_parent"),
    ] {
        off[slot] = btf.member_offset(ty, member)?;
    }
    Ok(off)
}

/// Loads and attaches every LSM program; returns how many.
pub fn attach(ebpf: &mut Ebpf) -> Result<usize, CaptureError> {
    let btf = aya::Btf::from_sys_fs().map_err(|e| CaptureError::Lsm {
        program: "(btf)",
        message: e.to_string(),
    })?;
    for &name in LSM_PROGRAMS {
        let failed = |e: aya::programs::ProgramError| CaptureError::Lsm {
            program: name,
            message: verifier_message(&e),
        };
        let program: &mut Lsm = ebpf
            .program_mut(name)
            .ok_or(CaptureError::MissingProgram(name))?
            .try_into()
            .map_err(failed)?;
        program.load(name, &btf).map_err(failed)?;
        program.attach().map_err(failed)?;
    }
    Ok(LSM_PROGRAMS.len())
}

/// The error with the verifier's log, when there is one.
fn verifier_message(e: &aya::programs::ProgramError) -> String {
    if let aya::programs::ProgramError::LoadError {
        io_error,
        verifier_log,
    } = e
    {
        return format!("{io_error}: {verifier_log}");
    }
    e.to_string()
}

/// The kernel's internal encoding of a userspace device number (`MAJOR << 20 | MINOR`).
fn kernel_dev(dev: u64) -> u32 {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    (major << 20) | minor
}

fn inode_key(meta: &std::fs::Metadata) -> InodeKey {
    InodeKey {
        ino: meta.ino(),
        dev: kernel_dev(meta.dev()),
        pad: 0,
    }
}

/// Replaces the deny maps' contents with `rules`: each path in the path tries (exact or prefix, matched
/// against the path the kernel prints), and each existing file by identity (so every other path to it,
/// hard link or bind mount, is refused too); a directory prefix registers the directory and what is below
/// it (up to [`MAX_BELOW`] entries) so removals and renames of its entries are refused.
pub fn set_deny(ebpf: &mut Ebpf, rules: &[KernelDenyRule]) -> Result<(), CaptureError> {
    let mut exec_paths = Vec::new();
    let mut exec_inodes = Vec::new();
    let mut file_paths = Vec::new();
    let mut file_inodes = Vec::new();
    for r in rules {
        let value = DenyRule {
            rule: r.rule,
            uid: r.uid.unwrap_or(u32::MAX),
            ops: r.hooks,
            flags: if r.kill { DENY_KILL } else { 0 },
        };
        let exec = r.hooks & HOOK_EXEC != 0;
        let (paths, inodes) = if exec {
            (&mut exec_paths, &mut exec_inodes)
        } else {
            (&mut file_paths, &mut file_inodes)
        };
        if exec || r.hooks & HOOK_OPEN != 0 {
            paths.push((
                path_key(&r.path),
                bytemuck::cast::<DenyRule, [u8; 16]>(value),
            ));
        }
        if let Some(dir) = r.path.strip_suffix('/') {
            if !exec {
                below(
                    Path::new(if dir.is_empty() { "/" } else { dir }),
                    value,
                    inodes,
                );
            }
        } else if let Ok(meta) = std::fs::metadata(&r.path) {
            inodes.push((inode_key(&meta), value));
        }
    }
    replace_trie(ebpf, MAP_EXEC_DENY, &exec_paths)?;
    replace_trie(ebpf, MAP_FILE_DENY, &file_paths)?;
    fill_inodes(ebpf, MAP_EXEC_DENY_INODES, &exec_inodes)?;
    fill_inodes(ebpf, MAP_FILE_DENY_INODES, &file_inodes)?;
    Ok(())
}

/// Registers `dir` (with `DENY_BELOW`) and, breadth first, its files and subdirectories.
fn below(dir: &Path, value: DenyRule, out: &mut Vec<(InodeKey, DenyRule)>) {
    let mut queue = std::collections::VecDeque::from([dir.to_path_buf()]);
    let mut count = 0;
    while let Some(d) = queue.pop_front() {
        let Ok(meta) = std::fs::symlink_metadata(&d) else {
            continue;
        };
        out.push((
            inode_key(&meta),
            DenyRule {
                flags: value.flags | DENY_BELOW,
                ..value
            },
        ));
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            count += 1;
            if count > MAX_BELOW {
                tracing::warn!(dir = %dir.display(), "more than {MAX_BELOW} entries below a protected \
                    directory: the rest are protected only by path, for opens");
                return;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                queue.push_back(entry.path());
            } else {
                out.push((inode_key(&meta), value));
            }
        }
    }
}

fn fill_inodes(
    ebpf: &mut Ebpf,
    name: &'static str,
    entries: &[(InodeKey, DenyRule)],
) -> Result<(), CaptureError> {
    let mut map: BpfHashMap<&mut MapData, [u8; 16], [u8; 16]> =
        BpfHashMap::try_from(ebpf.map_mut(name).ok_or(CaptureError::MissingMap(name))?)
            .map_err(|e| CaptureError::Map(name, e))?;
    let old: Vec<[u8; 16]> = map.keys().filter_map(Result::ok).collect();
    for key in old {
        let _ = map.remove(&key);
    }
    for (key, value) in entries {
        map.insert(
            bytemuck::cast::<InodeKey, [u8; 16]>(*key),
            bytemuck::cast::<DenyRule, [u8; 16]>(*value),
            0,
        )
        .map_err(|e| CaptureError::Map(name, e))?;
    }
    Ok(())
}
