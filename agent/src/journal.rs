//! Journal stage: every event is appended to the tamper-evident journal, and numbered by it, before any
//! other stage sees it. A checkpoint is signed at least once a second, records are made durable by the
//! configured fsync policy, and a clean stop seals the journal with a final checkpoint.
//!
//! When shipping, the journal is the spool: retention may only delete records the collector acknowledged.
//! If the unacknowledged records fill `journal.max_bytes`, new events are not journaled and are counted
//! instead; the count is written into the chain as a `loss` event with stage `spool_overflow` (once a
//! second while it lasts, and as soon as space returns), so the loss is explicit, never silent.

use std::path::Path;
use std::time::{Duration, Instant};

use auditloop_journal::{FsyncPolicy, Journal, JournalError, JournalOptions, RetentionFloor};
use auditloop_model::{Event, EventBody, JournalRecovered, Loss, LossStage};

use crate::clock::Clock;
use crate::config::{FsyncMode, JournalConfig};

/// How often a checkpoint is signed while events arrive.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// The open journal and its checkpoint timer.
pub struct JournalStage {
    journal: Journal,
    clock: Clock,
    last_checkpoint: Instant,
    appended_since_checkpoint: bool,
    spool: Option<Spool>,
}

/// Spool accounting while shipping.
struct Spool {
    /// The shipper's acknowledged sequence number (the journal's retention follows it).
    acked: RetentionFloor,
    /// The floor when retention last ran.
    floor: u64,
    /// Whether retention already ran at this floor.
    trimmed: bool,
    /// `journal.max_bytes`, if set.
    max_bytes: Option<u64>,
    /// Events not journaled since the last `spool_overflow` record.
    dropped: u64,
    /// Events not journaled since the agent started.
    dropped_total: u64,
    /// When the last `spool_overflow` record was written.
    last_report: Instant,
}

/// How often a `spool_overflow` record is written while the spool stays full.
const OVERFLOW_REPORT_INTERVAL: Duration = Duration::from_secs(1);

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
    /// Opens the journal; returns a `journal_recovered` body when a torn tail was cut. With `shipped`
    /// (the shipper's acknowledged sequence number), retention never deletes unacknowledged records.
    /// Agent events (spool overflow) are stamped with `clock`.
    pub fn open(
        config: &JournalConfig,
        state_dir: &Path,
        shipped: Option<RetentionFloor>,
        clock: Clock,
    ) -> Result<(JournalStage, Option<EventBody>), JournalError> {
        let mut journal = Journal::open(options(config, state_dir))?;
        // Without a shipper, every durable record may be deleted by retention.
        let floor = shipped
            .clone()
            .unwrap_or_else(RetentionFloor::without_shipper);
        journal.set_retention_floor(floor.clone());
        let spool = shipped.map(|acked| Spool {
            acked,
            floor: floor.floor(),
            trimmed: false,
            max_bytes: config.max_bytes,
            dropped: 0,
            dropped_total: 0,
            last_report: Instant::now(),
        });
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
                clock,
                last_checkpoint: Instant::now(),
                appended_since_checkpoint: false,
                spool,
            },
            recovered,
        ))
    }

    /// Numbers and appends `event`; returns false (and counts it) when the spool is full.
    pub fn append(&mut self, event: &mut Event) -> Result<bool, JournalError> {
        if self.spool_full()? {
            if let Some(spool) = &mut self.spool {
                spool.dropped += 1;
                spool.dropped_total += 1;
            }
            return Ok(false);
        }
        self.report_overflow(true)?;
        self.journal.append_event(event)?;
        self.appended_since_checkpoint = true;
        Ok(true)
    }

    /// Whether unacknowledged records fill the spool (after trying to free acknowledged ones). Also moves
    /// the retention floor up to the shipper's acknowledged sequence number.
    fn spool_full(&mut self) -> Result<bool, JournalError> {
        let Some(spool) = &mut self.spool else {
            return Ok(false);
        };
        let floor = spool.acked.floor();
        if floor != spool.floor {
            spool.floor = floor;
            spool.trimmed = false;
        }
        let Some(max) = spool.max_bytes else {
            return Ok(false);
        };
        if self.journal.disk_bytes() < max {
            return Ok(false);
        }
        if !spool.trimmed {
            spool.trimmed = true;
            self.journal.trim()?;
        }
        Ok(self.journal.disk_bytes() >= max)
    }

    /// Writes the `spool_overflow` record for events not journaled, when there are any and either space
    /// returned (`now`) or a second has passed.
    fn report_overflow(&mut self, now: bool) -> Result<(), JournalError> {
        let Some(spool) = &mut self.spool else {
            return Ok(());
        };
        if spool.dropped == 0 || !(now || spool.last_report.elapsed() >= OVERFLOW_REPORT_INTERVAL) {
            return Ok(());
        }
        let mut event = self.clock.agent_event(EventBody::Loss(Loss {
            stage: LossStage::SpoolOverflow,
            record: "event".into(),
            count: spool.dropped,
            total: spool.dropped_total,
        }));
        tracing::warn!(
            dropped = spool.dropped,
            total = spool.dropped_total,
            "spool full: events were not journaled (recorded as spool_overflow)"
        );
        spool.dropped = 0;
        spool.last_report = Instant::now();
        self.journal.append_event(&mut event)?;
        self.appended_since_checkpoint = true;
        Ok(())
    }

    /// Group commit and the once-a-second checkpoint; call often (every few ms to 100 ms).
    pub fn tick(&mut self) -> Result<(), JournalError> {
        let full = self.spool_full()?;
        self.report_overflow(!full)?;
        if self.appended_since_checkpoint && self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL {
            self.journal.checkpoint()?;
            self.last_checkpoint = Instant::now();
            self.appended_since_checkpoint = false;
        }
        self.journal.maybe_sync()
    }

    /// Seals the journal with a checkpoint and syncs it (after recording any spool overflow).
    pub fn close(mut self) -> Result<(), JournalError> {
        self.report_overflow(true)?;
        self.journal.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditloop_journal::reader::Reader;
    use auditloop_journal::record::Payload;

    fn event() -> Event {
        Clock::measure().agent_event(EventBody::Loss(Loss {
            stage: LossStage::Decode,
            record: "x".repeat(200),
            count: 0,
            total: 0,
        }))
    }

    #[test]
    fn a_full_spool_counts_events_into_the_chain_and_resumes_once_acked() {
        let dir = tempfile::tempdir().unwrap();
        let config = JournalConfig {
            segment_bytes: 4096,
            max_bytes: Some(16 * 1024),
            fsync: FsyncMode::Never,
            ..JournalConfig::default()
        };
        let acked = RetentionFloor::acknowledged_up_to(0);
        let (mut stage, _) =
            JournalStage::open(&config, dir.path(), Some(acked.clone()), Clock::measure()).unwrap();
        let mut stored = 0;
        let mut dropped = 0;
        for _ in 0..500 {
            if stage.append(&mut event()).unwrap() {
                stored += 1;
            } else {
                dropped += 1;
            }
        }
        assert!(
            stored > 20 && dropped > 0,
            "stored {stored}, dropped {dropped}"
        );
        // Nothing unacknowledged was deleted.
        let first = Reader::open(&dir.path().join("journal"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(first.seq, 1);
        // The collector acknowledges everything: space returns, and the loss is written into the chain.
        stage.journal.sync().unwrap();
        acked.acknowledge(stage.journal.next_seq() - 1);
        stage.tick().unwrap();
        assert!(stage.append(&mut event()).unwrap());
        stage.close().unwrap();
        let losses: Vec<u64> = Reader::open(&dir.path().join("journal"))
            .unwrap()
            .filter_map(|r| match r.unwrap().payload {
                Payload::Event(Event {
                    event: EventBody::Loss(l),
                    ..
                }) if l.stage == LossStage::SpoolOverflow => Some(l.count),
                _ => None,
            })
            .collect();
        assert_eq!(losses.iter().sum::<u64>(), dropped, "{losses:?}");
        let report = auditloop_journal::verify(
            &dir.path().join("journal"),
            &auditloop_journal::VerifyOptions::default(),
            &mut |_, _| {},
        )
        .unwrap();
        assert!(report.is_clean(), "{report:?}");
    }
}
