//! Opening an existing journal after a crash: finding where the last segment's valid records end, cutting
//! a torn tail (reported as a [`Recovery`]), and reconciling the key file with the journal's last
//! checkpoint.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use crate::JournalError;
use crate::files::{self, for_each_payload};
use crate::keys::EpochKey;
use crate::record::{Hash, Payload, SEGMENT_HEADER_LEN, SEGMENT_MAGIC, decode_payload, read_frame};

/// What was cut from a torn tail at open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// The segment that was cut.
    pub segment: PathBuf,
    /// Offset of the cut (end of the last valid record).
    pub offset: u64,
    /// Bytes removed.
    pub bytes_cut: u64,
    /// Sequence number of the last valid record.
    pub last_seq: u64,
    /// Why the tail was invalid.
    pub reason: String,
}

/// Where a segment's valid records end, and what the last of them is.
pub(super) struct TornTail {
    /// Bytes in the file.
    pub file_len: u64,
    /// Bytes of the header and the valid records.
    pub valid_len: u64,
    /// Sequence number and hash of the last valid record.
    pub last: Option<(u64, Hash)>,
    /// Sequence number of the last valid record (0 without one).
    pub last_seq: u64,
    /// Generation of the segment's start record.
    pub generation: u64,
    /// Why the bytes after `valid_len` are invalid.
    pub reason: String,
}

/// Scans a segment, checking frames, hashes and links, to find where its valid prefix ends.
pub(super) fn scan_tail(path: &Path) -> Result<TornTail, JournalError> {
    let bytes = std::fs::read(path).map_err(|e| JournalError::io(path, e))?;
    let mut tail = TornTail {
        file_len: bytes.len() as u64,
        valid_len: 0,
        last: None,
        last_seq: 0,
        generation: 0,
        reason: String::new(),
    };
    if bytes.get(..4) != Some(&SEGMENT_MAGIC[..]) {
        tail.reason = "bad segment header".into();
        return Ok(tail);
    }
    let mut off = SEGMENT_HEADER_LEN;
    tail.valid_len = off as u64;
    while off < bytes.len() {
        let rec = match read_frame(&bytes[off..]) {
            Ok(r) => r,
            Err(e) => {
                tail.reason = e.to_string();
                break;
            }
        };
        let linked = tail
            .last
            .is_none_or(|(seq, hash)| rec.seq == seq + 1 && rec.prev_hash == hash);
        if !rec.hash_ok() || !linked {
            tail.reason = format!("record at offset {off} does not verify");
            break;
        }
        if tail.last.is_none()
            && let Ok(Payload::SegmentStart(start)) = decode_payload(rec.payload)
        {
            tail.generation = start.generation;
        }
        tail.last = Some((rec.seq, rec.hash));
        tail.last_seq = rec.seq;
        off += rec.len;
        tail.valid_len = off as u64;
    }
    Ok(tail)
}

/// Removes segment files left half-created by a start that was killed before it renamed them into place
/// (they hold no record the chain depends on).
pub(super) fn remove_unfinished_segments(dir: &Path) -> Result<(), JournalError> {
    let entries = std::fs::read_dir(dir).map_err(|e| JournalError::io(dir, e))?;
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("seg-") && name.ends_with(files::UNFINISHED_SUFFIX) {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| JournalError::io(&path, e))?;
        }
    }
    files::sync_dir(dir)
}

/// Segment files by index.
type Segments = Vec<(u64, PathBuf)>;

/// Removes last segments that hold no valid record (a start interrupted before its first record became
/// durable, as journals written before segments were created atomically can have); returns the remaining
/// segments and a [`Recovery`] naming what was removed.
pub(super) fn drop_empty_last_segments(
    dir: &Path,
) -> Result<(Segments, Option<Recovery>), JournalError> {
    let mut segments = files::list_segments(dir)?;
    let mut recovered = None;
    while let Some((_, path)) = segments.last().cloned() {
        let tail = scan_tail(&path)?;
        if tail.last.is_some() {
            break;
        }
        std::fs::remove_file(&path).map_err(|e| JournalError::io(&path, e))?;
        files::sync_dir(dir)?;
        segments.pop();
        let last_seq = match segments.last() {
            Some((_, prev)) => scan_tail(prev)?.last_seq,
            None => 0,
        };
        recovered = Some(Recovery {
            segment: path,
            offset: 0,
            bytes_cut: tail.file_len,
            last_seq,
            reason: "segment holds no record (a start was interrupted); removed".into(),
        });
    }
    Ok((segments, recovered))
}

/// Cuts the bytes after the valid records of `path`, durably; `None` when there were none.
pub(super) fn cut_torn_tail(
    path: &Path,
    tail: &TornTail,
) -> Result<Option<Recovery>, JournalError> {
    if tail.valid_len >= tail.file_len {
        return Ok(None);
    }
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| JournalError::io(path, e))?;
    f.set_len(tail.valid_len)
        .map_err(|e| JournalError::io(path, e))?;
    f.sync_all().map_err(|e| JournalError::io(path, e))?;
    Ok(Some(Recovery {
        segment: path.to_owned(),
        offset: tail.valid_len,
        bytes_cut: tail.file_len - tail.valid_len,
        last_seq: tail.last_seq,
        reason: tail.reason.clone(),
    }))
}

/// Loads the key file and brings it in line with the journal's last checkpoint: a crash after the
/// checkpoint became durable but before the evolved key was stored leaves the key one epoch behind, which
/// is repaired here; any other mismatch is an error.
pub(super) fn reconcile_key(
    key_path: &Path,
    segments: &[(u64, PathBuf)],
) -> Result<EpochKey, JournalError> {
    let mut key = EpochKey::load(key_path)?.ok_or_else(|| JournalError::KeyFile {
        path: key_path.to_owned(),
        why: "missing while a journal exists".into(),
    })?;
    match last_checkpoint_epoch(segments)? {
        Some(e) if key.epoch() == e + 1 => {}
        Some(e) if key.epoch() == e => {
            key.evolve();
            key.store(key_path)?;
        }
        None if key.epoch() == 0 => {}
        other => {
            return Err(JournalError::KeyEpoch {
                key_file: key_path.to_owned(),
                key_epoch: key.epoch(),
                journal_epoch: other.unwrap_or(0),
            });
        }
    }
    Ok(key)
}

/// Epoch of the newest checkpoint in the journal, searching segments from the newest.
fn last_checkpoint_epoch(segments: &[(u64, PathBuf)]) -> Result<Option<u64>, JournalError> {
    for (_, path) in segments.iter().rev() {
        let mut found = None;
        for_each_payload(path, |_, payload| {
            if let Payload::Checkpoint(cp) = payload {
                found = Some(cp.epoch);
            }
        })?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}
