//! Executable identity: the device, inode and SHA-256 of the file a process executes.
//!
//! The file is read through `/proc/<pid>/exe` while the process runs, which is the inode the kernel
//! executed even when its path was renamed, replaced or deleted since; once the process is gone, the
//! canonical path is read instead (and may name another file by then). Hashes are cached by device, inode,
//! size, modification and change time, so a binary executed again costs one `stat`; a changed file (its
//! ctime moves with any write, and no one can set ctime) is hashed again. Files larger than
//! [`MAX_HASHED`] are not hashed.

use std::os::unix::fs::MetadataExt;

use sha2::{Digest, Sha256};

use crate::bounded::BoundedMap;

/// Largest file hashed, in bytes.
pub const MAX_HASHED: u64 = 256 * 1024 * 1024;

/// Most files whose hash is remembered.
const CACHE_CAPACITY: usize = 4096;

/// What identifies an executed file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileIdentity {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub inode: u64,
    /// SHA-256 (hex), when hashed.
    pub sha256: Option<String>,
}

/// The file's version: when any of these change, so may its content.
type Version = (u64, u64, u64, i64, i64, i64, i64);

/// Identities of executed files, with a bounded hash cache.
#[derive(Debug)]
pub struct Identities {
    hashes: BoundedMap<Version, Option<String>>,
}

impl Default for Identities {
    fn default() -> Identities {
        Identities {
            hashes: BoundedMap::new(CACHE_CAPACITY),
        }
    }
}

impl Identities {
    /// The identity of what `pid` executes (through `/proc/<pid>/exe`), or of the file at `path` when the
    /// process is gone; `None` when neither can be opened.
    pub fn of_exec(&mut self, pid: u32, path: &str) -> Option<FileIdentity> {
        let file = std::fs::File::open(format!("/proc/{pid}/exe"))
            .or_else(|_| std::fs::File::open(path))
            .ok()?;
        self.of_file(&file)
    }

    /// The identity of an open file (hashed from this descriptor).
    pub fn of_file(&mut self, file: &std::fs::File) -> Option<FileIdentity> {
        let meta = file.metadata().ok()?;
        if !meta.file_type().is_file() {
            return None;
        }
        let version: Version = (
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
        );
        let sha256 = match self.hashes.get(&version) {
            Some(known) => known.clone(),
            None => {
                let hashed = (meta.size() <= MAX_HASHED).then(|| hash(file)).flatten();
                self.hashes.insert(version, hashed.clone());
                hashed
            }
        };
        Some(FileIdentity {
            dev: meta.dev(),
            inode: meta.ino(),
            sha256,
        })
    }
}

/// SHA-256 (hex) of everything `file` reads from its start.
fn hash(file: &std::fs::File) -> Option<String> {
    use std::os::unix::fs::FileExt;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut offset = 0u64;
    loop {
        let n = match file.read_at(&mut buf, offset) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        };
        hasher.update(buf.get(..n)?);
        offset += n as u64;
    }
    Some(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_cached_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prog");
        std::fs::write(&path, b"first").unwrap();
        let mut ids = Identities::default();
        let one = ids.of_exec(u32::MAX, path.to_str().unwrap()).unwrap();
        assert_eq!(
            one.sha256.as_deref(),
            Some(hex::encode(Sha256::digest(b"first")).as_str())
        );
        assert_ne!(one.inode, 0);
        let again = ids.of_exec(u32::MAX, path.to_str().unwrap()).unwrap();
        assert_eq!(again, one);
        // Rewritten in place with a different content: a new version, hashed again.
        std::thread::sleep(std::time::Duration::from_millis(5));
        std::fs::write(&path, b"second").unwrap();
        let changed = ids.of_exec(u32::MAX, path.to_str().unwrap()).unwrap();
        assert_eq!(changed.inode, one.inode);
        assert_eq!(
            changed.sha256.as_deref(),
            Some(hex::encode(Sha256::digest(b"second")).as_str())
        );
        assert_eq!(ids.of_exec(u32::MAX, "/nonexistent/prog"), None);
    }

    #[test]
    fn a_running_process_is_identified_by_its_exe_link() {
        let mut ids = Identities::default();
        let me = ids.of_exec(std::process::id(), "/nonexistent").unwrap();
        let exe = std::fs::metadata("/proc/self/exe").unwrap();
        assert_eq!((me.dev, me.inode), (exe.dev(), exe.ino()));
        assert!(me.sha256.is_some());
    }
}
