//! Restoring a watched config file to known-good content from the content store.
//!
//! The file's directory may be writable by the user whose change is being undone, so a rollback never
//! follows a symbolic link and never trusts a name in that directory: the directory is opened once
//! without following links (a link on the path, or at the file itself, is refused and reported), the
//! content goes to a new file created there under a random name with `O_CREAT|O_EXCL|O_NOFOLLOW` and
//! mode 0600, which gets the known-good version's recorded owner and mode through its descriptor, is
//! synced and renamed over the file within that directory (readers see the old or the restored file,
//! never a mix), and the directory is synced. On failure the temporary name is removed. The restored
//! content is then recorded in the content store, so the store's last known content is what is on disk.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::Mode;
use nix::unistd::{UnlinkatFlags, fsync, unlinkat};
use sha2::{Digest, Sha256};

use crate::watch::{ContentStore, LinkOnPath, Lookup, WatchedDir};

/// Prefix of the temporary file a rollback writes next to the file it restores.
const TEMP_PREFIX: &str = ".auditloop-rollback-";

/// How many random temporary names are tried before giving up (each clash means someone planted a name).
const TEMP_ATTEMPTS: usize = 8;

/// The version to restore, as the content store recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownGood<'a> {
    /// SHA-256 of its content.
    pub sha256: &'a str,
    /// Its permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Its owner.
    pub uid: u32,
    /// Its group.
    pub gid: u32,
}

/// What a rollback did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    /// SHA-256 of the content replaced (`None` if the file was gone).
    pub before: Option<String>,
    /// SHA-256 of the restored content.
    pub after: String,
}

/// Why a rollback failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RollbackError {
    /// The store has no content with that hash.
    #[error("{path}: no stored content {sha256} to roll back to")]
    NoContent {
        /// The file.
        path: String,
        /// The wanted hash.
        sha256: String,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] crate::watch::WatchError),
    /// The file itself is a symbolic link.
    #[error(
        "{path}: refused: the file is a symbolic link (to {target}); rollback never follows symbolic links"
    )]
    FileIsLink {
        /// The file.
        path: String,
        /// Where the link points.
        target: String,
    },
    /// A directory on the file's path is a symbolic link.
    #[error(
        "{path}: refused: {link}, a directory on the path, is a symbolic link (to {target}); rollback never follows symbolic links"
    )]
    DirIsLink {
        /// The file.
        path: String,
        /// The directory that is a link.
        link: String,
        /// Where the link points.
        target: String,
    },
    /// Writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Restores `path` to the stored content `good`, with its recorded owner and mode.
pub fn rollback(
    store: &mut ContentStore,
    path: &Path,
    good: &KnownGood<'_>,
) -> Result<Restored, RollbackError> {
    let name = path.display().to_string();
    let io = |source| RollbackError::Io {
        path: name.clone(),
        source,
    };
    let content = store
        .blob(good.sha256)?
        .ok_or_else(|| RollbackError::NoContent {
            path: name.clone(),
            sha256: good.sha256.to_owned(),
        })?;
    let dir = match WatchedDir::lookup(path).map_err(io)? {
        Lookup::Dir(dir) => dir,
        Lookup::Gone => return Err(io(std::io::ErrorKind::NotFound.into())),
        Lookup::Link(LinkOnPath { link, target }) => {
            return Err(RollbackError::DirIsLink {
                path: name,
                link: link.display().to_string(),
                target,
            });
        }
    };
    if let Some(link) = dir.link().map_err(io)? {
        return Err(RollbackError::FileIsLink {
            path: name,
            target: link.target,
        });
    }
    let before = current_sha256(&dir).map_err(io)?;
    let (file, temp) = create_temp(&dir).map_err(io)?;
    let replaced = write_restored(file, &content, good)
        .and_then(|()| {
            renameat(dir.fd(), temp.as_os_str(), dir.fd(), dir.name()).map_err(Into::into)
        })
        .and_then(|()| fsync(dir.fd()).map_err(Into::into));
    if let Err(err) = replaced {
        // Best effort: the rollback already failed; the name is gone if the rename happened.
        let _ = unlinkat(dir.fd(), temp.as_os_str(), UnlinkatFlags::NoRemoveDir);
        return Err(io(err));
    }
    // The agent's own writes are not captured, so tell the store what is on disk now; otherwise the
    // store would go on calling the undone content "last known" and a later rollback would restore it.
    if let Err(err) = store.observe(path) {
        tracing::warn!("{err}; the content store does not know the restored content yet");
    }
    Ok(Restored {
        before,
        after: hex::encode(Sha256::digest(&content)),
    })
}

/// SHA-256 of the regular file at `dir`'s name now; `None` when there is none.
fn current_sha256(dir: &WatchedDir) -> std::io::Result<Option<String>> {
    let mut file = match dir.open_file() {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    if !file.metadata()?.file_type().is_file() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(Some(hex::encode(Sha256::digest(&bytes))))
}

/// Creates a new, empty temporary file in `dir` under a random name, never following a link and never
/// reusing a name that exists, readable by its owner only (0600 whatever the umask lets through, never
/// more). Returns it and its name.
fn create_temp(dir: &WatchedDir) -> std::io::Result<(File, OsString)> {
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut last = Errno::EEXIST;
    for _ in 0..TEMP_ATTEMPTS {
        let name = OsString::from(format!("{TEMP_PREFIX}{}", random_hex()?));
        match openat(
            dir.fd(),
            name.as_os_str(),
            flags,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(fd) => return Ok((File::from(fd), name)),
            Err(errno @ Errno::EEXIST) => last = errno,
            Err(errno) => return Err(errno.into()),
        }
    }
    Err(last.into())
}

/// Writes `content` to `file`, gives it the recorded owner, then the recorded mode (after the owner,
/// which clears set-id bits), and syncs it.
fn write_restored(mut file: File, content: &[u8], good: &KnownGood<'_>) -> std::io::Result<()> {
    file.write_all(content)?;
    std::os::unix::fs::fchown(file.as_fd(), Some(good.uid), Some(good.gid))?;
    file.set_permissions(std::fs::Permissions::from_mode(good.mode & 0o7777))?;
    file.sync_all()
}

/// 128 random bits from the kernel, as hex.
fn random_hex() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the buffer it is given.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if usize::try_from(n).ok() != Some(bytes.len()) {
        return Err(std::io::Error::last_os_error());
    }
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use nix::sys::stat::{Mode, umask};

    use super::{KnownGood, RollbackError, create_temp, rollback};
    use crate::watch::{ContentStore, Lookup, WatchedDir};

    #[test]
    fn restores_byte_for_byte_keeping_mode() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ContentStore::open(&dir.path().join("content")).unwrap();
        let file = dir.path().join("sshd_config");
        std::fs::write(&file, b"PermitRootLogin no\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let first = store.observe(&file).unwrap().unwrap();
        std::fs::write(&file, b"PermitRootLogin yes\n").unwrap();
        let change = store.observe(&file).unwrap().unwrap();
        let good = change.old_sha256.clone().unwrap();
        assert_eq!(first.new_sha256.as_deref(), Some(good.as_str()));
        let restored = rollback(&mut store, &file, &known_good(&change)).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"PermitRootLogin no\n");
        assert_eq!(restored.after, good);
        assert_eq!(restored.before, change.new_sha256);
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let zero = "0".repeat(64);
        assert!(matches!(
            rollback(
                &mut store,
                &file,
                &KnownGood {
                    sha256: &zero,
                    ..known_good(&change)
                }
            ),
            Err(RollbackError::NoContent { .. })
        ));
    }

    fn known_good(change: &crate::watch::FileChange) -> KnownGood<'_> {
        KnownGood {
            sha256: change.old_sha256.as_deref().unwrap(),
            mode: change.old_mode.unwrap(),
            uid: change.old_uid.unwrap(),
            gid: change.old_gid.unwrap(),
        }
    }

    #[test]
    fn a_deleted_file_comes_back_with_its_recorded_mode() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ContentStore::open(&dir.path().join("content")).unwrap();
        let file = dir.path().join("sudoers");
        std::fs::write(&file, b"root ALL=(ALL) ALL\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o440)).unwrap();
        store.observe(&file).unwrap();
        std::fs::remove_file(&file).unwrap();
        let change = store.observe(&file).unwrap().unwrap();
        assert_eq!(change.old_mode, Some(0o440));
        let restored = rollback(&mut store, &file, &known_good(&change)).unwrap();
        assert_eq!(restored.before, None);
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o440);
        assert_eq!(
            (meta.uid(), meta.gid()),
            (change.old_uid.unwrap(), change.old_gid.unwrap())
        );
    }

    #[test]
    fn the_store_knows_the_restored_content() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ContentStore::open(&dir.path().join("content")).unwrap();
        let file = dir.path().join("crontab");
        std::fs::write(&file, b"good\n").unwrap();
        store.observe(&file).unwrap();
        std::fs::write(&file, b"bad\n").unwrap();
        let change = store.observe(&file).unwrap().unwrap();
        rollback(&mut store, &file, &known_good(&change)).unwrap();
        // Nothing changed since the rollback, and the last known content is the restored one.
        assert_eq!(store.observe(&file).unwrap(), None);
        assert_eq!(store.last_known(&file).unwrap().unwrap(), b"good\n");
    }

    #[test]
    fn links_are_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ContentStore::open(&dir.path().join("content")).unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("conf"), b"outside\n").unwrap();
        let conf = dir.path().join("etc");
        std::fs::create_dir(&conf).unwrap();
        let file = conf.join("conf");
        std::fs::write(&file, b"good\n").unwrap();
        store.observe(&file).unwrap();
        std::fs::write(&file, b"bad\n").unwrap();
        let change = store.observe(&file).unwrap().unwrap();
        let good = known_good(&change);

        // The file itself replaced by a link.
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink(outside.join("conf"), &file).unwrap();
        let err = rollback(&mut store, &file, &good).unwrap_err();
        assert!(matches!(err, RollbackError::FileIsLink { .. }), "{err}");
        assert!(err.to_string().contains("is a symbolic link"), "{err}");
        std::fs::remove_file(&file).unwrap();

        // The directory replaced by a link.
        std::fs::rename(&conf, dir.path().join("etc.old")).unwrap();
        std::os::unix::fs::symlink(&outside, &conf).unwrap();
        let err = rollback(&mut store, &file, &good).unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "{}, a directory on the path, is a symbolic link",
                conf.display()
            )),
            "{err}"
        );
        assert_eq!(std::fs::read(outside.join("conf")).unwrap(), b"outside\n");
        let names: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
        assert_eq!(names.len(), 1, "nothing created behind the link");
    }

    #[test]
    fn the_temp_file_is_private_under_the_default_umask() {
        let dir = tempfile::tempdir().unwrap();
        let Lookup::Dir(watched) = WatchedDir::lookup(&dir.path().join("sshd_config")).unwrap()
        else {
            panic!("the temp dir is reachable without links");
        };
        let old = umask(Mode::from_bits_truncate(0o022));
        let created = create_temp(&watched);
        umask(old);
        let (file, name) = created.unwrap();
        assert_eq!(file.metadata().unwrap().mode() & 0o777, 0o600);
        assert!(name.to_string_lossy().starts_with(".auditloop-rollback-"));
        // A second one gets another (random) name.
        let (_, other) = create_temp(&watched).unwrap();
        assert_ne!(name, other);
    }
}
