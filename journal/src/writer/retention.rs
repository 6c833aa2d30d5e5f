//! Retention: deleting whole segments, oldest first, while the journal is over its size or age limit, and
//! only segments wholly below the [`RetentionFloor`]. With a shipper the floor is the collector's
//! acknowledged sequence number, so retention never deletes a record the collector has not stored. The key
//! ladder stays: after `ANCHOR` moves, only step links that skip links already span are dropped from it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Journal;
use crate::JournalError;
use crate::files::{self, Anchor, for_each_payload, hex_hash};
use crate::ladder::SKIP;
use crate::record::Payload;

/// The journal↔shipper contract on what retention may delete: the highest sequence number the collector
/// has acknowledged. A clone is a handle on the same floor; the shipper moves it, the journal reads it.
#[derive(Clone, Debug)]
pub struct RetentionFloor {
    acked: Arc<AtomicU64>,
}

impl RetentionFloor {
    /// Nothing acknowledged yet and nothing deletable: the floor of a journal that ships, before its
    /// cursor is known.
    pub fn keep_all() -> RetentionFloor {
        RetentionFloor::acknowledged_up_to(0)
    }

    /// Records up to `seq` are acknowledged (a shipper's persisted cursor).
    pub fn acknowledged_up_to(seq: u64) -> RetentionFloor {
        RetentionFloor {
            acked: Arc::new(AtomicU64::new(seq)),
        }
    }

    /// No shipper: every durable record may be deleted by retention.
    pub fn without_shipper() -> RetentionFloor {
        RetentionFloor::acknowledged_up_to(u64::MAX - 1)
    }

    /// The collector now holds every record up to `seq` (it may be lower than before, when the collector
    /// asks for records again).
    pub fn acknowledge(&self, seq: u64) {
        self.acked.store(seq, Ordering::Release);
    }

    /// The highest acknowledged sequence number.
    pub fn acknowledged(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    /// The first sequence number retention must keep.
    pub fn floor(&self) -> u64 {
        self.acknowledged().saturating_add(1)
    }
}

impl Journal {
    /// Retention follows `floor` from now on (set from the shipper's acknowledged cursor).
    pub fn set_retention_floor(&mut self, floor: RetentionFloor) {
        self.retention_floor = floor;
    }

    /// Bytes the journal's segments take (including records not yet written out).
    pub fn disk_bytes(&self) -> u64 {
        self.disk_bytes
    }

    /// Applies retention now (it also runs at every rotation): deletes whole segments below the retention
    /// floor while the journal is over its size or age limit.
    pub fn trim(&mut self) -> Result<(), JournalError> {
        self.apply_retention()
    }

    pub(super) fn apply_retention(&mut self) -> Result<(), JournalError> {
        if self.opts.max_bytes.is_none() && self.opts.max_age.is_none() {
            return Ok(());
        }
        let max = self.opts.max_bytes.unwrap_or(u64::MAX);
        let too_old = |path: &Path| {
            self.opts.max_age.is_some_and(|age| {
                std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|elapsed| elapsed > age)
            })
        };
        let segments = files::list_segments(&self.opts.dir)?;
        let mut total: u64 = segments
            .iter()
            .filter_map(|(_, p)| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        // Never the current segment; only segments wholly below the floor (the next segment's first seq).
        for pair in segments.windows(2) {
            let [(_, old), (next_index, next)] = pair else {
                break;
            };
            if (total <= max && !too_old(old)) || *next_index > self.segment_index {
                break;
            }
            let Some((first_seq, prev_hash)) = files::first_record(next)? else {
                break;
            };
            if first_seq > self.retention_floor.floor() {
                break;
            }
            let (epoch, public_key) = key_at(
                &files::list_segments(&self.opts.dir)?,
                first_seq,
                &self.opts.dir,
            )?;
            let anchor = Anchor {
                seq: first_seq,
                prev_hash: hex_hash(&prev_hash),
                epoch,
                public_key: hex::encode(public_key),
            };
            files::write_json(&files::anchor_path(&self.opts.dir), &anchor, true)?;
            // Only after ANCHOR moved: the step links of blocks before its epoch's are no longer needed.
            self.ladder.compact(epoch / SKIP * SKIP);
            let len = std::fs::metadata(old).map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(old).map_err(|e| JournalError::io(old, e))?;
            total = total.saturating_sub(len);
            self.disk_bytes = self.disk_bytes.saturating_sub(len);
        }
        Ok(())
    }
}

/// Key epoch and public key valid for the first checkpoint at or after `seq`.
fn key_at(
    segments: &[(u64, PathBuf)],
    seq: u64,
    dir: &Path,
) -> Result<(u64, [u8; 32]), JournalError> {
    let anchor: Anchor =
        files::read_json(&files::anchor_path(dir))?.ok_or_else(|| JournalError::Damaged {
            path: files::anchor_path(dir),
            why: "missing".into(),
        })?;
    let mut state = (
        anchor.epoch,
        crate::keys::parse_public_key(&anchor.public_key).map_err(|why| JournalError::Damaged {
            path: files::anchor_path(dir),
            why: why.to_string(),
        })?,
    );
    for (_, path) in segments {
        for_each_payload(path, |rec_seq, payload| {
            if rec_seq < seq
                && let Payload::Checkpoint(cp) = payload
            {
                state = (cp.epoch + 1, cp.next_public_key);
            }
        })?;
    }
    Ok(state)
}
