//! BPF LSM enforcement: the maps the agent fills with deny rules, the kernel structure offsets it reads from
//! BTF, and the record of a refused operation.
//!
//! Rust eBPF has no CO-RE relocations, so the agent looks up, in the running kernel's BTF, the offsets of the
//! few structure members the LSM programs read and writes them into the read-only global
//! [`GLOBAL_LSM_OFFSETS`] before loading. The verifier sees them as constants (the map is frozen).

use super::{PATH_LEN, RecordHeader};

/// Name of the LPM trie ([`PathKey`](super::PathKey) → [`DenyRule`]) of executable paths (exact, or
/// prefixes ending in `/`) whose exec the `bprm_check_security` program refuses.
pub const MAP_EXEC_DENY: &str = "EXEC_DENY";
/// Name of the hash map ([`InodeKey`] → [`DenyRule`]) of executable files refused by identity (every
/// path, hard link or bind mount of the file).
pub const MAP_EXEC_DENY_INODES: &str = "EXEC_DENY_INODES";
/// Name of the LPM trie ([`PathKey`](super::PathKey) → [`DenyRule`]) of protected paths (exact, or
/// prefixes ending in `/`) that `file_open` refuses to open for writing.
pub const MAP_FILE_DENY: &str = "FILE_DENY";
/// Name of the hash map ([`InodeKey`] → [`DenyRule`]) of protected files and directories, by identity:
/// the file itself, or (with [`DENY_BELOW`]) the entries of the directory.
pub const MAP_FILE_DENY_INODES: &str = "FILE_DENY_INODES";
/// Name of the read-only global array of `u32` structure offsets, indexed by `OFF_*`.
pub const GLOBAL_LSM_OFFSETS: &str = "LSM_OFFSETS";

/// `LSM_OFFSETS[OFF_BPRM_FILE]`: `struct linux_binprm`, member `file`.
pub const OFF_BPRM_FILE: usize = 0;
/// `struct file`, member `f_path`.
pub const OFF_FILE_PATH: usize = 1;
/// `struct file`, member `f_inode`.
pub const OFF_FILE_INODE: usize = 2;
/// `struct file`, member `f_mode`.
pub const OFF_FILE_MODE: usize = 3;
/// `struct path`, member `dentry`.
pub const OFF_PATH_DENTRY: usize = 4;
/// `struct dentry`, member `d_inode`.
pub const OFF_DENTRY_INODE: usize = 5;
/// `struct inode`, member `i_ino`.
pub const OFF_INODE_INO: usize = 6;
/// `struct inode`, member `i_sb`.
pub const OFF_INODE_SB: usize = 7;
/// `struct super_block`, member `s_dev`.
pub const OFF_SB_DEV: usize = 8;
/// `struct dentry`, member `d_parent`.
pub const OFF_DENTRY_PARENT: usize = 9;
/// Number of offsets.
pub const LSM_OFFSETS_LEN: usize = 10;

/// `FMODE_WRITE` in `struct file`'s `f_mode`.
pub const FMODE_WRITE: u32 = 2;

/// An LSM hook, as recorded in [`LsmDeny::hook`] and as bits of [`DenyRule::ops`].
pub const HOOK_EXEC: u32 = 1;
/// `file_open` for writing.
pub const HOOK_OPEN: u32 = 1 << 1;
/// `path_unlink`.
pub const HOOK_UNLINK: u32 = 1 << 2;
/// `path_rename` (the file renamed, or replaced by a rename).
pub const HOOK_RENAME: u32 = 1 << 3;
/// `path_chmod`.
pub const HOOK_CHMOD: u32 = 1 << 4;
/// `path_chown`.
pub const HOOK_CHOWN: u32 = 1 << 5;
/// `path_truncate`.
pub const HOOK_TRUNCATE: u32 = 1 << 6;

/// [`DenyRule::flags`]: the entry is a directory whose entries (not the directory itself) are protected.
pub const DENY_BELOW: u32 = 1;
/// [`DenyRule::flags`]: also send SIGKILL to the task (an exec rule whose action is `kill`).
pub const DENY_KILL: u32 = 1 << 1;

/// A file's identity as the kernel sees it: `s_dev` (the kernel's internal `MAJOR << 20 | MINOR`) and
/// the inode number.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct InodeKey {
    /// Inode number.
    pub ino: u64,
    /// Device, kernel encoding.
    pub dev: u32,
    /// Zero.
    pub pad: u32,
}

/// A kernel deny rule.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct DenyRule {
    /// Index of the rule in the agent's deny rule table (reported back in [`LsmDeny::rule`]).
    pub rule: u32,
    /// Only this real uid; `u32::MAX` = any user.
    pub uid: u32,
    /// `HOOK_*` bits this rule refuses.
    pub ops: u32,
    /// `DENY_*` flags.
    pub flags: u32,
}

/// An LSM program refused an operation with `EPERM`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct LsmDeny {
    /// Header; `kind` is `RecordKind::LsmDeny`.
    pub header: RecordHeader,
    /// One `HOOK_*` value.
    pub hook: u32,
    /// The rule ([`DenyRule::rule`]).
    pub rule: u32,
    /// `DENY_*` flags of the rule that matched.
    pub flags: u32,
    /// Bytes of `path` used, NUL included; 0 when the hook has no path the kernel can print.
    pub path_len: u32,
    /// The file's identity.
    pub inode: InodeKey,
    /// The path as the kernel prints it (`bpf_d_path`): absolute, every link resolved.
    pub path: [u8; PATH_LEN],
}

const _: () = assert!(core::mem::size_of::<InodeKey>() == 16);
const _: () = assert!(core::mem::size_of::<DenyRule>() == 16);
const _: () = assert!(
    core::mem::size_of::<LsmDeny>() == core::mem::size_of::<RecordHeader>() + 32 + PATH_LEN
);
