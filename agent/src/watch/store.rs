//! The content store: the last known content and metadata of every watched file, kept on disk so that it
//! survives an agent restart and a file can later be rolled back byte-for-byte.
//!
//! Layout under the store's root (directories 0700, files 0600, since it holds copies of `/etc/shadow`):
//! - `blobs/<sha256 hex>`: content, addressed by its hash, written atomically and never deleted;
//! - `index/<sha256 hex of the path bytes>`: one small JSON entry per known file (see `index.rs`), written
//!   atomically after the blob it names, removed when the file is gone.
//!
//! The store never loses the last known good content: when storing a new blob fails, the previous index
//! entry is left as it was and the error is returned, so the next observation compares against the same
//! old content again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::watch::diff::{as_text, unified};
use crate::watch::fsio::{self, Current, ReadOutcome};
use crate::watch::index::{Index, IndexEntry};
use crate::watch::{
    DIFF_MAX_BYTES, DIFF_MAX_CHARS, FileChange, MAX_BLOB_BYTES, WatchError, WatchList, normalize,
};

/// Size limits of a [`ContentStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Larger files are hashed but not stored: [`ContentStore::last_known`] returns `None` for them and
    /// they cannot be rolled back. Default [`MAX_BLOB_BYTES`].
    pub max_blob_bytes: u64,
    /// A diff is made only when both sides are at most this many bytes. Default [`DIFF_MAX_BYTES`].
    pub diff_max_bytes: u64,
    /// Longer diffs are cut at a line boundary. Default [`DIFF_MAX_CHARS`].
    pub diff_max_chars: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_blob_bytes: MAX_BLOB_BYTES,
            diff_max_bytes: DIFF_MAX_BYTES,
            diff_max_chars: DIFF_MAX_CHARS,
        }
    }
}

/// What [`ContentStore::snapshot_all`] found.
#[derive(Debug, Default)]
pub struct SnapshotReport {
    /// Paths examined: existing watched files plus known files that may have gone.
    pub examined: usize,
    /// Whether the store knew no file before (a first start: every file then shows as created).
    pub was_empty: bool,
    /// Files that differ from what the store last knew (changed while the agent was not running).
    pub changes: Vec<FileChange>,
    /// Files or directories that could not be examined; the others were.
    pub failures: Vec<WatchError>,
}

/// The last known content of watched files, on disk under one root directory.
#[derive(Debug)]
pub struct ContentStore {
    blobs: PathBuf,
    index: Index,
    limits: Limits,
}

impl ContentStore {
    /// Opens (creating with mode 0700 if needed) the store at `root`, e.g. `<state_dir>/content`, with
    /// the default [`Limits`].
    pub fn open(root: &Path) -> Result<ContentStore, WatchError> {
        ContentStore::open_with_limits(root, Limits::default())
    }

    /// Opens the store at `root` with `limits`. Removes temporary files left by an interrupted write.
    pub fn open_with_limits(root: &Path, limits: Limits) -> Result<ContentStore, WatchError> {
        let blobs = root.join("blobs");
        let index = root.join("index");
        for dir in [root, &blobs, &index] {
            fsio::private_dir(dir).map_err(|source| WatchError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
            fsio::remove_leftovers(dir);
        }
        Ok(ContentStore {
            blobs,
            index: Index::new(index),
            limits,
        })
    }

    /// Snapshots every watched file that exists now (at agent start), so that the first change has an
    /// "old" side, and reports files that changed or went away since the store last saw them.
    ///
    /// A file or directory that cannot be read is reported in [`SnapshotReport::failures`] and the
    /// others are still snapshotted.
    pub fn snapshot_all(&mut self, list: &WatchList) -> SnapshotReport {
        let mut report = SnapshotReport::default();
        let mut paths = BTreeSet::new();
        for entry in list.entries() {
            match std::fs::metadata(entry) {
                Ok(meta) if meta.is_dir() => match std::fs::read_dir(entry) {
                    Ok(children) => paths.extend(
                        children
                            .flatten()
                            .map(|child| child.path())
                            .filter(|child| child.is_file()),
                    ),
                    Err(source) => report.failures.push(WatchError::ListDir {
                        path: entry.to_owned(),
                        source,
                    }),
                },
                Ok(_) => {
                    paths.insert(entry.to_owned());
                }
                Err(err) if fsio::is_gone(&err) => {}
                Err(source) => report.failures.push(WatchError::Read {
                    path: entry.to_owned(),
                    source,
                }),
            }
        }
        let known = self.index.known_paths();
        report.was_empty = known.is_empty();
        // Known files that are still watched: observing them reports those deleted while we were down.
        paths.extend(known.into_iter().filter(|path| list.is_watched(path)));
        for path in paths {
            report.examined += 1;
            match self.observe(&path) {
                Ok(Some(change)) => report.changes.push(change),
                Ok(None) => {}
                Err(err) => report.failures.push(err),
            }
        }
        report
    }

    /// The file at `path` may have changed: reads it now, compares it with the last known content and
    /// metadata, stores the new state and describes the change. `None` when neither content nor
    /// metadata changed, or when the file is absent and was not known.
    ///
    /// A file that disappeared before it could be read is a change to "gone" (its index entry is
    /// removed; its content stays available through [`ContentStore::blob`]). A corrupt index entry is
    /// logged and treated as unknown, so the file is reported as created.
    pub fn observe(&mut self, path: &Path) -> Result<Option<FileChange>, WatchError> {
        let path = normalize(path);
        let old = self.index.get(&path).unwrap_or_else(|err| {
            tracing::warn!("{err}; treating the file as not known before");
            None
        });
        let current = match fsio::read_current(&path, self.limits.max_blob_bytes) {
            Ok(ReadOutcome::File(current)) => Some(current),
            Ok(ReadOutcome::Gone) => None,
            Ok(ReadOutcome::NotRegular) => return Err(WatchError::NotRegularFile { path }),
            Err(source) => return Err(WatchError::Read { path, source }),
        };
        match (old, current) {
            (None, None) => Ok(None),
            (Some(old), None) => {
                self.index.remove(&path)?;
                let diff = self.old_text(&path, &old).map(|old| (Some(old), None));
                Ok(Some(self.describe(path, Some(old.sha256), None, diff)))
            }
            (old, Some(current)) => {
                if let Some(old) = &old
                    && self.up_to_date(old, &current)
                {
                    return Ok(None);
                }
                self.store(&path, &current)?;
                let Some(old) = old else {
                    let diff = self.new_text(&current).map(|new| (None, Some(new)));
                    return Ok(Some(self.describe(path, None, Some(&current), diff)));
                };
                if old.sha256 == current.sha256 {
                    // Same content: a metadata change, or only the stored blob was repaired.
                    let same_meta =
                        (old.mode, old.uid, old.gid) == (current.mode, current.uid, current.gid);
                    return Ok((!same_meta)
                        .then(|| self.describe(path, Some(old.sha256), Some(&current), None)));
                }
                let diff = (self.old_text(&path, &old))
                    .zip(self.new_text(&current))
                    .map(|(old, new)| (Some(old), Some(new)));
                Ok(Some(self.describe(
                    path,
                    Some(old.sha256),
                    Some(&current),
                    diff,
                )))
            }
        }
    }

    /// The last known content of `path`, for rollback. `None` when the file is not known, is gone, or
    /// was larger than [`Limits::max_blob_bytes`] (hashed but not stored). The content is checked
    /// against its hash.
    pub fn last_known(&self, path: &Path) -> Result<Option<Vec<u8>>, WatchError> {
        let path = normalize(path);
        match self.index.get(&path)? {
            Some(entry) if entry.stored => self.read_blob(&path, &entry.sha256).map(Some),
            Some(_) | None => Ok(None),
        }
    }

    /// The stored content whose SHA-256 is `sha256` (e.g. a [`FileChange::old_sha256`]), checked
    /// against its hash. `None` when no such content is stored (including when `sha256` is not a
    /// lower-case hex digest).
    pub fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>, WatchError> {
        if !fsio::is_sha256_hex(sha256) {
            return Ok(None);
        }
        let blob = self.blobs.join(sha256);
        match self.read_blob(&blob, sha256) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(WatchError::ReadBlob { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// Writes the blob (if storable and not already present) and then the index entry.
    fn store(&self, path: &Path, current: &Current) -> Result<(), WatchError> {
        if let Some(content) = &current.content {
            let blob = self.blobs.join(&current.sha256);
            let present = std::fs::metadata(&blob).is_ok_and(|m| m.len() == current.size);
            if !present {
                fsio::write_atomic(&self.blobs, &current.sha256, content).map_err(|source| {
                    WatchError::WriteBlob {
                        path: path.to_owned(),
                        blob,
                        source,
                    }
                })?;
            }
        }
        self.index.put(path, &IndexEntry::of(path, current))
    }

    /// Reads the blob `sha256` and checks its hash; `path` names the watched file in errors.
    fn read_blob(&self, path: &Path, sha256: &str) -> Result<Vec<u8>, WatchError> {
        let blob = self.blobs.join(sha256);
        match std::fs::read(&blob) {
            Ok(bytes) if fsio::sha256_hex(&bytes) == sha256 => Ok(bytes),
            Ok(_) => Err(WatchError::CorruptBlob {
                path: path.to_owned(),
                blob,
            }),
            Err(source) => Err(WatchError::ReadBlob {
                path: path.to_owned(),
                blob,
                source,
            }),
        }
    }

    /// Whether `old` describes `current` exactly and its blob (if any) is in place.
    fn up_to_date(&self, old: &IndexEntry, current: &Current) -> bool {
        let stored = current.content.is_some();
        old.sha256 == current.sha256
            && (old.size, old.mode, old.uid, old.gid)
                == (current.size, current.mode, current.uid, current.gid)
            && old.stored == stored
            && (!stored
                || std::fs::metadata(self.blobs.join(&old.sha256))
                    .is_ok_and(|m| m.len() == old.size))
    }

    /// The old content as text, if it is stored, small enough to diff and text.
    fn old_text(&self, path: &Path, old: &IndexEntry) -> Option<String> {
        if !old.stored || old.size > self.limits.diff_max_bytes {
            return None;
        }
        let bytes = self
            .read_blob(path, &old.sha256)
            .map_err(|err| tracing::warn!("{err}; no diff"))
            .ok()?;
        String::from_utf8(bytes)
            .ok()
            .filter(|text| as_text(text.as_bytes()).is_some())
    }

    /// The new content as text, if it is small enough to diff and text.
    fn new_text<'a>(&self, current: &'a Current) -> Option<&'a str> {
        if current.size > self.limits.diff_max_bytes {
            return None;
        }
        as_text(current.content.as_deref()?)
    }

    /// Builds the change record; `sides` are the texts to diff when both sides qualify.
    fn describe(
        &self,
        path: PathBuf,
        old_sha256: Option<String>,
        current: Option<&Current>,
        sides: Option<(Option<String>, Option<&str>)>,
    ) -> FileChange {
        let (diff, diff_truncated) = match sides {
            Some((old, new)) => {
                let (text, cut) = unified(&path, old.as_deref(), new, self.limits.diff_max_chars);
                (Some(text), cut)
            }
            None => (None, false),
        };
        FileChange {
            old_sha256,
            new_sha256: current.map(|c| c.sha256.clone()),
            size: current.map_or(0, |c| c.size),
            mode: current.map_or(0, |c| c.mode),
            uid: current.map_or(0, |c| c.uid),
            gid: current.map_or(0, |c| c.gid),
            diff,
            diff_truncated,
            path,
        }
    }
}
