//! Small files replaced atomically and in place: the writes behind `HEAD`, `ANCHOR`, the key file and the
//! shipper's cursor. Once a file and its spare exist, replacing it allocates nothing, so a full disk never
//! stops an update. Depends on nothing else in the crate, so every module may use it.

use std::path::{Path, PathBuf};

use crate::JournalError;

/// `fsync`s a directory (after creating, renaming or removing files in it).
pub fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| JournalError::io(dir, e))
}

/// Replaces `path` with `bytes` padded with spaces to `len`, atomically and without allocating once
/// the files exist: the content is written in place into the spare `path.tmp` (created 0600, never
/// through a symlink), then the two are exchanged with `renameat2(RENAME_EXCHANGE)` (a plain rename the
/// first time). Returns the spare's path, which now holds the previous content.
pub fn replace_fixed(
    path: &Path,
    bytes: &[u8],
    len: usize,
    sync: bool,
) -> Result<PathBuf, JournalError> {
    if bytes.len() > len {
        return Err(JournalError::Encode(format!(
            "{}: {} bytes do not fit its fixed size of {len}",
            path.display(),
            bytes.len()
        )));
    }
    let mut padded = zeroize::Zeroizing::new(Vec::with_capacity(len));
    padded.extend_from_slice(bytes);
    padded.resize(len, b' ');
    let spare = spare_path(path);
    write_in_place(&spare, &padded, sync)?;
    match nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        &spare,
        nix::fcntl::AT_FDCWD,
        path,
        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
    ) {
        Ok(()) => {}
        Err(nix::errno::Errno::ENOENT) => {
            std::fs::rename(&spare, path).map_err(|e| JournalError::io(path, e))?;
            // Allocate the spare now, while there is space, for every later replacement.
            write_in_place(&spare, &vec![b' '; len], sync)?;
        }
        Err(e) => return Err(JournalError::io(path, std::io::Error::from(e))),
    }
    if sync && let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(spare)
}

/// The spare beside `path` that [`replace_fixed`] writes into.
pub fn spare_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Overwrites `path` (created 0600 if missing, never through a symlink) with `bytes` from offset 0; cuts
/// it to their length only when it was longer.
pub fn write_in_place(path: &Path, bytes: &[u8], sync: bool) -> Result<(), JournalError> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(|e| JournalError::io(path, e))?;
    file.write_all_at(bytes, 0)
        .map_err(|e| JournalError::io(path, e))?;
    let on_disk = file
        .metadata()
        .map_err(|e| JournalError::io(path, e))?
        .len();
    if on_disk > bytes.len() as u64 {
        file.set_len(bytes.len() as u64)
            .map_err(|e| JournalError::io(path, e))?;
    }
    if sync {
        file.sync_all().map_err(|e| JournalError::io(path, e))?;
    }
    Ok(())
}
