//! The content store's index: for each known file, its hash and metadata, one small JSON file per path
//! under `<root>/index/`, named by the hex SHA-256 of the path's bytes.
//!
//! Every entry is written atomically (temporary file, fsync, rename, directory fsync), so a crash leaves
//! either the previous entry or the new one, never a mix. A garbled entry is reported as an error, never
//! trusted: its hash must be a SHA-256 hex digest before it names a blob. A path that is (or is behind) a
//! symbolic link has an entry too, naming the link's target and no content.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::watch::WatchError;
use crate::watch::fsio::{self, Current};

/// What the store last knew about one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexEntry {
    /// The watched path (the entry's name is the hash of these bytes; a non-UTF-8 path is kept lossily).
    pub(crate) path: String,
    /// Hex SHA-256 of the content.
    pub(crate) sha256: String,
    /// Content size in bytes.
    pub(crate) size: u64,
    /// `st_mode & 0o7777`.
    pub(crate) mode: u32,
    /// Owner.
    pub(crate) uid: u32,
    /// Group.
    pub(crate) gid: u32,
    /// Whether `blobs/<sha256>` holds the content (false above the blob size limit).
    pub(crate) stored: bool,
    /// The path, or a directory on it, is a symbolic link pointing here; the entry then describes no
    /// content (`sha256` is that of the target text, `stored` is false, the metadata is 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) link_target: Option<String>,
}

impl IndexEntry {
    /// The entry describing `current` at `path`.
    pub(crate) fn of(path: &Path, current: &Current) -> IndexEntry {
        IndexEntry {
            path: path.to_string_lossy().into_owned(),
            sha256: current.sha256.clone(),
            size: current.size,
            mode: current.mode,
            uid: current.uid,
            gid: current.gid,
            stored: current.content.is_some(),
            link_target: None,
        }
    }

    /// The entry of a path that is, or is behind, a symbolic link to `target`.
    pub(crate) fn link(path: &Path, target: &str) -> IndexEntry {
        IndexEntry {
            path: path.to_string_lossy().into_owned(),
            sha256: fsio::sha256_hex(target.as_bytes()),
            size: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            stored: false,
            link_target: Some(target.to_owned()),
        }
    }

    /// The entry, if it describes content (not a symbolic link).
    pub(crate) fn content(self) -> Option<IndexEntry> {
        self.link_target.is_none().then_some(self)
    }
}

/// The index directory.
#[derive(Debug)]
pub(crate) struct Index {
    dir: PathBuf,
}

impl Index {
    /// The index in `dir` (which must exist).
    pub(crate) fn new(dir: PathBuf) -> Index {
        Index { dir }
    }

    /// The entry of `path`, if any.
    pub(crate) fn get(&self, path: &Path) -> Result<Option<IndexEntry>, WatchError> {
        let index = self.dir.join(entry_name(path));
        let bytes = match std::fs::read(&index) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(WatchError::Index {
                    path: path.to_owned(),
                    index,
                    source,
                });
            }
        };
        let message = match serde_json::from_slice::<IndexEntry>(&bytes) {
            Ok(entry) if fsio::is_sha256_hex(&entry.sha256) => return Ok(Some(entry)),
            Ok(entry) => format!("`{}` is not a sha256 hex digest", entry.sha256),
            Err(err) => err.to_string(),
        };
        Err(WatchError::CorruptIndex {
            path: path.to_owned(),
            index,
            message,
        })
    }

    /// Replaces the entry of `path` atomically.
    pub(crate) fn put(&self, path: &Path, entry: &IndexEntry) -> Result<(), WatchError> {
        let name = entry_name(path);
        let error = |source| WatchError::Index {
            path: path.to_owned(),
            index: self.dir.join(&name),
            source,
        };
        let json = serde_json::to_vec(entry).map_err(|err| error(err.into()))?;
        fsio::write_atomic(&self.dir, &name, &json).map_err(error)
    }

    /// Removes the entry of `path` (absent is fine).
    pub(crate) fn remove(&self, path: &Path) -> Result<(), WatchError> {
        let name = entry_name(path);
        fsio::remove_durably(&self.dir, &name).map_err(|source| WatchError::Index {
            path: path.to_owned(),
            index: self.dir.join(&name),
            source,
        })
    }

    /// Paths of all readable entries whose name matches their path. Unreadable ones are skipped.
    pub(crate) fn known_paths(&self) -> Vec<PathBuf> {
        let Ok(files) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        files
            .flatten()
            .filter_map(|file| {
                let bytes = std::fs::read(file.path()).ok()?;
                let entry: IndexEntry = serde_json::from_slice(&bytes).ok()?;
                let path = PathBuf::from(entry.path);
                (file.file_name().to_str() == Some(entry_name(&path).as_str())).then_some(path)
            })
            .collect()
    }
}

/// Name of the entry of `path`: the hex SHA-256 of its bytes.
fn entry_name(path: &Path) -> String {
    fsio::sha256_hex(path.as_os_str().as_bytes())
}
