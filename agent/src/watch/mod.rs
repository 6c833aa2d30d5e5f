//! Config-file watching: which files are watched, their last known content, and what changed.
//!
//! When a watched file (`/etc/passwd`, `/etc/ssh/sshd_config`, a file in `/etc/sudoers.d`, …) is closed
//! after a write, renamed over or truncated, the agent calls [`ContentStore::observe`], which reads the file,
//! compares it with the last known content, stores the new content and returns a [`FileChange`] (hashes,
//! metadata and a unified diff of text files).
//!
//! This module never loses the last known good content: blobs are written atomically before the index
//! entry that names them, a failed write leaves the previous index entry intact, and blobs are never
//! deleted, so the content a [`FileChange::old_sha256`] names stays available for rollback. It never
//! panics on what it reads: a garbled index entry or blob is an error or a warning, not a crash, and a
//! file that disappears before it is read is a change to "gone", not an error. It never follows a
//! symbolic link on a watched path (a path that becomes one is a change, with the link's target), and the
//! content of a secret file ([`Redaction`]) never leaves the store: not in a [`FileChange`], not in a log.

mod diff;
mod fsio;
mod index;
mod nofollow;
mod redact;
mod staged;
mod store;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_hostile;

use std::path::{Component, Path, PathBuf};

pub use nofollow::{LinkOnPath, Lookup, WatchedDir};
pub use redact::Redaction;
pub use staged::StagedPaths;
pub use store::{ContentStore, Limits, SnapshotReport};

/// Files larger than this (16 MiB) are hashed but not stored, so they have no last known content.
pub const MAX_BLOB_BYTES: u64 = 16 * 1024 * 1024;

/// A diff is made only when both sides are at most this many bytes (256 KiB).
pub const DIFF_MAX_BYTES: u64 = 256 * 1024;

/// A diff longer than this many bytes (64 KiB) is cut at a line boundary.
pub const DIFF_MAX_CHARS: usize = 64 * 1024;

/// The set of watched paths.
///
/// Each entry is a file or a directory; a directory watches the files directly inside it, not those in
/// its subdirectories. Matching is lexical (no file system access), so an entry may name a file or
/// directory that does not exist yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchList {
    entries: std::collections::BTreeSet<PathBuf>,
}

impl WatchList {
    /// A list of `paths` (files or directories), each lexically normalised with [`normalize`].
    pub fn new(paths: impl IntoIterator<Item = PathBuf>) -> WatchList {
        WatchList {
            entries: paths.into_iter().map(|p| normalize(&p)).collect(),
        }
    }

    /// The system files an audit agent watches by default. The agent adds its own config and rules paths.
    pub fn default_paths() -> Vec<PathBuf> {
        [
            "/etc/passwd",
            "/etc/shadow",
            "/etc/group",
            "/etc/sudoers",
            "/etc/sudoers.d",
            "/etc/ssh/sshd_config",
            "/etc/crontab",
            "/etc/cron.d",
            "/etc/systemd/system",
            // Not `/lib/systemd/system`: on merged-/usr systems `/lib` is a symbolic link, never followed.
            "/usr/lib/systemd/system",
        ]
        .into_iter()
        .map(PathBuf::from)
        .collect()
    }

    /// Whether `path` is an entry or directly inside one. `path` should be absolute; it is lexically
    /// normalised first.
    pub fn is_watched(&self, path: &Path) -> bool {
        let path = normalize(path);
        self.entries.contains(&path)
            || path
                .parent()
                .is_some_and(|dir| dir != path && self.entries.contains(dir))
    }

    /// The entries, normalised and sorted.
    pub fn entries(&self) -> impl Iterator<Item = &Path> {
        self.entries.iter().map(PathBuf::as_path)
    }
}

/// Lexically normalises `path`: drops `.` components, resolves `..` against the preceding component
/// and removes repeated and trailing slashes. Symbolic links are not followed.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => out.push(component),
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                Some(Component::ParentDir | Component::CurDir) | None => out.push(".."),
            },
            Component::Normal(name) => out.push(name),
        }
    }
    out
}

/// What happened to a watched file, as seen by one [`ContentStore::observe`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileChange {
    /// The watched file (normalised).
    pub path: PathBuf,
    /// SHA-256 (lower-case hex) of the previous content; `None` if the file was not known before.
    pub old_sha256: Option<String>,
    /// SHA-256 (lower-case hex) of the new content; `None` if the file is gone (deleted or renamed away).
    pub new_sha256: Option<String>,
    /// Size of the new content in bytes (0 when gone).
    pub size: u64,
    /// Permission bits of the new file, `st_mode & 0o7777` (0 when gone).
    pub mode: u32,
    /// Owner of the new file (0 when gone).
    pub uid: u32,
    /// Group of the new file (0 when gone).
    pub gid: u32,
    /// Permission bits of the previous version, as recorded; `None` if the file was not known before.
    pub old_mode: Option<u32>,
    /// Owner of the previous version, as recorded; `None` if the file was not known before.
    pub old_uid: Option<u32>,
    /// Group of the previous version, as recorded; `None` if the file was not known before.
    pub old_gid: Option<u32>,
    /// Unified diff (3 lines of context, headers `a/<path>` and `b/<path>` with the leading `/` dropped,
    /// `/dev/null` for a side that does not exist) when the content changed, both sides are text (valid
    /// UTF-8 without NUL) and both are at most [`Limits::diff_max_bytes`]; `None` otherwise.
    pub diff: Option<String>,
    /// The diff was longer than [`Limits::diff_max_chars`] bytes and was cut at a line boundary.
    pub diff_truncated: bool,
    /// The file is secret ([`Redaction`]): `diff` is `None` whatever the content.
    pub redacted: bool,
    /// For a redacted text file in `name:…` line format (shadow, gshadow, passwd-like) whose sides
    /// qualify for a diff: the names whose lines were added, removed or changed, sorted. Empty otherwise.
    pub changed_entries: Vec<String>,
    /// The path, or a directory on it, is now a symbolic link pointing here (as written; never followed).
    /// The new side is then "gone": `new_sha256` is `None`.
    pub link_target: Option<String>,
}

/// The kind of a [`FileChange`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// The file was not known before and exists now.
    Created,
    /// The content changed.
    Modified,
    /// The content is the same; mode, owner or group changed.
    MetadataChanged,
    /// The file was known and is gone.
    Deleted,
    /// The path, or a directory on it, is now a symbolic link.
    Link,
}

impl FileChange {
    /// Classifies the change from its hashes.
    pub fn kind(&self) -> ChangeKind {
        if self.link_target.is_some() {
            return ChangeKind::Link;
        }
        match (&self.old_sha256, &self.new_sha256) {
            // A symbolic link that is gone.
            (None, None) => ChangeKind::Deleted,
            (None, Some(_)) => ChangeKind::Created,
            (Some(_), None) => ChangeKind::Deleted,
            (Some(old), Some(new)) if old == new => ChangeKind::MetadataChanged,
            (Some(_), Some(_)) => ChangeKind::Modified,
        }
    }
}

/// A watched file or the content store could not be read or written.
///
/// `path` is always the watched file (or the store path the call was about); store files are named too.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// A content store directory could not be created or secured.
    #[error("{path}: cannot create content store directory: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The watched file exists but could not be read.
    #[error("{path}: cannot read watched file: {source}")]
    Read {
        /// The watched file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The watched path is a directory, FIFO, socket or device, not a regular file.
    #[error("{path}: not a regular file")]
    NotRegularFile {
        /// The watched path.
        path: PathBuf,
    },
    /// A watched directory could not be listed.
    #[error("{path}: cannot list watched directory: {source}")]
    ListDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The new content could not be stored; the previous index entry is intact.
    #[error("{path}: cannot store content in {blob}: {source}")]
    WriteBlob {
        /// The watched file.
        path: PathBuf,
        /// The blob file.
        blob: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A stored content blob could not be read.
    #[error("{path}: cannot read stored content {blob}: {source}")]
    ReadBlob {
        /// The watched file (or the blob, when read by hash).
        path: PathBuf,
        /// The blob file.
        blob: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A stored content blob does not hash to its name.
    #[error("{path}: stored content {blob} is corrupt (hash mismatch)")]
    CorruptBlob {
        /// The watched file (or the blob, when read by hash).
        path: PathBuf,
        /// The blob file.
        blob: PathBuf,
    },
    /// An index entry could not be read, written or removed.
    #[error("{path}: cannot access index entry {index}: {source}")]
    Index {
        /// The watched file.
        path: PathBuf,
        /// The index entry file.
        index: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `watch.redact` entry is not an absolute path or not a valid glob.
    #[error("watch.redact: `{pattern}`: {message}")]
    RedactPattern {
        /// The entry.
        pattern: String,
        /// What is wrong.
        message: String,
    },
    /// An index entry is not valid JSON of the expected shape.
    #[error("{path}: index entry {index} is corrupt: {message}")]
    CorruptIndex {
        /// The watched file.
        path: PathBuf,
        /// The index entry file.
        index: PathBuf,
        /// The parser's message.
        message: String,
    },
}
