//! Bearer tokens in files, as the collector and the agent read them: one line, mode 0600.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::TestkitError;

/// A fresh random token: 32 bytes from the OS, in hex.
pub fn random_token() -> Result<String, TestkitError> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(TestkitError::io("reading /dev/urandom"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `token` to `path` (replacing it), mode 0600.
pub fn write_token(path: &Path, token: &str) -> Result<(), TestkitError> {
    let what = format!("writing {}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(TestkitError::io(what.clone()))?;
    file.write_all(format!("{token}\n").as_bytes())
        .map_err(TestkitError::io(what))
}

/// The token in `path`, writing `token` there first when the file does not exist (so a restart in the same
/// directory keeps its tokens, and collectors started together in one directory, replicas of one cluster,
/// all read the token of whichever wrote first: the file is written beside and linked into place, so a
/// reader sees no file or the whole token, never a partial one).
pub fn keep_or_write(path: &Path, token: &str) -> Result<String, TestkitError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    if !path.exists() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let staged = path.with_file_name(format!(
            ".{name}.{}.{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        write_token(&staged, token)?;
        let linked = std::fs::hard_link(&staged, path);
        let _ = std::fs::remove_file(&staged);
        match linked {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(TestkitError::Io {
                    what: format!("writing {}", path.display()),
                    source: e,
                });
            }
            _ => {}
        }
    }
    let text = std::fs::read_to_string(path)
        .map_err(TestkitError::io(format!("reading {}", path.display())))?;
    Ok(text.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writers_agree_on_the_first_token() {
        let dir = std::env::temp_dir().join(format!("auditloop-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("admin.token");
        let seen: Vec<String> = std::thread::scope(|scope| {
            let writers: Vec<_> = (0..8)
                .map(|i| {
                    let path = &path;
                    scope.spawn(move || keep_or_write(path, &format!("token-{i}")).unwrap())
                })
                .collect();
            writers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert!(
            seen.iter().all(|t| *t == on_disk.trim()),
            "{seen:?} vs {on_disk:?}"
        );
        // Only the token file is left: the staged copies are gone.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        assert_eq!(keep_or_write(&path, "later").unwrap(), on_disk.trim());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
