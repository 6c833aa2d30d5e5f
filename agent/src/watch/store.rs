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
//! old content again. It keeps the content of secret files too (for rollback), but what it returns about
//! one ([`FileChange`]) carries no content: no diff, only hashes, metadata and changed entry names.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use nix::sys::stat::SFlag;

use crate::watch::diff::{as_text, unified};
use crate::watch::fsio::{self, Current, ReadOutcome};
use crate::watch::index::{Index, IndexEntry};
use crate::watch::nofollow::{Lookup, WatchedDir};
use crate::watch::redact::{Redaction, changed_entries, looks_like_private_key};
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
    redaction: Redaction,
}

impl ContentStore {
    /// Opens (creating with mode 0700 if needed) the store at `root`, e.g. `<state_dir>/content`, with
    /// the default [`Limits`].
    pub fn open(root: &Path) -> Result<ContentStore, WatchError> {
        ContentStore::open_with_limits(root, Limits::default())
    }

    /// Opens the store at `root` with `limits` and the built-in [`Redaction`]. Removes temporary files
    /// left by an interrupted write.
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
            redaction: Redaction::new([])?,
        })
    }

    /// Uses `redaction` to decide which files are secret (the built-in entries are always in it).
    pub fn with_redaction(mut self, redaction: Redaction) -> ContentStore {
        self.redaction = redaction;
        self
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
            // Never through a link: an entry that is (or is behind) one is observed as such, not listed.
            let file_type = match WatchedDir::lookup(entry) {
                Ok(Lookup::Dir(dir)) => dir.file_type(),
                Ok(Lookup::Gone) => Ok(None),
                Ok(Lookup::Link(_)) => Ok(Some(SFlag::S_IFLNK)),
                Err(source) => Err(source),
            };
            match file_type {
                Ok(Some(SFlag::S_IFDIR)) => match std::fs::read_dir(entry) {
                    Ok(children) => paths.extend(
                        children
                            .flatten()
                            .filter(|child| {
                                child
                                    .file_type()
                                    .is_ok_and(|t| t.is_file() || t.is_symlink())
                            })
                            .map(|child| child.path()),
                    ),
                    Err(source) => report.failures.push(WatchError::ListDir {
                        path: entry.to_owned(),
                        source,
                    }),
                },
                Ok(Some(_)) => {
                    paths.insert(entry.to_owned());
                }
                Ok(None) => {}
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

    /// The file at `path` may have changed: reads it now (never through a symbolic link), compares it
    /// with the last known content and metadata, stores the new state and describes the change. `None`
    /// when neither content nor metadata changed, or when the file is absent and was not known.
    ///
    /// A file that disappeared before it could be read is a change to "gone" (its index entry is
    /// removed; its content stays available through [`ContentStore::blob`]). A path that is now a
    /// symbolic link, or behind one, is a change to "gone" with [`FileChange::link_target`] set; the link
    /// is recorded, not followed. A corrupt index entry is logged and treated as unknown, so the file is
    /// reported as created.
    pub fn observe(&mut self, path: &Path) -> Result<Option<FileChange>, WatchError> {
        let path = normalize(path);
        let old = self.index.get(&path).unwrap_or_else(|err| {
            tracing::warn!("{err}; treating the file as not known before");
            None
        });
        let current = match fsio::read_current(&path, self.limits.max_blob_bytes) {
            Ok(ReadOutcome::File(current)) => current,
            Ok(ReadOutcome::Gone) => return self.gone(path, old),
            Ok(ReadOutcome::Link(target)) => return self.link(path, old, target),
            Ok(ReadOutcome::NotRegular) => return Err(WatchError::NotRegularFile { path }),
            Err(source) => return Err(WatchError::Read { path, source }),
        };
        if let Some(old) = &old
            && self.up_to_date(old, &current)
        {
            return Ok(None);
        }
        self.store(&path, &current)?;
        let Some(old) = old.and_then(IndexEntry::content) else {
            let diff = self.new_text(&current).map(|new| (None, Some(new)));
            return Ok(Some(self.describe(path, None, Some(&current), diff)));
        };
        if old.sha256 == current.sha256 {
            // Same content: a metadata change, or only the stored blob was repaired.
            let same_meta =
                (old.mode, old.uid, old.gid) == (current.mode, current.uid, current.gid);
            return Ok((!same_meta).then(|| self.describe(path, Some(&old), Some(&current), None)));
        }
        let diff = (self.old_text(&path, &old))
            .zip(self.new_text(&current))
            .map(|(old, new)| (Some(old), Some(new)));
        Ok(Some(self.describe(path, Some(&old), Some(&current), diff)))
    }

    /// Nothing is at `path` now: forgets it and describes the change, if it was known.
    fn gone(
        &self,
        path: PathBuf,
        old: Option<IndexEntry>,
    ) -> Result<Option<FileChange>, WatchError> {
        let Some(old) = old else {
            return Ok(None);
        };
        self.index.remove(&path)?;
        // A symbolic link that is gone had no content.
        let old = old.content();
        let diff = (old.as_ref())
            .and_then(|old| self.old_text(&path, old))
            .map(|old| (Some(old), None));
        Ok(Some(self.describe(path, old.as_ref(), None, diff)))
    }

    /// `path` is, or is behind, a symbolic link to `target`: records that and describes the change,
    /// unless that link was already known.
    fn link(
        &self,
        path: PathBuf,
        old: Option<IndexEntry>,
        target: String,
    ) -> Result<Option<FileChange>, WatchError> {
        if old.as_ref().and_then(|old| old.link_target.as_deref()) == Some(target.as_str()) {
            return Ok(None);
        }
        self.index.put(&path, &IndexEntry::link(&path, &target))?;
        let old = old.and_then(IndexEntry::content);
        let mut change = self.describe(path, old.as_ref(), None, None);
        change.link_target = Some(target);
        Ok(Some(change))
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
        old.link_target.is_none()
            && old.sha256 == current.sha256
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

    /// Builds the change record; `old` is the previous version's entry (`None`: none with content),
    /// `sides` the texts to diff when both sides qualify. A secret file gets no diff, only the names of
    /// its changed entries.
    fn describe(
        &self,
        path: PathBuf,
        old: Option<&IndexEntry>,
        current: Option<&Current>,
        sides: Option<(Option<String>, Option<&str>)>,
    ) -> FileChange {
        let redacted = self.redaction.covers(&path)
            || current
                .and_then(|c| c.content.as_deref())
                .is_some_and(looks_like_private_key)
            || (sides.as_ref())
                .and_then(|(old, _)| old.as_deref())
                .is_some_and(|old| looks_like_private_key(old.as_bytes()));
        let (diff, diff_truncated, changed_entries) = match sides {
            Some((old, new)) if redacted => (None, false, changed_entries(old.as_deref(), new)),
            Some((old, new)) => {
                let (text, cut) = unified(&path, old.as_deref(), new, self.limits.diff_max_chars);
                (Some(text), cut, Vec::new())
            }
            None => (None, false, Vec::new()),
        };
        FileChange {
            old_sha256: old.map(|o| o.sha256.clone()),
            new_sha256: current.map(|c| c.sha256.clone()),
            size: current.map_or(0, |c| c.size),
            mode: current.map_or(0, |c| c.mode),
            uid: current.map_or(0, |c| c.uid),
            gid: current.map_or(0, |c| c.gid),
            old_mode: old.map(|o| o.mode),
            old_uid: old.map(|o| o.uid),
            old_gid: old.map(|o| o.gid),
            diff,
            diff_truncated,
            redacted,
            changed_entries,
            link_target: None,
            path,
        }
    }
}
