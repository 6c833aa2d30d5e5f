//! File events: operations on files, and changes of watched configuration files.

use auditloop_model_derive::Fields;
use serde::{Deserialize, Serialize};

use crate::vocab::{ChangeTrigger, FileOp};

/// A file operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "file", kind = File)]
pub struct File {
    /// What was done (`open` is a write, create or truncate; `read` a read-only open of a sensitive path).
    pub op: FileOp,
    /// The syscall used (`openat`, `renameat2`, `fchmod`, …).
    pub syscall: String,
    /// The file the kernel acted on: absolute and canonical (`.`, `..` and `//` collapsed, symlinks and
    /// `/proc/<pid>/{root,cwd,fd}` links followed the way the syscall follows them) when it could be
    /// resolved (see `resolved`); for `symlink` the link created; for `mount` the mount point.
    pub path: String,
    /// Second path: rename/link destination, symlink target (as written), mount source.
    pub target: String,
    /// `path` (and `target` where it is a path) were made absolute from the process's cwd or dirfd.
    pub resolved: bool,
    /// A path argument was cut at 255 bytes or could not be read.
    pub path_truncated: bool,
    /// Open flags (`O_*`), rename/link/unlink/utimens flags.
    pub flags: u64,
    /// Mode for open/creat/mkdir/chmod.
    pub mode: u32,
    /// New owner for chown (`4294967295` = unchanged).
    pub uid: u32,
    /// New group for chown (`4294967295` = unchanged).
    pub gid: u32,
    /// New length for truncate.
    pub length: i64,
    /// File descriptor argument (f* variants) or the descriptor an open returned; -1 when none.
    pub fd: i64,
    /// Syscall result: `-errno` on failure; `None` when the return record was lost.
    pub ret: Option<i64>,
    /// Whether the syscall succeeded.
    pub success: bool,
    /// The path argument as passed, when it differs from `path`; empty otherwise.
    pub raw_path: String,
    /// The second path argument as passed, when it differs from `target`; empty otherwise.
    pub raw_target: String,
    /// The deny rule whose BPF LSM hook refused this operation before it happened (it failed with
    /// `EPERM`).
    pub denied_by_rule: Option<String>,
    /// With `denied_by_rule`: the refused file's path as the kernel printed it (`bpf_d_path`: absolute,
    /// every link resolved); empty when the hook has no path to print (unlink, rename, chmod, chown and
    /// truncate name the file by identity).
    #[field(absent_if_empty)]
    pub kernel_path: String,
}

/// A watched configuration file changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "change", kind = ConfigChange)]
pub struct ConfigChange {
    /// The watched file.
    pub path: String,
    /// What made the agent look at the file again.
    pub trigger: ChangeTrigger,
    /// SHA-256 of the last known content; `None` for a new file.
    pub old_sha256: Option<String>,
    /// SHA-256 of the content now; `None` when the file is gone.
    pub new_sha256: Option<String>,
    /// Size in bytes now.
    pub size: u64,
    /// Mode now (permission and type bits).
    pub mode: u32,
    /// Owner now.
    pub uid: u32,
    /// Group now.
    pub gid: u32,
    /// Permission bits of the last known version (what a rollback restores); `None` for a new file.
    pub old_mode: Option<u32>,
    /// Owner of the last known version (what a rollback restores); `None` for a new file.
    pub old_uid: Option<u32>,
    /// Group of the last known version (what a rollback restores); `None` for a new file.
    pub old_gid: Option<u32>,
    /// Unified diff (text files up to the size limit); `None` for a redacted file.
    pub diff: Option<String>,
    /// The diff was cut at its length limit.
    pub diff_truncated: bool,
    /// The file's content is secret (`watch.redact`, or it holds a private key): no content or diff is
    /// recorded, only hashes, size, metadata and `changed_entries`.
    pub redacted: bool,
    /// For a redacted file in `name:…` line format (shadow, gshadow, passwd-like): the names whose lines
    /// were added, removed or changed (never their other fields).
    pub changed_entries: Vec<String>,
    /// The watched path, or a directory on it, is now a symbolic link pointing here (as written; it is
    /// never followed).
    pub link_target: Option<String>,
}
