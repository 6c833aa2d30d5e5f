//! Counting what a stage could not pass on, so every loss becomes a `loss` record in the chain.
//!
//! A stage that sheds (the journal on a full disk or a full spool, a blocked stdout, a full webhook queue)
//! counts into a [`LossCounter`]; the consumer journals the counter's [`Loss`] when the stage recovers,
//! and at most once per [`REPORT_INTERVAL`] while it lasts.

use std::time::{Duration, Instant};

use auditloop_model::{Loss, LossStage};

/// How often a `loss` record is written while a stage keeps shedding.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Records one stage did not pass on, since the last report and since the start.
#[derive(Debug)]
pub struct LossCounter {
    stage: LossStage,
    record: &'static str,
    pending: u64,
    total: u64,
    last_report: Instant,
}

impl LossCounter {
    /// A counter for `record`s lost at `stage`.
    pub fn new(stage: LossStage, record: &'static str) -> LossCounter {
        LossCounter {
            stage,
            record,
            pending: 0,
            total: 0,
            last_report: Instant::now(),
        }
    }

    /// Counts `n` more lost records.
    pub fn count(&mut self, n: u64) {
        self.pending += n;
        self.total += n;
    }

    /// Lost records not yet reported.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Lost records since the start.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The `loss` body for what is pending (and resets it), if anything is.
    pub fn take(&mut self) -> Option<Loss> {
        if self.pending == 0 {
            return None;
        }
        let loss = Loss {
            stage: self.stage,
            record: self.record.into(),
            count: self.pending,
            total: self.total,
        };
        self.pending = 0;
        self.last_report = Instant::now();
        Some(loss)
    }

    /// Like [`LossCounter::take`], but only once [`REPORT_INTERVAL`] has passed since the last report.
    pub fn take_due(&mut self) -> Option<Loss> {
        if self.last_report.elapsed() < REPORT_INTERVAL {
            return None;
        }
        self.take()
    }

    /// Puts a taken report back (it could not be journaled).
    pub fn restore(&mut self, loss: &Loss) {
        self.pending += loss.count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_pending_and_total_and_reports_once() {
        let mut c = LossCounter::new(LossStage::Stdout, "event");
        assert!(c.take().is_none());
        c.count(3);
        c.count(2);
        let loss = c.take().unwrap();
        assert_eq!((loss.count, loss.total), (5, 5));
        assert!(c.take().is_none());
        c.count(1);
        assert!(c.take_due().is_none(), "reported less than a second ago");
        let again = c.take().unwrap();
        assert_eq!((again.count, again.total), (1, 6));
        c.restore(&again);
        assert_eq!(c.pending(), 1);
        assert_eq!(c.total(), 6);
    }
}
