//! Framing records into the current segment: group commit by the [`FsyncPolicy`], signed checkpoints
//! (made durable before the key evolves, so the key file never runs ahead of them, each with its key
//! ladder link made durable before it), and rotation.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Instant;

use auditloop_model::Event;

use super::{FsyncPolicy, Journal, RESERVE, WRITE_CHUNK};
use crate::JournalError;
use crate::files::{self, Head, hex_hash};
use crate::ladder::{KeyLink, SKIP};
use crate::record::{
    Checkpoint, FORMAT_VERSION, Payload, SEGMENT_HEADER_LEN, SEGMENT_MAGIC, SegmentStart,
    encode_payload, frame,
};

impl Journal {
    /// Creates segment `segment_index` with its header and `SegmentStart`, durably and atomically (a
    /// temporary file, synced and renamed into place, then the directory synced).
    fn start_segment(&mut self) -> Result<(), JournalError> {
        let start = SegmentStart {
            index: self.segment_index,
            generation: self.generation,
            boot_id: self.opts.boot_id.clone(),
            created_ns: auditloop_model::WallTime::now().0,
            host: self.opts.host.clone(),
            genesis_public_key: (self.segment_index == 0).then(|| self.key.genesis_public()),
        };
        let payload = encode_payload(&Payload::SegmentStart(start))
            .map_err(|e| JournalError::Encode(e.to_string()))?;
        let mut bytes = Vec::with_capacity(SEGMENT_HEADER_LEN + payload.len() + 80);
        bytes.extend_from_slice(&SEGMENT_MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        let hash = frame(&mut bytes, self.next_seq, &self.last_hash, &payload);
        let path = files::segment_path(&self.opts.dir, self.segment_index);
        let tmp = files::unfinished_path(&path);
        {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| JournalError::io(&tmp, e))?;
            file.write_all(&bytes)
                .map_err(|e| JournalError::io(&tmp, e))?;
            file.sync_all().map_err(|e| JournalError::io(&tmp, e))?;
        }
        std::fs::rename(&tmp, &path).map_err(|e| JournalError::io(&path, e))?;
        files::sync_dir(&self.opts.dir)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| JournalError::io(&path, e))?;
        self.file = Some(file);
        self.path = path;
        self.last_hash = hash;
        self.next_seq += 1;
        self.segment_bytes = bytes.len() as u64;
        self.disk_bytes += bytes.len() as u64;
        self.written = bytes.len() as u64;
        self.allocated = self.written;
        self.reserve_ahead(0);
        // The start is durable; the next sync records it in HEAD.
        self.dirty_since.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Numbers `event` with the next sequence number and appends it; returns the number.
    pub fn append_event(&mut self, event: &mut Event) -> Result<u64, JournalError> {
        if self.file.is_none() {
            self.start_segment()?;
        }
        event.seq = self.next_seq;
        let encoded =
            crate::record::encode_event(event).map_err(|e| JournalError::Encode(e.to_string()))?;
        let seq = self.append_bytes(&encoded)?;
        self.after_append()?;
        Ok(seq)
    }

    /// Appends already-encoded event bytes (benchmarks; the bytes must be an encoded [`Payload::Event`]).
    pub fn append_encoded(&mut self, payload: &[u8]) -> Result<u64, JournalError> {
        let seq = self.append_bytes(payload)?;
        self.after_append()?;
        Ok(seq)
    }

    fn after_append(&mut self) -> Result<(), JournalError> {
        match self.opts.fsync {
            FsyncPolicy::Always => self.sync()?,
            FsyncPolicy::Interval(_) | FsyncPolicy::Never => {
                if self.buf.len() >= WRITE_CHUNK {
                    self.write_buf()?;
                }
            }
        }
        if self.segment_bytes >= self.opts.segment_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    fn append_payload(&mut self, payload: &Payload) -> Result<u64, JournalError> {
        let encoded = encode_payload(payload).map_err(|e| JournalError::Encode(e.to_string()))?;
        self.append_bytes(&encoded)
    }

    fn append_bytes(&mut self, payload: &[u8]) -> Result<u64, JournalError> {
        if self.file.is_none() {
            self.start_segment()?;
        }
        let seq = self.next_seq;
        let before = self.buf.len();
        self.last_hash = frame(&mut self.buf, seq, &self.last_hash, payload);
        self.segment_bytes += (self.buf.len() - before) as u64;
        self.disk_bytes += (self.buf.len() - before) as u64;
        self.next_seq += 1;
        self.dirty_since.get_or_insert_with(Instant::now);
        Ok(seq)
    }

    /// Makes appended records durable if the group-commit interval has passed.
    pub fn maybe_sync(&mut self) -> Result<(), JournalError> {
        if let (FsyncPolicy::Interval(every), Some(since)) = (self.opts.fsync, self.dirty_since)
            && since.elapsed() >= every
        {
            self.sync()?;
        }
        Ok(())
    }

    /// Writes and `fdatasync`s everything appended, then records the head.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.write_buf()?;
        if let Some(file) = &self.file
            && self.dirty_since.take().is_some()
        {
            file.sync_data()
                .map_err(|e| JournalError::io(&self.path, e))?;
            let head = Head {
                seq: self.next_seq - 1,
                hash: hex_hash(&self.last_hash),
            };
            // HEAD is a lower bound of what is durable: when it cannot be updated (a full disk), it stays
            // behind and the records are durable all the same.
            match files::write_json(&files::head_path(&self.opts.dir), &head, false) {
                Ok(()) => self.head_stale = false,
                Err(err) if !self.head_stale => {
                    self.head_stale = true;
                    tracing::warn!("HEAD not updated (retried at every sync): {err}");
                }
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// Writes the buffer to the segment. On failure nothing of it is left in the file (a partial write is
    /// cut off again) and the buffer is kept, so a later call writes the same records.
    pub(super) fn write_buf(&mut self) -> Result<(), JournalError> {
        if self.file.is_none() || self.buf.is_empty() {
            return Ok(());
        }
        let pending = self.buf.len() as u64;
        self.reserve_ahead(pending);
        if let Some(file) = &mut self.file {
            if let Err(e) = file.write_all(&self.buf) {
                let _ = file.set_len(self.written);
                return Err(JournalError::io(&self.path, e));
            }
            self.written += pending;
            self.buf.clear();
        }
        Ok(())
    }

    /// Keeps [`RESERVE`] bytes allocated beyond the written part plus `pending` bytes about to be written;
    /// sets or clears [`Journal::low_space`] by whether that worked.
    pub(super) fn reserve_ahead(&mut self, pending: u64) {
        let Some(file) = &self.file else {
            return;
        };
        if !self.reserve_supported || self.written + pending + RESERVE / 2 <= self.allocated {
            return;
        }
        let offset = i64::try_from(self.written).unwrap_or(i64::MAX);
        let len = i64::try_from(pending + RESERVE).unwrap_or(i64::MAX);
        match nix::fcntl::fallocate(
            file,
            nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE,
            offset,
            len,
        ) {
            Ok(()) => {
                self.allocated = self.written + pending + RESERVE;
                self.low_space = false;
            }
            Err(nix::errno::Errno::ENOSPC | nix::errno::Errno::EDQUOT) => self.low_space = true,
            Err(_) => self.reserve_supported = false,
        }
    }

    /// Appends a checkpoint signed with the current epoch's key, makes it durable, then evolves the key and
    /// stores it (wiping the old seed). Before the checkpoint, the key ladder gets this epoch's step link
    /// (and, at a multiple of [`SKIP`], its skip link), durably. Returns the checkpoint's sequence number.
    ///
    /// Failures leave a state the next call completes: a checkpoint that was signed but could not be made
    /// durable stays in the buffer and is not signed twice, and a key that evolved but could not be stored
    /// is stored before another checkpoint is signed (so the key file is never more than one epoch behind,
    /// which opening reconciles).
    pub fn checkpoint(&mut self) -> Result<u64, JournalError> {
        if self.key_unsaved {
            self.key.store(&self.opts.key_path)?;
            self.key_unsaved = false;
        }
        let seq = match self.unsynced_checkpoint {
            Some(seq) => seq,
            None => {
                // The links from this epoch are durable before the checkpoint is: a durable checkpoint
                // always has its link, and the seed that signs it is gone once the key evolves.
                let mut links = vec![KeyLink::step(&self.key)];
                if self.key.epoch().is_multiple_of(SKIP) {
                    links.push(KeyLink::skip(&self.key));
                }
                self.ladder.append(&links)?;
                let head_seq = self.next_seq - 1;
                let head_hash = self.last_hash;
                let next_public_key = self.key.next_public();
                let epoch = self.key.epoch();
                let signature = self.key.sign(&Checkpoint::signed_message(
                    epoch,
                    head_seq,
                    &head_hash,
                    &next_public_key,
                ));
                let seq = self.append_payload(&Payload::Checkpoint(Checkpoint {
                    epoch,
                    head_seq,
                    head_hash,
                    next_public_key,
                    signature,
                }))?;
                self.unsynced_checkpoint = Some(seq);
                seq
            }
        };
        self.sync()?;
        self.unsynced_checkpoint = None;
        self.key.evolve();
        self.key_unsaved = true;
        self.key.store(&self.opts.key_path)?;
        self.key_unsaved = false;
        Ok(seq)
    }

    /// Seals the current segment with a checkpoint and starts the next one; applies retention.
    pub fn rotate(&mut self) -> Result<(), JournalError> {
        self.checkpoint()?;
        let (index, file, path) = (self.segment_index, self.file.take(), self.path.clone());
        let (written, allocated) = (self.written, self.allocated);
        self.segment_index += 1;
        if let Err(err) = self.start_segment() {
            // The next segment could not be created (a full disk): keep appending to this one.
            (self.segment_index, self.file, self.path) = (index, file, path);
            (self.written, self.allocated) = (written, allocated);
            return Err(err);
        }
        self.sync()?;
        self.apply_retention()
    }

    /// Checkpoints, syncs and closes (a clean stop). A run that journaled nothing leaves the journal as it
    /// found it.
    pub fn close(mut self) -> Result<(), JournalError> {
        if self.file.is_none() {
            return Ok(());
        }
        self.checkpoint()?;
        self.sync()
    }
}

/// Bytes the segments of `dir` take.
pub(super) fn segments_bytes(dir: &Path) -> Result<u64, JournalError> {
    Ok(files::list_segments(dir)?
        .iter()
        .filter_map(|(_, p)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum())
}
