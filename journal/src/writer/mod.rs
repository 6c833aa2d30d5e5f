//! Appending to the journal: the open writer ([`Journal`]), its options and durability policy.
//!
//! The writer's work is split by concern: `append.rs` frames records, syncs them by the [`FsyncPolicy`],
//! signs checkpoints and rotates segments; `recovery.rs` opens an existing journal, cutting a torn tail and
//! reconciling the key epoch; `retention.rs` deletes whole segments below the [`RetentionFloor`]. The
//! writer never drops a record.
//!
//! A run's segment is created with its first record, not at open, and atomically: its header and
//! `SegmentStart` are written to a temporary file, synced and renamed into place. So a segment is durable
//! with its start or absent, and a start that fails (or is killed) before anything is journaled leaves the
//! journal exactly as it was.

mod append;
mod recovery;
mod retention;

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::JournalError;
use crate::files::{self, Anchor, hex_hash};
use crate::keys::EpochKey;
use crate::ladder_file::{LadderHeader, LadderWriter};
use crate::record::Hash;

pub use recovery::Recovery;
pub use retention::RetentionFloor;

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

/// An open journal.
pub struct Journal {
    opts: JournalOptions,
    /// The journal's lock file, locked for as long as this writer has it open.
    _lock: File,
    /// This run's current segment, once its first record was appended.
    file: Option<File>,
    path: PathBuf,
    buf: Vec<u8>,
    segment_index: u64,
    segment_bytes: u64,
    generation: u64,
    next_seq: u64,
    last_hash: Hash,
    key: EpochKey,
    dirty_since: Option<Instant>,
    retention_floor: RetentionFloor,
    recovered: Option<Recovery>,
    disk_bytes: u64,
    /// Bytes of the current segment file that are written (not only buffered).
    written: u64,
    /// Bytes of the current segment file allocated ahead (`fallocate`), for the reserve.
    allocated: u64,
    /// Whether the file system supports allocating ahead.
    reserve_supported: bool,
    /// The reserve could not be renewed: the disk is (nearly) full.
    low_space: bool,
    /// A checkpoint signed but not yet durable (its record is in the buffer).
    unsynced_checkpoint: Option<u64>,
    /// The key evolved in memory but the key file still holds the previous epoch's.
    key_unsaved: bool,
    /// The last attempt to update `HEAD` failed (logged once until one succeeds).
    head_stale: bool,
    /// The key ladder (`LADDER`): a link for every checkpoint, durable before it.
    ladder: LadderWriter,
    /// A damaged ladder file found at open, set aside and replaced.
    ladder_reset: Option<Recovery>,
}

/// Buffered bytes written to the file before the next sync point.
const WRITE_CHUNK: usize = 256 * 1024;

/// Bytes kept allocated ahead of the written part of the current segment, so what is buffered when the
/// disk fills, and the loss record and checkpoint that follow, can still be written.
pub const RESERVE: u64 = 1024 * 1024;

impl Journal {
    /// Opens (or creates, with a new genesis key) the journal. Nothing is written to a segment until the
    /// first append.
    pub fn open(opts: JournalOptions) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(&opts.dir).map_err(|e| JournalError::io(&opts.dir, e))?;
        std::fs::set_permissions(&opts.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| JournalError::io(&opts.dir, e))?;
        let lock = files::lock_journal(&opts.dir, opts.lock_wait)?;
        recovery::remove_unfinished_segments(&opts.dir)?;
        let (segments, removed) = recovery::drop_empty_last_segments(&opts.dir)?;
        let Some((last_index, last_path)) = segments.last().cloned() else {
            let mut journal = Journal::genesis(opts, lock)?;
            journal.recovered = removed;
            return Ok(journal);
        };
        let tail = recovery::scan_tail(&last_path)?;
        let recovered = recovery::cut_torn_tail(&last_path, &tail)?.or(removed);
        let (last_seq, last_hash, generation) = match tail.last {
            Some(last) => (last.0, last.1, tail.generation),
            None => {
                return Err(JournalError::Damaged {
                    path: last_path,
                    why: "last segment holds no valid record; run `auditloop verify`".into(),
                });
            }
        };
        let key = recovery::reconcile_key(&opts.key_path, &segments)?;
        let (ladder, reset) = LadderWriter::open(&opts.dir, key.epoch(), key.genesis_public())?;
        let mut journal = Journal::ready(
            opts,
            lock,
            key,
            ladder,
            last_index + 1,
            generation + 1,
            last_seq + 1,
            last_hash,
        )?;
        journal.recovered = recovered;
        journal.ladder_reset = reset.map(|r| Recovery {
            segment: r.moved_to,
            offset: 0,
            bytes_cut: 0,
            last_seq,
            reason: format!(
                "the key ladder was damaged ({}); it was set aside and a new one starts at epoch {}: \
                 keys of earlier epochs cannot be traced to the genesis key once retention deletes \
                 their checkpoints",
                r.reason, r.since_epoch
            ),
        });
        Ok(journal)
    }

    /// A journal with no segment: a new genesis key, or the one an earlier start created before it
    /// journaled anything.
    fn genesis(opts: JournalOptions, lock: File) -> Result<Journal, JournalError> {
        let key = match EpochKey::load(&opts.key_path)? {
            Some(key) if key.epoch() == 0 => key,
            Some(key) => {
                return Err(JournalError::Damaged {
                    path: opts.dir.clone(),
                    why: format!(
                        "the journal has no segments but its key is at epoch {}: segments were deleted \
                         (keep the directory for investigation; move it away to start a new journal)",
                        key.epoch()
                    ),
                });
            }
            None => {
                let key = EpochKey::generate()?;
                key.store(&opts.key_path)?;
                key
            }
        };
        let anchor = Anchor {
            seq: 1,
            prev_hash: hex_hash(&[0; 32]),
            epoch: 0,
            public_key: hex::encode(key.genesis_public()),
        };
        files::write_json(&files::anchor_path(&opts.dir), &anchor, true)?;
        // No checkpoint exists yet: a fresh ladder from genesis (replacing any left by an earlier journal).
        let ladder = LadderWriter::create(
            &opts.dir,
            &LadderHeader {
                since_epoch: 0,
                genesis: key.genesis_public(),
            },
        )?;
        Journal::ready(opts, lock, key, ladder, 0, 1, 1, [0; 32])
    }

    /// The writer positioned after the last record, its segment `index` not created yet.
    #[expect(
        clippy::too_many_arguments,
        reason = "one private constructor that both ways of opening fill in"
    )]
    fn ready(
        opts: JournalOptions,
        lock: File,
        key: EpochKey,
        ladder: LadderWriter,
        index: u64,
        generation: u64,
        next_seq: u64,
        last_hash: Hash,
    ) -> Result<Journal, JournalError> {
        let path = files::segment_path(&opts.dir, index);
        let disk_bytes = append::segments_bytes(&opts.dir)?;
        Ok(Journal {
            opts,
            _lock: lock,
            file: None,
            path,
            buf: Vec::with_capacity(WRITE_CHUNK * 2),
            segment_index: index,
            segment_bytes: 0,
            generation,
            next_seq,
            last_hash,
            key,
            dirty_since: None,
            retention_floor: RetentionFloor::keep_all(),
            recovered: None,
            disk_bytes,
            written: 0,
            allocated: 0,
            reserve_supported: true,
            low_space: false,
            unsynced_checkpoint: None,
            key_unsaved: false,
            head_stale: false,
            ladder,
            ladder_reset: None,
        })
    }

    /// What was cut from a torn tail when the journal was opened, if anything.
    pub fn recovered(&self) -> Option<&Recovery> {
        self.recovered.as_ref()
    }

    /// A damaged key ladder found when the journal was opened (set aside and replaced), if any: `segment`
    /// names where the damaged file was moved.
    pub fn ladder_reset(&self) -> Option<&Recovery> {
        self.ladder_reset.as_ref()
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.opts.dir
    }

    /// The sequence number the next appended record gets (before a run's first record, its segment start
    /// takes one number first).
    pub fn next_seq(&self) -> u64 {
        if self.file.is_none() {
            self.next_seq + 1
        } else {
            self.next_seq
        }
    }

    /// The sequence number of the last record in the chain (0 for an empty journal).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Hash of the last record.
    pub fn last_hash(&self) -> Hash {
        self.last_hash
    }

    /// This run's generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the disk is (nearly) full: the reserve ahead of the current segment could not be renewed.
    /// Appends still succeed into the reserve; a caller should stop appending new events until it clears
    /// (see [`Journal::renew_reserve`]).
    pub fn low_space(&self) -> bool {
        self.low_space
    }

    /// Tries to renew the reserve now (after space was freed); clears [`Journal::low_space`] on success.
    pub fn renew_reserve(&mut self) -> Result<(), JournalError> {
        self.write_buf()?;
        self.reserve_ahead(0);
        Ok(())
    }

    /// The genesis public key (the trust anchor `auditloop key show` prints).
    pub fn genesis_public_key(&self) -> [u8; 32] {
        self.key.genesis_public()
    }
}
