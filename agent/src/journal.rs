//! Journal stage: every event is appended to the tamper-evident journal, and numbered by it, before any
//! other stage sees it. A checkpoint is signed at least once a second, records are made durable by the
//! configured fsync policy, and a clean stop seals the journal with a final checkpoint.

use std::path::Path;
use std::time::{Duration, Instant};

use agent_common::model::{Event, EventBody, JournalRecovered};
use auditloop_journal::{FsyncPolicy, Journal, JournalError, JournalOptions};

use crate::config::{FsyncMode, JournalConfig};

/// How often a checkpoint is signed while events arrive.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// The open journal and its checkpoint timer.
pub struct JournalStage {
    journal: Journal,
    last_checkpoint: Instant,
    appended_since_checkpoint: bool,
}

/// The journal options a config gives for `state_dir`.
pub fn options(config: &JournalConfig, state_dir: &Path) -> JournalOptions {
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut opts = JournalOptions::in_state_dir(state_dir, &host);
    opts.segment_bytes = config.segment_bytes;
    opts.max_bytes = config.max_bytes;
    opts.max_age = config.max_age_secs.map(Duration::from_secs);
    opts.fsync = match config.fsync {
        FsyncMode::Always => FsyncPolicy::Always,
        FsyncMode::Interval => {
            FsyncPolicy::Interval(Duration::from_millis(config.fsync_interval_ms))
        }
        FsyncMode::Never => FsyncPolicy::Never,
    };
    opts
}

impl JournalStage {
    /// Opens the journal; returns a `journal_recovered` body when a torn tail was cut.
    pub fn open(
        config: &JournalConfig,
        state_dir: &Path,
    ) -> Result<(JournalStage, Option<EventBody>), JournalError> {
        let mut journal = Journal::open(options(config, state_dir))?;
        // Without a shipper, every durable record may be deleted by size retention (issue: shipping sets the
        // acknowledged cursor instead).
        journal.set_retention_floor(u64::MAX);
        let recovered = journal.recovered().map(|r| {
            EventBody::JournalRecovered(JournalRecovered {
                segment: r.segment.display().to_string(),
                offset: r.offset,
                bytes_cut: r.bytes_cut,
                last_seq: r.last_seq,
                reason: r.reason.clone(),
            })
        });
        Ok((
            JournalStage {
                journal,
                last_checkpoint: Instant::now(),
                appended_since_checkpoint: false,
            },
            recovered,
        ))
    }

    /// Numbers and appends `event`.
    pub fn append(&mut self, event: &mut Event) -> Result<(), JournalError> {
        self.journal.append_event(event)?;
        self.appended_since_checkpoint = true;
        Ok(())
    }

    /// Group commit and the once-a-second checkpoint; call often (every few ms to 100 ms).
    pub fn tick(&mut self) -> Result<(), JournalError> {
        if self.appended_since_checkpoint && self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL {
            self.journal.checkpoint()?;
            self.last_checkpoint = Instant::now();
            self.appended_since_checkpoint = false;
        }
        self.journal.maybe_sync()
    }

    /// Seals the journal with a checkpoint and syncs it.
    pub fn close(self) -> Result<(), JournalError> {
        self.journal.close()
    }
}
