//! Names and small side files of a journal directory: segment names, `HEAD` and `ANCHOR`, and the key ladder
//! a batch anchored at the retained start carries ([`read_ladder`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::JournalError;
pub use crate::atomic::{replace_fixed, spare_path, sync_dir, write_in_place};
use crate::ladder::KeyLadder;
use crate::ladder_file;
use crate::record::{Hash, Payload, SEGMENT_HEADER_LEN, decode_payload, read_frame};

/// Sequence number and `prev_hash` of a segment's first record, read from its frame header alone (the
/// segment's first bytes); `None` while the segment holds no record yet.
pub fn first_record(path: &Path) -> Result<Option<(u64, Hash)>, JournalError> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path).map_err(|e| JournalError::io(path, e))?;
    let mut head = [0u8; crate::record::SEGMENT_HEADER_LEN + 4 + 8 + 32];
    match file.read_exact_at(&mut head, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(JournalError::io(path, e)),
    }
    let at = crate::record::SEGMENT_HEADER_LEN + 4;
    let seq = head[at..at + 8].try_into().map(u64::from_le_bytes);
    let prev: Result<Hash, _> = head[at + 8..].try_into();
    Ok(seq.ok().zip(prev.ok()))
}

/// The segment file of `index`.
pub fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("seg-{index:010}.alj"))
}

/// Where a segment is written before it is renamed into place.
pub fn unfinished_path(segment: &Path) -> PathBuf {
    let mut name = segment.as_os_str().to_owned();
    name.push(UNFINISHED_SUFFIX);
    PathBuf::from(name)
}

/// Suffix of a segment file still being created.
pub const UNFINISHED_SUFFIX: &str = ".new";

/// The index of a segment file name, if it is one.
pub fn segment_index(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?
        .strip_suffix(".alj")?
        .parse()
        .ok()
}

/// Segment files of `dir`, by index.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| JournalError::io(dir, e))?
        .filter_map(Result::ok)
        .filter_map(|e| Some((segment_index(e.file_name().to_str()?)?, e.path())))
        .collect();
    out.sort();
    Ok(out)
}

/// The last durable record: a lower bound on what the journal must contain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Its sequence number.
    pub seq: u64,
    /// Its hash (hex).
    pub hash: String,
}

/// Where the retained chain starts and which key is valid there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// Sequence number of the first retained record.
    pub seq: u64,
    /// Its `prev_hash` (hex; zeros at genesis).
    pub prev_hash: String,
    /// Key epoch of the next checkpoint after the anchor.
    pub epoch: u64,
    /// Public key of that epoch (hex).
    pub public_key: String,
}

/// `HEAD` of a journal directory.
pub fn head_path(dir: &Path) -> PathBuf {
    dir.join("HEAD")
}

/// `ANCHOR` of a journal directory.
pub fn anchor_path(dir: &Path) -> PathBuf {
    dir.join("ANCHOR")
}

/// The key ladder from the genesis key to the key of `ANCHOR`'s epoch (the key of the first checkpoint
/// after the retained start), as a batch anchored there carries it: the skip links up to the last multiple
/// of [`crate::ladder::SKIP`] at or below that epoch, then the step links to it, in order. It is checked
/// before it is returned: every link verifies under the key the one before it names, starting from the
/// ladder file's genesis key, and the last names `ANCHOR`'s public key. Empty when `ANCHOR`'s epoch is 0
/// (no checkpoint precedes the retained start; its key is the genesis key itself).
///
/// Errors: [`JournalError::Untraceable`] when there is no ladder file, or it starts after epoch 0 (a
/// journal written before key ladders existed: the links were never made); [`JournalError::Damaged`] when
/// `ANCHOR` or the ladder file is unreadable or damaged, a link is missing or does not verify, or the
/// ladder leads to another key than `ANCHOR`'s; [`JournalError::Io`] when a file cannot be read.
pub fn read_ladder(dir: &Path) -> Result<KeyLadder, JournalError> {
    let path = anchor_path(dir);
    let anchor: Anchor = read_json(&path)?.ok_or_else(|| JournalError::Damaged {
        path: path.clone(),
        why: "missing".into(),
    })?;
    let anchor_key =
        crate::keys::parse_public_key(&anchor.public_key).map_err(|why| JournalError::Damaged {
            path: path.clone(),
            why: why.to_string(),
        })?;
    if anchor.epoch == 0 {
        return Ok(KeyLadder::default());
    }
    let ladder_path = ladder_file::ladder_path(dir);
    let Some((header, ladder)) = ladder_file::load(dir, &[anchor.epoch])? else {
        return Err(JournalError::Untraceable {
            path: ladder_path,
            why: "no key ladder (the journal was written before key ladders existed)".into(),
        });
    };
    if header.since_epoch > 0 {
        return Err(JournalError::Untraceable {
            path: ladder_path,
            why: format!(
                "the key ladder starts at epoch {}, not at genesis (the journal was written before key \
                 ladders existed, or its ladder was lost and restarted)",
                header.since_epoch
            ),
        });
    }
    let links = KeyLadder {
        links: ladder_file::path(&ladder, anchor.epoch),
    };
    links
        .check(&header.genesis, anchor.epoch, &anchor_key)
        .map_err(|e| JournalError::Damaged {
            path: ladder_path,
            why: format!("{e} (ANCHOR is at epoch {})", anchor.epoch),
        })?;
    Ok(links)
}

/// Reads a JSON side file; `None` when absent.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, JournalError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| JournalError::Damaged {
                path: path.to_owned(),
                why: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(JournalError::io(path, e)),
    }
}

/// Size of the small JSON files beside the segments (`HEAD`, `ANCHOR`): padded with spaces, so they are
/// always rewritten in place and a full disk never stops them from being updated.
pub const SMALL_FILE_LEN: usize = 1024;

/// Writes `value` as JSON to `path` atomically and without needing free space (see [`replace_fixed`]);
/// `sync` also makes the new content durable before it replaces the old.
pub fn write_json<T: Serialize>(path: &Path, value: &T, sync: bool) -> Result<(), JournalError> {
    let text = serde_json::to_string(value).map_err(|e| JournalError::Encode(e.to_string()))?;
    replace_fixed(path, text.as_bytes(), SMALL_FILE_LEN, sync).map(|_| ())
}

/// Name of the file in the journal directory that its one writer keeps locked.
pub const LOCK_FILE: &str = "LOCK";

/// Locks the journal in `dir` for writing, waiting up to `wait` for another process to release it, or says
/// another process has it.
///
/// The lock is a POSIX record lock (`fcntl F_SETLK`) on the whole file: unlike `flock`, the kernel drops it
/// as soon as a dying writer's descriptors are closed, before the seconds it spends detaching that writer's
/// programs, so an agent restarted after `kill -9` is not kept waiting. It is per process: the journal opens
/// the file once per writer and never closes it until the writer is dropped.
pub fn lock_journal(dir: &Path, wait: std::time::Duration) -> Result<std::fs::File, JournalError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| JournalError::io(&path, e))?;
    let whole_file = nix::libc::flock {
        l_type: nix::libc::F_WRLCK as nix::libc::c_short,
        l_whence: nix::libc::SEEK_SET as nix::libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    let deadline = std::time::Instant::now() + wait;
    let mut told = false;
    loop {
        match nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETLK(&whole_file)) {
            Ok(_) => return Ok(file),
            Err(nix::errno::Errno::EACCES | nix::errno::Errno::EAGAIN) => {
                if std::time::Instant::now() >= deadline {
                    return Err(JournalError::InUse {
                        dir: dir.to_owned(),
                    });
                }
                if !told {
                    tracing::warn!(
                        journal = %dir.display(),
                        wait_secs = wait.as_secs_f64(),
                        "another process holds the journal lock; waiting for it"
                    );
                    told = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(JournalError::io(&path, std::io::Error::from(e))),
        }
    }
}

/// Hex of a hash.
pub fn hex_hash(hash: &Hash) -> String {
    hex::encode(hash)
}

/// A hash from hex.
pub fn parse_hash(text: &str) -> Option<Hash> {
    hex::decode(text).ok()?.as_slice().try_into().ok()
}

/// Calls `f(seq, payload)` for every decodable record of a segment (stops at the first bad frame).
pub fn for_each_payload(path: &Path, mut f: impl FnMut(u64, Payload)) -> Result<(), JournalError> {
    let bytes = std::fs::read(path).map_err(|e| JournalError::io(path, e))?;
    let mut off = SEGMENT_HEADER_LEN;
    while let Some(Ok(rec)) = bytes.get(off..).map(read_frame) {
        if let Ok(payload) = decode_payload(rec.payload) {
            f(rec.seq, payload);
        }
        off += rec.len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        let p = segment_path(Path::new("/j"), 42);
        assert_eq!(p, PathBuf::from("/j/seg-0000000042.alj"));
        assert_eq!(segment_index("seg-0000000042.alj"), Some(42));
        assert_eq!(segment_index("HEAD"), None);
    }
}
