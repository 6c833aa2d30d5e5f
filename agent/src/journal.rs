//! Journal stage: every event is appended to the tamper-evident journal, and numbered by it, before any
//! other stage sees it. A checkpoint is signed at least once a second while records arrive (checked at
//! every append as well as every tick, so a steady stream of events cannot postpone it), the first one as
//! soon as a run has journaled something, and a heartbeat checkpoint every [`HEARTBEAT`] when nothing
//! arrives, so the chain always has a signed head at most a few seconds old: that is the liveness the
//! collector sees. Records are made durable by the configured fsync policy, and a clean stop seals the
//! journal with a final checkpoint.
//!
//! When shipping, the journal is the spool: retention may only delete records the collector acknowledged.
//! If the unacknowledged records fill `journal.max_bytes`, new events are not journaled and are counted
//! instead; the count is written into the chain as a `loss` event with stage `spool_overflow` (once a
//! second while it lasts, and as soon as space returns), so the loss is explicit, never silent.
//!
//! When the journal cannot be written (a full disk, an I/O error), `journal.on_error` decides: `continue`
//! keeps the agent running, counts every event that did not enter the chain, retries every tick, and
//! journals one `loss` record with stage `journal` and the exact count as soon as writing works again;
//! `halt` returns the error so the agent exits non-zero. The journal keeps a reserve allocated ahead of its
//! current segment: when the reserve cannot be renewed the disk is treated as full before any write
//! fails, so the records already accepted, the loss record and the sealing checkpoint still fit.

use std::path::Path;
use std::time::{Duration, Instant};

use auditloop_journal::{FsyncPolicy, Journal, JournalError, JournalOptions, RetentionFloor};
use auditloop_model::{Event, EventBody, JournalRecovered, Loss, LossStage};

use crate::clock::Clock;
use crate::config::{FsyncMode, JournalConfig, OnJournalError};
use crate::loss::LossCounter;

/// How often a checkpoint is signed while events arrive.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// How often a checkpoint is signed when nothing arrives (a heartbeat: one small record, proving the agent
/// alive and giving the chain a signed head at most this old).
pub const HEARTBEAT: Duration = Duration::from_secs(3);

/// The open journal and its checkpoint timer.
pub struct JournalStage {
    journal: Journal,
    clock: Clock,
    last_checkpoint: Instant,
    appended_since_checkpoint: bool,
    spool: Option<Spool>,
    on_error: OnJournalError,
    /// Why the journal cannot take new events right now (a write failed, or the disk is full).
    impaired: Option<String>,
    /// Events that did not enter the chain because the journal could not be written.
    lost: LossCounter,
    /// `loss` events this stage journaled on its own, for the caller to pass on (stdout).
    reported: Vec<Event>,
    /// Where what was journaled is counted.
    telemetry: crate::telemetry::Telemetry,
}

/// When the next checkpoint is due, `last` being the last one: [`CHECKPOINT_INTERVAL`] after it when
/// records were appended since, else [`HEARTBEAT`] after it.
fn checkpoint_due(last: Instant, appended: bool, now: Instant) -> bool {
    let every = if appended {
        CHECKPOINT_INTERVAL
    } else {
        HEARTBEAT
    };
    now.saturating_duration_since(last) >= every
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
    /// Events not journaled because the spool was full.
    lost: LossCounter,
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
    /// Opens the journal; returns a `journal_recovered` body for a torn tail that was cut and for a damaged
    /// key ladder that was set aside. With `shipped`
    /// (the shipper's acknowledged sequence number), retention never deletes unacknowledged records.
    /// Agent events (losses) are stamped with `clock`.
    pub fn open(
        config: &JournalConfig,
        state_dir: &Path,
        shipped: Option<RetentionFloor>,
        clock: Clock,
    ) -> Result<(JournalStage, Vec<EventBody>), JournalError> {
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
            lost: LossCounter::new(LossStage::SpoolOverflow, "event"),
        });
        let recovered: Vec<EventBody> = journal
            .recovered()
            .into_iter()
            .chain(journal.ladder_reset())
            .map(|r| {
                EventBody::JournalRecovered(JournalRecovered {
                    segment: r.segment.display().to_string(),
                    offset: r.offset,
                    bytes_cut: r.bytes_cut,
                    last_seq: r.last_seq,
                    reason: r.reason.clone(),
                })
            })
            .collect();
        // The run's first records are signed as soon as they are appended.
        let last_checkpoint = Instant::now()
            .checked_sub(CHECKPOINT_INTERVAL)
            .unwrap_or_else(Instant::now);
        Ok((
            JournalStage {
                journal,
                clock,
                last_checkpoint,
                appended_since_checkpoint: false,
                spool,
                on_error: config.on_error,
                impaired: None,
                lost: LossCounter::new(LossStage::Journal, "event"),
                reported: Vec::new(),
                telemetry: crate::telemetry::Telemetry::default(),
            },
            recovered,
        ))
    }

    /// Numbers and appends `event`; returns whether it entered the chain (false: it was counted as lost).
    /// Errors only with `on_error: halt`.
    pub fn append(&mut self, event: &mut Event) -> Result<bool, JournalError> {
        if self.spool_full()? {
            if let Some(spool) = &mut self.spool {
                spool.lost.count(1);
            }
            return Ok(false);
        }
        if self.check_space().is_err() || self.impaired.is_some() {
            self.lost.count(1);
            return match self.on_error {
                OnJournalError::Halt => Err(self.low_space_error()),
                OnJournalError::Continue => Ok(false),
            };
        }
        self.report_losses(true)?;
        let entered = self.append_raw(event)?;
        if !entered {
            self.lost.count(1);
        }
        if entered && checkpoint_due(self.last_checkpoint, true, Instant::now()) {
            self.checkpoint()?;
        }
        Ok(entered)
    }

    /// Counts what is journaled from now on in `telemetry`.
    pub fn set_telemetry(&mut self, telemetry: crate::telemetry::Telemetry) {
        self.telemetry = telemetry;
    }

    /// Signs a checkpoint now; on failure marks the journal impaired (with `halt`, returns the error).
    fn checkpoint(&mut self) -> Result<(), JournalError> {
        match self.journal.checkpoint() {
            Ok(_) => {
                self.telemetry.checkpointed();
                self.last_checkpoint = Instant::now();
                self.appended_since_checkpoint = false;
                Ok(())
            }
            Err(err) => self.fail(err),
        }
    }

    /// Events counted as lost since the start (spool overflow and journal errors).
    pub fn lost_total(&self) -> u64 {
        self.lost.total() + self.spool.as_ref().map_or(0, |s| s.lost.total())
    }

    /// Whether the journal is taking new events.
    pub fn is_impaired(&self) -> bool {
        self.impaired.is_some()
    }

    /// Appends `event`; on a write error records why and tells whether the event still entered the chain
    /// (it did when it was numbered: its bytes stay buffered and are written once the disk takes them).
    fn append_raw(&mut self, event: &mut Event) -> Result<bool, JournalError> {
        event.seq = 0;
        match self.journal.append_event(event) {
            Ok(_) => {
                self.appended_since_checkpoint = true;
                self.telemetry.journaled(event);
                Ok(true)
            }
            Err(err) => {
                let entered = event.seq != 0 && self.journal.next_seq() > event.seq;
                if entered {
                    self.appended_since_checkpoint = true;
                }
                self.fail(err)?;
                Ok(entered)
            }
        }
    }

    /// Marks the journal impaired by `err` (logged once per episode); with `halt`, returns it.
    fn fail(&mut self, err: JournalError) -> Result<(), JournalError> {
        if self.on_error == OnJournalError::Halt {
            return Err(err);
        }
        if self.impaired.is_none() {
            tracing::error!(
                "journal write failed, events are counted until it can be written again: {err}"
            );
        }
        self.impaired = Some(err.to_string());
        Ok(())
    }

    /// Whether the reserve is intact; marks the journal impaired when the disk became full.
    fn check_space(&mut self) -> Result<(), ()> {
        if !self.journal.low_space() {
            return Ok(());
        }
        if self.impaired.is_none() {
            let err = self.low_space_error();
            tracing::error!("{err}: events are counted until space is freed");
            self.impaired = Some(err.to_string());
        }
        Err(())
    }

    fn low_space_error(&self) -> JournalError {
        JournalError::LowSpace {
            dir: self.journal.dir().to_owned(),
        }
    }

    /// Tries to write again after a failure: renews the reserve (which writes what is buffered).
    fn try_recover(&mut self) -> Result<(), JournalError> {
        if self.impaired.is_none() && !self.journal.low_space() {
            return Ok(());
        }
        match self.journal.renew_reserve() {
            Ok(()) if !self.journal.low_space() => {
                if self.impaired.take().is_some() {
                    tracing::info!(
                        lost = self.lost.pending(),
                        "the journal can be written again; the lost events are recorded as a loss"
                    );
                }
                Ok(())
            }
            Ok(()) => {
                let _ = self.check_space();
                Ok(())
            }
            Err(err) => self.fail(err),
        }
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
            if let Err(err) = self.journal.trim() {
                self.fail(err)?;
            }
        }
        Ok(self.journal.disk_bytes() >= max)
    }

    /// Writes `loss` records for events not journaled, when there are any and either space returned
    /// (`now`) or a second has passed. Nothing is written while the journal is impaired.
    fn report_losses(&mut self, now: bool) -> Result<(), JournalError> {
        if self.impaired.is_some() {
            return Ok(());
        }
        let overflow = match &mut self.spool {
            Some(spool) if now => spool.lost.take(),
            Some(spool) => spool.lost.take_due(),
            None => None,
        };
        if let Some(loss) = overflow {
            tracing::warn!(
                dropped = loss.count,
                total = loss.total,
                "spool full: events were not journaled (recorded as spool_overflow)"
            );
            if !self.append_loss(&loss)?
                && let Some(spool) = &mut self.spool
            {
                spool.lost.restore(&loss);
            }
        }
        if let Some(loss) = self.lost.take() {
            tracing::warn!(
                lost = loss.count,
                total = loss.total,
                "events were not journaled while the journal could not be written (recorded as a loss)"
            );
            if !self.append_loss(&loss)? {
                self.lost.restore(&loss);
            }
        }
        Ok(())
    }

    /// Journals a `loss` body; returns whether it entered the chain.
    fn append_loss(&mut self, loss: &Loss) -> Result<bool, JournalError> {
        let mut event = self.clock.agent_event(EventBody::Loss(loss.clone()));
        let entered = self.append_raw(&mut event)?;
        if entered {
            self.reported.push(event);
        }
        Ok(entered)
    }

    /// The `loss` events this stage journaled on its own since the last call (to print them).
    pub fn take_reported(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.reported)
    }

    /// Journals a loss another stage counted (stdout, webhook) like any agent event; returns whether it
    /// entered the chain.
    pub fn record_loss(&mut self, loss: Loss) -> Result<bool, JournalError> {
        let mut event = self.clock.agent_event(EventBody::Loss(loss));
        let entered = self.append(&mut event)?;
        if entered {
            self.reported.push(event);
        }
        Ok(entered)
    }

    /// Group commit, the once-a-second checkpoint and the [`HEARTBEAT`], loss reports and recovery after a
    /// write error; call often (every few ms to 100 ms). Errors only with `on_error: halt`.
    pub fn tick(&mut self) -> Result<(), JournalError> {
        self.telemetry
            .journal(self.journal.disk_bytes(), self.impaired.is_some());
        self.try_recover()?;
        let full = self.spool_full()?;
        self.report_losses(!full)?;
        if self.impaired.is_some() {
            return Ok(());
        }
        if checkpoint_due(
            self.last_checkpoint,
            self.appended_since_checkpoint,
            Instant::now(),
        ) {
            self.checkpoint()?;
            if self.impaired.is_some() {
                return Ok(());
            }
        }
        if let Err(err) = self.journal.maybe_sync() {
            self.fail(err)?;
        }
        Ok(())
    }

    /// Seals the journal with a checkpoint and syncs it, after recording any losses (into the reserve when
    /// the disk is full).
    pub fn close(mut self) -> Result<(), JournalError> {
        let _ = self.try_recover();
        // The reserve holds the last loss records even when the disk is still full.
        self.impaired = None;
        self.on_error = OnJournalError::Halt;
        self.report_losses(true)?;
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

    /// Sequence numbers of the checkpoints in the journal of `state`.
    fn checkpoints(state: &Path) -> Vec<u64> {
        Reader::open(&state.join("journal"))
            .unwrap()
            .filter_map(|r| {
                let r = r.unwrap();
                matches!(r.payload, Payload::Checkpoint(_)).then_some(r.seq)
            })
            .collect()
    }

    #[test]
    fn checkpoints_are_due_a_second_after_appends_and_a_heartbeat_after_silence() {
        let t = Instant::now();
        assert!(!checkpoint_due(t, true, t + Duration::from_millis(999)));
        assert!(checkpoint_due(t, true, t + CHECKPOINT_INTERVAL));
        assert!(!checkpoint_due(t, false, t + Duration::from_millis(2999)));
        assert!(checkpoint_due(t, false, t + HEARTBEAT));
        assert!(
            !checkpoint_due(t + HEARTBEAT, false, t),
            "a clock read before `last`"
        );
    }

    #[test]
    fn an_idle_stage_writes_a_heartbeat_checkpoint_and_a_busy_one_checkpoints_at_append() {
        let dir = tempfile::tempdir().unwrap();
        let config = JournalConfig {
            fsync: FsyncMode::Never,
            ..JournalConfig::default()
        };
        let (mut stage, _) =
            JournalStage::open(&config, dir.path(), None, Clock::measure()).unwrap();
        // The run's first record is signed at once.
        assert!(stage.append(&mut event()).unwrap());
        stage.journal.sync().unwrap();
        let first = checkpoints(dir.path());
        assert_eq!(first.len(), 1, "{first:?}");
        // Nothing appended and the heartbeat not yet due: no checkpoint.
        stage.tick().unwrap();
        assert_eq!(checkpoints(dir.path()), first);
        // Idle for a heartbeat: a checkpoint right after the previous one, with nothing in between.
        stage.last_checkpoint = Instant::now().checked_sub(HEARTBEAT).unwrap();
        stage.tick().unwrap();
        let after = checkpoints(dir.path());
        assert_eq!(after.len(), 2, "{after:?}");
        assert_eq!(
            after[1],
            after[0] + 1,
            "a heartbeat follows the checkpoint directly"
        );
        // Appends alone, without ticks, still checkpoint once a second.
        stage.last_checkpoint = Instant::now().checked_sub(CHECKPOINT_INTERVAL).unwrap();
        assert!(stage.append(&mut event()).unwrap());
        assert_eq!(checkpoints(dir.path()).len(), 3);
        stage.close().unwrap();
        let report = auditloop_journal::verify(
            &dir.path().join("journal"),
            &auditloop_journal::VerifyOptions::default(),
            &mut |_, _| {},
        )
        .unwrap();
        assert!(report.is_clean(), "{report:?}");
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
