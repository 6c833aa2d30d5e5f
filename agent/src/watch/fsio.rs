//! File system primitives of the content store: reading a watched file with its hash and metadata in one
//! pass, atomic writes, and private directories.
//!
//! An atomic write never leaves a partly written file under its final name: it writes a temporary file in
//! the same directory, syncs it, renames it over the target and syncs the directory. Nothing here ever
//! blocks on a FIFO, follows a path twice or follows a symbolic link on a watched path: a watched file is
//! opened once, through its directory opened without following links (see `nofollow.rs`) and with
//! `O_NOFOLLOW`, and everything is read from that descriptor.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::watch::nofollow::{Lookup, WatchedDir};

/// Prefix of temporary files; files with it are leftovers of an interrupted write.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// Lower-case hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `name` looks like a SHA-256 hex digest as this store writes them (64 lower-case hex digits).
pub(crate) fn is_sha256_hex(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A watched file as read now.
#[derive(Debug)]
pub(crate) struct Current {
    /// Hex SHA-256 of the content.
    pub(crate) sha256: String,
    /// Bytes read.
    pub(crate) size: u64,
    /// `st_mode & 0o7777`.
    pub(crate) mode: u32,
    /// Owner.
    pub(crate) uid: u32,
    /// Group.
    pub(crate) gid: u32,
    /// The content, when it is at most the blob limit.
    pub(crate) content: Option<Vec<u8>>,
}

/// What reading a watched file found.
#[derive(Debug)]
pub(crate) enum ReadOutcome {
    /// No file at the path (or a parent is not a directory).
    Gone,
    /// A regular file.
    File(Current),
    /// Something that is not a regular file.
    NotRegular,
    /// The path, or a directory on it, is a symbolic link pointing here (not followed).
    Link(String),
}

/// Reads `path` once, never through a symbolic link: hashes all of it and keeps the bytes when there are
/// at most `keep_max` of them.
pub(crate) fn read_current(path: &Path, keep_max: u64) -> std::io::Result<ReadOutcome> {
    let dir = match WatchedDir::lookup(path)? {
        Lookup::Dir(dir) => dir,
        Lookup::Gone => return Ok(ReadOutcome::Gone),
        Lookup::Link(link) => return Ok(ReadOutcome::Link(link.target)),
    };
    // O_NONBLOCK: opening a FIFO planted at a watched path must not block the agent.
    let file = match dir.open_file() {
        Ok(file) => file,
        Err(err) if is_gone(&err) => return Ok(ReadOutcome::Gone),
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
            return match dir.link()? {
                Some(link) => Ok(ReadOutcome::Link(link.target)),
                // The link was replaced between the open and the look: report the error, look again later.
                None => Err(err),
            };
        }
        Err(err) => return Err(err),
    };
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Ok(ReadOutcome::NotRegular);
    }
    let mut hasher = Sha256::new();
    let mut content = Some(Vec::with_capacity(
        usize::try_from(meta.len().min(keep_max)).unwrap_or(0),
    ));
    let mut size: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let mut reader = &file;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        hasher.update(chunk);
        size = size.saturating_add(n as u64);
        if size > keep_max {
            content = None;
        } else if let Some(kept) = content.as_mut() {
            kept.extend_from_slice(chunk);
        }
    }
    Ok(ReadOutcome::File(Current {
        sha256: hex::encode(hasher.finalize()),
        size,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        content,
    }))
}

/// Whether an open error means "there is no file there".
pub(crate) fn is_gone(err: &std::io::Error) -> bool {
    err.kind() == ErrorKind::NotFound || err.raw_os_error() == Some(libc::ENOTDIR)
}

/// Creates `dir` (and parents) if needed and makes it private (0700).
pub(crate) fn private_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, Permissions::from_mode(0o700))
}

/// Writes `bytes` to `dir/name` atomically with mode 0600.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let temp = dir.join(format!(
        "{TEMP_PREFIX}{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, dir.join(name))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        // Best effort: the write already failed, and a leftover is removed at the next open.
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Removes `dir/name` (absent is fine) and syncs the directory.
pub(crate) fn remove_durably(dir: &Path, name: &str) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(name)) {
        Ok(()) => sync_dir(dir),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

/// Removes temporary files left in `dir` by an interrupted write. Best effort.
pub(crate) fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
