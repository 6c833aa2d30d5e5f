//! Appending to the journal: group commit, checkpoints, rotation, retention, crash recovery.
//!
//! Records are framed into an in-memory buffer and written and `fdatasync`ed by the [`FsyncPolicy`]. A
//! checkpoint forces a sync before the key evolves, so the key file never runs ahead of durable
//! checkpoints. On open, the last segment is scanned: a torn or garbled tail (a crash mid-write) is cut to
//! the last valid record and reported as a [`Recovery`]; every open starts a new segment whose
//! `SegmentStart` names the generation and boot. The writer never drops a record, and retention deletes a
//! segment only when all of it is below the floor set with [`Journal::set_retention_floor`].

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use auditloop_model::Event;

use crate::JournalError;
use crate::files::{self, Anchor, Head, hex_hash};
use crate::keys::EpochKey;
use crate::record::{
    Checkpoint, FORMAT_VERSION, Hash, Payload, SEGMENT_HEADER_LEN, SEGMENT_MAGIC, SegmentStart,
    decode_payload, encode_payload, frame, read_frame,
};

/// When appended records are made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every append (slow; for tests of durability).
    Always,
    /// Group commit: at most this long after an append (the default is 100 ms).
    Interval(Duration),
    /// Only at checkpoints, rotation and close.
    Never,
}

/// How to open a journal.
#[derive(Clone, Debug)]
pub struct JournalOptions {
    /// The journal directory (segments, HEAD, ANCHOR).
    pub dir: PathBuf,
    /// The signing key file.
    pub key_path: PathBuf,
    /// Rotate after a segment reaches this many bytes.
    pub segment_bytes: u64,
    /// Durability policy.
    pub fsync: FsyncPolicy,
    /// Delete old segments (below the retention floor) while the journal exceeds this many bytes.
    pub max_bytes: Option<u64>,
    /// Delete segments (below the retention floor) last written longer ago than this.
    pub max_age: Option<Duration>,
    /// Host name written in segment starts.
    pub host: String,
    /// Boot id written in segment starts.
    pub boot_id: String,
    /// How long to wait for another writer's lock (`LOCK`) before giving up: a writer killed with SIGKILL
    /// holds it until the kernel has finished tearing the process down, which can take seconds.
    pub lock_wait: Duration,
}

impl JournalOptions {
    /// Defaults for a state directory: `journal/` and `keys/journal.key` under it, 64 MiB segments, 100 ms
    /// group commit, no size limit.
    pub fn in_state_dir(state_dir: &Path, host: &str) -> JournalOptions {
        JournalOptions {
            dir: state_dir.join("journal"),
            key_path: state_dir.join("keys").join("journal.key"),
            segment_bytes: 64 * 1024 * 1024,
            fsync: FsyncPolicy::Interval(Duration::from_millis(100)),
            max_bytes: None,
            max_age: None,
            host: host.to_owned(),
            boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            lock_wait: DEFAULT_LOCK_WAIT,
        }
    }
}

/// Default [`JournalOptions::lock_wait`].
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(15);

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

/// An open journal.
pub struct Journal {
    opts: JournalOptions,
    /// The journal's lock file, locked for as long as this writer has it open.
    _lock: File,
    file: File,
    path: PathBuf,
    buf: Vec<u8>,
    segment_index: u64,
    segment_bytes: u64,
    generation: u64,
    next_seq: u64,
    last_hash: Hash,
    key: EpochKey,
    dirty_since: Option<Instant>,
    retention_floor: u64,
    recovered: Option<Recovery>,
    disk_bytes: u64,
}

/// Buffered bytes written to the file before the next sync point.
const WRITE_CHUNK: usize = 256 * 1024;

impl Journal {
    /// Opens (or creates, with a new genesis key) the journal.
    pub fn open(opts: JournalOptions) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(&opts.dir).map_err(|e| JournalError::io(&opts.dir, e))?;
        std::fs::set_permissions(&opts.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| JournalError::io(&opts.dir, e))?;
        let lock = files::lock_journal(&opts.dir, opts.lock_wait)?;
        let segments = files::list_segments(&opts.dir)?;
        let Some((last_index, last_path)) = segments.last().cloned() else {
            return Journal::genesis(opts, lock);
        };
        let tail = scan_tail(&last_path)?;
        let mut recovered = None;
        if tail.valid_len < tail.file_len {
            let f = OpenOptions::new()
                .write(true)
                .open(&last_path)
                .map_err(|e| JournalError::io(&last_path, e))?;
            f.set_len(tail.valid_len)
                .map_err(|e| JournalError::io(&last_path, e))?;
            f.sync_all().map_err(|e| JournalError::io(&last_path, e))?;
            recovered = Some(Recovery {
                segment: last_path.clone(),
                offset: tail.valid_len,
                bytes_cut: tail.file_len - tail.valid_len,
                last_seq: tail.last_seq,
                reason: tail.reason.clone(),
            });
        }
        let (last_seq, last_hash, generation) = match tail.last {
            Some(last) => (last.0, last.1, tail.generation),
            None => {
                return Err(JournalError::Damaged {
                    path: last_path,
                    why: "last segment holds no valid record; run `auditloop verify`".into(),
                });
            }
        };
        let mut key = EpochKey::load(&opts.key_path)?.ok_or_else(|| JournalError::KeyFile {
            path: opts.key_path.clone(),
            why: "missing while a journal exists".into(),
        })?;
        let journal_epoch = last_checkpoint_epoch(&segments)?;
        match journal_epoch {
            Some(e) if key.epoch() == e + 1 => {}
            Some(e) if key.epoch() == e => {
                // Crashed after the checkpoint became durable but before the evolved key was stored.
                key.evolve();
                key.store(&opts.key_path)?;
            }
            None if key.epoch() == 0 => {}
            other => {
                return Err(JournalError::KeyEpoch {
                    key_file: opts.key_path.clone(),
                    key_epoch: key.epoch(),
                    journal_epoch: other.unwrap_or(0),
                });
            }
        }
        let mut journal = Journal::with_segment(
            opts,
            lock,
            key,
            last_index + 1,
            generation + 1,
            last_seq + 1,
            last_hash,
        )?;
        journal.recovered = recovered;
        Ok(journal)
    }

    fn genesis(opts: JournalOptions, lock: File) -> Result<Journal, JournalError> {
        let key = EpochKey::generate()?;
        key.store(&opts.key_path)?;
        let anchor = Anchor {
            seq: 1,
            prev_hash: hex_hash(&[0; 32]),
            epoch: 0,
            public_key: hex::encode(key.genesis_public()),
        };
        files::write_json(&files::anchor_path(&opts.dir), &anchor, true)?;
        Journal::with_segment(opts, lock, key, 0, 1, 1, [0; 32])
    }

    fn with_segment(
        opts: JournalOptions,
        lock: File,
        key: EpochKey,
        index: u64,
        generation: u64,
        next_seq: u64,
        last_hash: Hash,
    ) -> Result<Journal, JournalError> {
        let path = files::segment_path(&opts.dir, index);
        let file = create_segment(&path)?;
        let mut journal = Journal {
            opts,
            _lock: lock,
            file,
            path,
            buf: Vec::with_capacity(WRITE_CHUNK * 2),
            segment_index: index,
            segment_bytes: SEGMENT_HEADER_LEN as u64,
            generation,
            next_seq,
            last_hash,
            key,
            dirty_since: None,
            retention_floor: 0,
            recovered: None,
            disk_bytes: 0,
        };
        journal.disk_bytes = segments_bytes(&journal.opts.dir)?;
        journal.append_segment_start()?;
        Ok(journal)
    }

    fn append_segment_start(&mut self) -> Result<(), JournalError> {
        let start = SegmentStart {
            index: self.segment_index,
            generation: self.generation,
            boot_id: self.opts.boot_id.clone(),
            created_ns: auditloop_model::WallTime::now().0,
            host: self.opts.host.clone(),
            genesis_public_key: (self.segment_index == 0).then(|| self.key.genesis_public()),
        };
        self.append_payload(&Payload::SegmentStart(start))?;
        Ok(())
    }

    /// What was cut from a torn tail when the journal was opened, if anything.
    pub fn recovered(&self) -> Option<&Recovery> {
        self.recovered.as_ref()
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Hash of the last record.
    pub fn last_hash(&self) -> Hash {
        self.last_hash
    }

    /// This run's generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The genesis public key (the trust anchor `auditloop key show` prints).
    pub fn genesis_public_key(&self) -> [u8; 32] {
        self.key.genesis_public()
    }

    /// Records below `seq` may be deleted by retention (set from the shipper's acknowledged cursor).
    pub fn set_retention_floor(&mut self, seq: u64) {
        self.retention_floor = seq;
    }

    /// Numbers `event` with the next sequence number and appends it; returns the number.
    pub fn append_event(&mut self, event: &mut Event) -> Result<u64, JournalError> {
        event.seq = self.next_seq;
        let seq = self.append_payload(&Payload::Event(event.clone()))?;
        self.after_append()?;
        Ok(seq)
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

    /// Appends already-encoded event bytes (benchmarks; the bytes must be an encoded [`Payload::Event`]).
    pub fn append_encoded(&mut self, payload: &[u8]) -> Result<u64, JournalError> {
        let seq = self.append_bytes(payload);
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
        Ok(self.append_bytes(&encoded))
    }

    fn append_bytes(&mut self, payload: &[u8]) -> u64 {
        let seq = self.next_seq;
        let before = self.buf.len();
        self.last_hash = frame(&mut self.buf, seq, &self.last_hash, payload);
        self.segment_bytes += (self.buf.len() - before) as u64;
        self.disk_bytes += (self.buf.len() - before) as u64;
        self.next_seq += 1;
        self.dirty_since.get_or_insert_with(Instant::now);
        seq
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
        if self.dirty_since.take().is_some() {
            self.file
                .sync_data()
                .map_err(|e| JournalError::io(&self.path, e))?;
            let head = Head {
                seq: self.next_seq - 1,
                hash: hex_hash(&self.last_hash),
            };
            files::write_json(&files::head_path(&self.opts.dir), &head, false)?;
        }
        Ok(())
    }

    fn write_buf(&mut self) -> Result<(), JournalError> {
        if !self.buf.is_empty() {
            self.file
                .write_all(&self.buf)
                .map_err(|e| JournalError::io(&self.path, e))?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Appends a checkpoint signed with the current epoch's key, makes it durable, then evolves the key and
    /// stores it (wiping the old seed). Returns the checkpoint's sequence number.
    pub fn checkpoint(&mut self) -> Result<u64, JournalError> {
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
        self.sync()?;
        self.key.evolve();
        self.key.store(&self.opts.key_path)?;
        Ok(seq)
    }

    /// Seals the current segment with a checkpoint and starts the next one; applies retention.
    pub fn rotate(&mut self) -> Result<(), JournalError> {
        self.checkpoint()?;
        self.segment_index += 1;
        self.path = files::segment_path(&self.opts.dir, self.segment_index);
        self.file = create_segment(&self.path)?;
        self.segment_bytes = SEGMENT_HEADER_LEN as u64;
        self.disk_bytes += SEGMENT_HEADER_LEN as u64;
        self.append_segment_start()?;
        self.sync()?;
        self.apply_retention()
    }

    fn apply_retention(&mut self) -> Result<(), JournalError> {
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
            if first_seq > self.retention_floor {
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
            let len = std::fs::metadata(old).map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(old).map_err(|e| JournalError::io(old, e))?;
            total = total.saturating_sub(len);
            self.disk_bytes = self.disk_bytes.saturating_sub(len);
        }
        Ok(())
    }

    /// Checkpoints, syncs and closes (a clean stop).
    pub fn close(mut self) -> Result<(), JournalError> {
        self.checkpoint()?;
        self.sync()
    }
}

fn segments_bytes(dir: &Path) -> Result<u64, JournalError> {
    Ok(files::list_segments(dir)?
        .iter()
        .filter_map(|(_, p)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum())
}

fn create_segment(path: &Path) -> Result<File, JournalError> {
    let mut file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| JournalError::io(path, e))?;
    let mut header = Vec::with_capacity(SEGMENT_HEADER_LEN);
    header.extend_from_slice(&SEGMENT_MAGIC);
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    file.write_all(&header)
        .map_err(|e| JournalError::io(path, e))?;
    Ok(file)
}

struct Tail {
    file_len: u64,
    valid_len: u64,
    last: Option<(u64, Hash)>,
    last_seq: u64,
    generation: u64,
    reason: String,
}

/// Scans a segment, checking frames, hashes and links, to find where its valid prefix ends.
fn scan_tail(path: &Path) -> Result<Tail, JournalError> {
    let bytes = std::fs::read(path).map_err(|e| JournalError::io(path, e))?;
    let mut tail = Tail {
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
            why,
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

/// Calls `f(seq, payload)` for every decodable record of a segment (stops at the first bad frame).
pub(crate) fn for_each_payload(
    path: &Path,
    mut f: impl FnMut(u64, Payload),
) -> Result<(), JournalError> {
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
