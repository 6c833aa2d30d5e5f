//! Stdout stage: the printed copies of events go through a queue bounded in bytes ([`MAX_PENDING`]) to a
//! thread of their own, so a
//! blocked stdout (`auditloop run | sleep 3600`, a stalled terminal or log pipe) never stalls journaling
//! or actions. When the queue is full the printed copies are dropped and counted, and the consumer
//! journals the count as a `loss` with stage `stdout`; the events themselves are in the journal all the
//! same. When stdout closes (the reader went away), printing stops for the rest of the run.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use auditloop_model::{Event, Loss, LossStage};

use crate::loss::LossCounter;
use crate::output::{Format, write_event};

/// Bytes of printed copies waiting for stdout; more are dropped (a burst of some 20,000 events fits).
pub const MAX_PENDING: usize = 8 * 1024 * 1024;

/// A batch is handed over once it holds this many bytes (or when the consumer is idle).
const BATCH_BYTES: usize = 64 * 1024;

/// How long a stopping agent waits for stdout to take what is queued.
const DRAIN: Duration = Duration::from_secs(2);

/// Printed copies of several events.
struct Batch {
    bytes: Vec<u8>,
    events: u64,
}

/// What the printing thread reports back.
#[derive(Default)]
struct Progress {
    /// Events written to stdout.
    printed: AtomicU64,
    /// Bytes handed over and not yet written.
    pending: AtomicUsize,
    /// Stdout failed (closed); nothing more is printed.
    closed: AtomicBool,
}

/// The consumer's side of the stdout stage.
pub struct StdoutStage {
    format: Format,
    batch: Batch,
    queue: Option<Sender<Batch>>,
    max_pending: usize,
    progress: Arc<Progress>,
    done: Receiver<()>,
    /// Events handed to the printing thread.
    sent: u64,
    lost: LossCounter,
    closed_reported: bool,
}

impl StdoutStage {
    /// Starts the printing thread on the process's stdout.
    pub fn start(format: Format) -> std::io::Result<StdoutStage> {
        StdoutStage::start_to(format, Box::new(std::io::stdout()), MAX_PENDING)
    }

    /// Starts the printing thread writing to `out`, holding at most `max_pending` bytes for it.
    pub fn start_to(
        format: Format,
        out: Box<dyn Write + Send>,
        max_pending: usize,
    ) -> std::io::Result<StdoutStage> {
        let (queue, batches) = std::sync::mpsc::channel::<Batch>();
        let (done_tx, done) = std::sync::mpsc::channel();
        let progress = Arc::new(Progress::default());
        let shared = progress.clone();
        std::thread::Builder::new()
            .name("stdout".into())
            .spawn(move || {
                print(batches, out, &shared);
                let _ = done_tx.send(());
            })?;
        Ok(StdoutStage {
            format,
            batch: Batch {
                bytes: Vec::with_capacity(BATCH_BYTES),
                events: 0,
            },
            queue: Some(queue),
            max_pending,
            progress,
            done,
            sent: 0,
            lost: LossCounter::new(LossStage::Stdout, "event"),
            closed_reported: false,
        })
    }

    /// Adds `event`'s printed copy to the current batch (handed over when it is big enough).
    pub fn print(&mut self, event: &Event) {
        if self.queue.is_none() || !self.format.prints(event) {
            return;
        }
        if write_event(&mut self.batch.bytes, self.format, event).is_ok() {
            self.batch.events += 1;
        }
        if self.batch.bytes.len() >= BATCH_BYTES {
            self.flush();
        }
    }

    /// Hands the current batch to the printing thread; drops and counts it when stdout is behind.
    pub fn flush(&mut self) {
        if self.batch.events == 0 {
            return;
        }
        let Some(queue) = &self.queue else {
            return;
        };
        let batch = std::mem::replace(
            &mut self.batch,
            Batch {
                bytes: Vec::with_capacity(BATCH_BYTES),
                events: 0,
            },
        );
        let (events, bytes) = (batch.events, batch.bytes.len());
        if self.progress.pending.load(Ordering::Acquire) + bytes > self.max_pending {
            self.lost.count(events);
            return;
        }
        self.progress.pending.fetch_add(bytes, Ordering::AcqRel);
        if queue.send(batch).is_err() {
            self.lost.count(events);
            self.queue = None;
        } else {
            self.sent += events;
        }
    }

    /// A `loss` record to journal: when drops are pending and a second has passed, or once when stdout
    /// closed (with what it never printed).
    pub fn take_loss(&mut self) -> Option<Loss> {
        if self.progress.closed.load(Ordering::Acquire) && !self.closed_reported {
            self.closed_reported = true;
            self.queue = None;
            let unprinted = self
                .sent
                .saturating_sub(self.progress.printed.load(Ordering::Acquire));
            self.lost.count(unprinted);
            return self.lost.take();
        }
        self.lost.take_due()
    }

    /// Flushes, waits briefly for stdout to take what is queued, and returns the final `loss` record
    /// (drops, and what a still-blocked stdout never printed).
    pub fn finish(mut self) -> Option<Loss> {
        self.flush();
        drop(self.queue.take());
        let deadline = Instant::now() + DRAIN;
        let _ = self
            .done
            .recv_timeout(deadline.saturating_duration_since(Instant::now()));
        let unprinted = self
            .sent
            .saturating_sub(self.progress.printed.load(Ordering::Acquire));
        if !self.closed_reported {
            self.lost.count(unprinted);
        }
        self.lost.take()
    }
}

/// The printing thread: writes batches until the queue closes or stdout fails.
fn print(batches: Receiver<Batch>, mut out: Box<dyn Write + Send>, progress: &Progress) {
    for batch in batches {
        if let Err(err) = out.write_all(&batch.bytes).and_then(|()| out.flush()) {
            tracing::warn!("stdout failed, events are journaled but no longer printed: {err}");
            progress.closed.store(true, Ordering::Release);
            return;
        }
        progress.printed.fetch_add(batch.events, Ordering::Release);
        progress
            .pending
            .fetch_sub(batch.bytes.len(), Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use auditloop_model::EventBody;

    use crate::clock::Clock;

    /// A writer that blocks until released, then collects what it is given.
    struct Gate {
        open: Arc<(Mutex<bool>, std::sync::Condvar)>,
        out: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (lock, cvar) = &*self.open;
            let mut open = lock.lock().unwrap();
            while !*open {
                open = cvar.wait(open).unwrap();
            }
            self.out.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn event() -> Event {
        Clock::measure().agent_event(EventBody::AgentStop(Default::default()))
    }

    #[test]
    fn a_blocked_stdout_drops_and_counts_without_blocking_the_caller() {
        let open = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let out = Arc::new(Mutex::new(Vec::new()));
        let gate = Gate {
            open: open.clone(),
            out: out.clone(),
        };
        let line = serde_json::to_vec(&event()).unwrap().len() + 1;
        // Room for ten printed events: the thread takes the first and blocks in it.
        let mut stage = StdoutStage::start_to(Format::Json, Box::new(gate), 10 * line).unwrap();
        let total = 110;
        for _ in 0..total {
            stage.print(&event());
            stage.flush();
        }
        let lost = stage.lost.pending();
        assert_eq!(lost, 100, "lost {lost} of {total}");
        *open.0.lock().unwrap() = true;
        open.1.notify_all();
        let last = stage.finish().expect("a loss record");
        assert_eq!(last.stage, LossStage::Stdout);
        assert_eq!(last.count, lost);
        let printed = out.lock().unwrap().iter().filter(|b| **b == b'\n').count() as u64;
        assert_eq!(printed + lost, total);
    }

    #[test]
    fn a_closed_stdout_stops_printing_and_reports_once() {
        let mut stage = StdoutStage::start_to(Format::Json, Box::new(Closed), MAX_PENDING).unwrap();
        stage.print(&event());
        stage.flush();
        let deadline = Instant::now() + Duration::from_secs(5);
        let loss = loop {
            if let Some(loss) = stage.take_loss() {
                break loss;
            }
            assert!(Instant::now() < deadline, "stdout closure never reported");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(loss.count, 1);
        stage.print(&event());
        stage.flush();
        assert!(stage.take_loss().is_none());
        assert!(stage.finish().is_none());
    }
}
