//! Restoring a watched config file to known-good content from the content store: written to a temporary
//! file in the same directory with the current owner and mode, synced, then renamed over the file, so
//! readers see either the old or the restored file, never a mix.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::watch::ContentStore;

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
    /// Writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Restores `path` to the stored content with hash `good_sha256`.
pub fn rollback(
    store: &ContentStore,
    path: &Path,
    good_sha256: &str,
) -> Result<Restored, RollbackError> {
    let name = path.display().to_string();
    let io = |source| RollbackError::Io {
        path: name.clone(),
        source,
    };
    let content = store
        .blob(good_sha256)?
        .ok_or_else(|| RollbackError::NoContent {
            path: name.clone(),
            sha256: good_sha256.to_owned(),
        })?;
    let before = std::fs::read(path)
        .ok()
        .map(|b| hex::encode(Sha256::digest(&b)));
    let meta = std::fs::metadata(path).ok();
    let dir = path.parent().unwrap_or(Path::new("/"));
    let tmp = dir.join(format!(
        ".{}.auditloop-rollback",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(&content).map_err(io)?;
    if let Some(meta) = &meta {
        f.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(io)?;
        std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid())).map_err(io)?;
    }
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(Restored {
        before,
        after: hex::encode(Sha256::digest(&content)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let restored = rollback(&store, &file, &good).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"PermitRootLogin no\n");
        assert_eq!(restored.after, good);
        assert_eq!(restored.before, change.new_sha256);
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert!(matches!(
            rollback(&store, &file, &"0".repeat(64)),
            Err(RollbackError::NoContent { .. })
        ));
    }
}
