//! The ring-buffer reader loop.
//!
//! Woken by epoll when the kernel forces a wakeup (enough data pending) and by a short timer otherwise,
//! since records are submitted without per-record wakeups. Drains in bounded batches and sends each batch
//! on before reading more.

use std::time::{Duration, Instant};

use agent_common::decode::decode;
use agent_common::wire::{LOST_SLOTS, MAX_KINDS, RecordKind, SyscallOp};
use auditloop_model::{AgentStart, AgentStop, Event, EventBody, FileOp, Tamper};
use aya::maps::{MapData, PerCpuArray, RingBuf};
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

use super::sensitive::SensitiveWatch;
use super::{Assembler, Capture, CaptureError, CaptureStats, LossBooks};
use crate::clock::monotonic_ns;

/// Records drained before the batch is sent on.
const MAX_BATCH: usize = 4096;
/// How often loss counters are read and stale exec entries flushed.
const HOUSEKEEPING: Duration = Duration::from_millis(100);
/// How often the wall-clock offset is measured again.
const CLOCK_REFRESH: Duration = Duration::from_secs(1);
/// How often the agent's programs, links and config maps are compared with what it attached and wrote.
const INTEGRITY_CHECK: Duration = Duration::from_secs(1);
/// How long after a kernel wakeup the ring buffer is read once more: just past the kernel's minimum time
/// between urgent wakeups (50 µs), so an urgent record submitted without a wakeup in that window is read
/// at once instead of at the next poll.
const REPOLL_AFTER: Duration = Duration::from_micros(60);

struct State {
    assembler: Assembler,
    books: LossBooks,
    lost: PerCpuArray<MapData, u64>,
    stats: CaptureStats,
    batch: Vec<Event>,
    /// Bytes read since the ring buffer was last found empty (one catch-up).
    backlog: u64,
    telemetry: crate::telemetry::Telemetry,
}

impl State {
    /// Reads up to [`MAX_BATCH`] records; returns whether the ring buffer may hold more.
    fn drain(&mut self, ring: &mut RingBuf<MapData>) -> bool {
        let mut n = 0;
        while n < MAX_BATCH {
            let decoded = match ring.next() {
                Some(item) => {
                    self.backlog += item.len() as u64;
                    decode(&item)
                }
                None => {
                    self.telemetry
                        .ring_backlog(std::mem::take(&mut self.backlog));
                    return false;
                }
            };
            n += 1;
            self.stats.records += 1;
            match decoded {
                Ok(record) => self.assembler.push(record, &mut self.batch),
                Err(err) => {
                    self.stats.decode_errors += 1;
                    self.books.count_decode_error();
                    tracing::warn!("skipping malformed kernel record: {err}");
                }
            }
        }
        true
    }

    fn account_losses(&mut self) {
        let mut totals = [0u64; LOST_SLOTS as usize];
        let slots = RecordKind::ALL
            .iter()
            .map(|k| *k as u32)
            .chain(SyscallOp::ALL.iter().map(|op| MAX_KINDS + *op as u32));
        for slot in slots {
            match self.lost.get(&slot, 0) {
                Ok(per_cpu) => {
                    if let Some(total) = totals.get_mut(slot as usize) {
                        *total = per_cpu.iter().sum();
                    }
                }
                Err(err) => tracing::warn!("reading loss counter {slot}: {err}"),
            }
        }
        for loss in self.books.update(&totals) {
            let event = self.assembler.agent_event(EventBody::Loss(loss));
            self.batch.push(event);
        }
        self.stats.kernel_lost = self.books.kernel_total();
    }

    /// Tells the sensitive-file watch about the reads the tracepoints recorded in this batch (so its own
    /// report of those opens is dropped), and adds its reports that have no tracepoint twin.
    fn sensitive_reads(&mut self, watch: &mut SensitiveWatch) {
        for event in &self.batch {
            if let EventBody::File(f) = &event.event
                && f.op == FileOp::Read
                && f.success
            {
                watch.seen_by_tracepoint(event.process.pid, &f.path, event.mono_ns);
            }
        }
        for (process, _, body) in watch.due() {
            let process = self.assembler.complete_process(process);
            let event = self.assembler.event_for(process, body);
            self.batch.push(event);
        }
    }

    /// Sends the batch on; false when the receiver is gone.
    async fn flush(&mut self, events: &mpsc::Sender<Event>) -> bool {
        for event in self.batch.drain(..) {
            if events.send(event).await.is_err() {
                return false;
            }
            self.stats.events += 1;
        }
        true
    }
}

/// The still-attached programs after capture stopped; detach them once everything else is done.
pub struct Detacher {
    ebpf: aya::Ebpf,
    links: Vec<(&'static str, aya::programs::trace_point::TracePointLinkId)>,
}

impl Detacher {
    /// Detaches and unloads every program (takes a few seconds for ~100 tracepoints).
    pub fn detach(mut self) {
        let started = Instant::now();
        super::loader::detach_all(&mut self.ebpf, self.links);
        drop(self.ebpf);
        tracing::debug!(elapsed = ?started.elapsed(), "programs detached and unloaded");
    }
}

pub(super) async fn run(
    capture: Capture,
    events: mpsc::Sender<Event>,
    mut shutdown: watch::Receiver<bool>,
    mut reload: watch::Receiver<super::Settings>,
) -> Result<(CaptureStats, Detacher), CaptureError> {
    let Capture {
        loaded,
        mut watch,
        startup_changes,
        assembler,
        sensitive,
        poll_interval,
        ring_buffer_bytes,
        own,
        telemetry,
        tier,
        features,
    } = capture;
    let mut sensitive = match sensitive {
        // SAFETY: the AsyncFd owns the watch, which owns the group's fd, so the fd outlives the
        // registration.
        Some(s) => Some(
            unsafe { AsyncFd::register(SensitiveFd(s)) }.map_err(|e| CaptureError::Io(e.into()))?,
        ),
        None => None,
    };
    let super::loader::Loaded {
        mut ebpf,
        ring,
        lost,
        attached,
        links,
    } = loaded;
    let mut state = State {
        assembler,
        books: LossBooks::default(),
        lost,
        stats: CaptureStats::default(),
        batch: Vec::with_capacity(MAX_BATCH),
        backlog: 0,
        telemetry,
    };
    let start = state
        .assembler
        .agent_event(EventBody::AgentStart(AgentStart {
            version: env!("CARGO_PKG_VERSION").into(),
            tracepoints: u32::try_from(attached).unwrap_or(u32::MAX),
            ring_buffer_bytes,
            kernel: features.kernel.clone(),
            tier: tier.as_str().into(),
            features: features.summary(),
        }));
    state.batch.push(start);
    for change in startup_changes {
        let event = super::configwatch::ConfigWatch::startup_event(change, &mut state.assembler);
        state.batch.push(event);
    }
    // SAFETY: the AsyncFd owns the ring buffer, which owns the fd, so the fd outlives the registration.
    let mut ring = unsafe { AsyncFd::register(ring) }.map_err(|e| CaptureError::Io(e.into()))?;
    let mut repoll = Repoll::new()?;
    let mut tick = tokio::time::interval(poll_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_housekeeping = Instant::now();
    let mut last_clock = Instant::now();
    let mut integrity = super::integrity::Integrity::snapshot(&ebpf, own);
    let mut last_integrity = Instant::now();
    let mut reported: Vec<super::integrity::Finding> = Vec::new();

    let mut open = true;
    let mut reload_open = true;
    while open {
        let more = tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
                false
            }
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                let more = state.drain(guard.get_inner_mut());
                if !more {
                    guard.clear_ready();
                }
                repoll.arm();
                more
            }
            () = repoll.fired() => state.drain(ring.get_mut()),
            _ = tick.tick() => state.drain(ring.get_mut()),
            guard = readable(&mut sensitive) => {
                if let Ok(mut guard) = guard {
                    guard.get_inner_mut().0.read();
                    guard.clear_ready();
                }
                false
            }
            changed = reload.changed(), if reload_open => {
                if changed.is_err() {
                    reload_open = false;
                } else {
                    let settings = reload.borrow_and_update().clone();
                    state
                        .assembler
                        .set_policy(super::policy::PathPolicy::new(&settings.capture));
                    let ancestry = settings.capture.ancestry;
                    state.assembler.set_ancestry(ancestry.depth, ancestry.exec_depth);
                    if let Some(s) = sensitive.as_mut() {
                        let s = &mut s.get_mut().0;
                        s.set_entries(&settings.capture.sensitive_paths);
                        s.set_ignore(&settings.capture.ignore.pids, &settings.capture.ignore.comms);
                    }
                    let applied = super::filters::apply(&settings.capture, settings.acting.as_ref(), &mut ebpf)
                        .and_then(|()| super::filters::set_exec_kill(&mut ebpf, &settings.exec_kill))
                        .and_then(|()| {
                            if tier == super::features::Tier::Lsm {
                                super::lsm::set_deny(&mut ebpf, &settings.deny.0)?;
                            }
                            Ok(())
                        });
                    state.assembler.set_deny_names(settings.deny.1.clone());
                    match applied {
                        Ok(()) => tracing::info!("capture filters reloaded"),
                        Err(err) => tracing::error!("reloading capture filters: {err}"),
                    }
                    integrity.rebase(&ebpf);
                }
                false
            }
        };
        let touches = state.assembler.take_touches();
        if !touches.is_empty() {
            watch.check(touches, &mut state.assembler, &mut state.batch);
        }
        if let Some(s) = sensitive.as_mut() {
            state.sensitive_reads(&mut s.get_mut().0);
        }
        if last_housekeeping.elapsed() >= HOUSEKEEPING || more {
            last_housekeeping = Instant::now();
            state.account_losses();
            state
                .assembler
                .flush_stale(monotonic_ns(), &mut state.batch);
            if last_integrity.elapsed() >= INTEGRITY_CHECK {
                last_integrity = Instant::now();
                let found = integrity.check(&ebpf);
                for finding in found.iter().filter(|f| f.restored || !reported.contains(f)) {
                    tracing::warn!(target = %finding.target, "{}", finding.detail);
                    let body = EventBody::Tamper(Tamper {
                        what: "bpf".into(),
                        target: finding.target.clone(),
                        detail: finding.detail.clone(),
                        trigger_seq: 0,
                    });
                    state.batch.push(state.assembler.agent_event(body));
                }
                reported = found;
            }
            if last_clock.elapsed() >= CLOCK_REFRESH {
                last_clock = Instant::now();
                state.assembler.remeasure_clock();
            }
        }
        open = state.flush(&events).await;
    }

    // Stop recording (detaching a hundred tracepoints takes seconds, so it happens after the data is
    // safe), let programs already past their enable check finish, then read what is left.
    if let Err(err) = super::filters::disable_all(&mut ebpf) {
        tracing::warn!("disabling capture before the final drain: {err}");
    }
    tokio::time::sleep(poll_interval * 2).await;
    let mut ring = ring.into_inner();
    while state.drain(&mut ring) {
        if !state.flush(&events).await {
            break;
        }
    }
    state.assembler.flush_all(&mut state.batch);
    let touches = state.assembler.take_touches();
    watch.check(touches, &mut state.assembler, &mut state.batch);
    state.account_losses();
    state.flush(&events).await;
    let stats = state.stats;
    let stop = state.assembler.agent_event(EventBody::AgentStop(AgentStop {
        records: stats.records,
        events: stats.events,
        kernel_lost: stats.kernel_lost,
        decode_errors: stats.decode_errors,
        filtered: state.assembler.filtered(),
    }));
    state.batch.push(stop);
    state.flush(&events).await;
    Ok((state.stats, Detacher { ebpf, links }))
}

/// A one-shot timer, armed when the kernel woke the reader, that reads the ring buffer once more just
/// after the kernel's urgent-wakeup interval (a `timerfd`: tokio's timers tick in milliseconds).
struct Repoll {
    timer: AsyncFd<TimerFdRaw>,
    armed: bool,
}

impl Repoll {
    fn new() -> Result<Self, CaptureError> {
        use nix::sys::timerfd::{ClockId, TimerFd, TimerFlags};
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(|e| CaptureError::Io(std::io::Error::from(e)))?;
        // SAFETY: the AsyncFd owns the timer, which owns its fd, so the fd outlives the registration.
        let timer =
            unsafe { AsyncFd::register(TimerFdRaw(fd)) }.map_err(|e| CaptureError::Io(e.into()))?;
        Ok(Self {
            timer,
            armed: false,
        })
    }

    /// Arms the timer unless it is already running.
    fn arm(&mut self) {
        use nix::sys::timerfd::{Expiration, TimerSetTimeFlags};
        if self.armed {
            return;
        }
        let when = Expiration::OneShot(nix::sys::time::TimeSpec::from_duration(REPOLL_AFTER));
        match self.timer.get_ref().0.set(when, TimerSetTimeFlags::empty()) {
            Ok(()) => self.armed = true,
            Err(err) => tracing::warn!("arming the ring-buffer re-read timer: {err}"),
        }
    }

    /// Waits until an armed timer fires; never while it is not armed.
    async fn fired(&mut self) {
        if !self.armed {
            return std::future::pending().await;
        }
        loop {
            let Ok(mut guard) = self.timer.readable_mut().await else {
                return std::future::pending().await;
            };
            // Reading the expiration count resets readiness; WouldBlock means a spurious wakeup.
            match guard.get_inner().0.wait() {
                Ok(()) => {
                    self.armed = false;
                    return;
                }
                Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
                Err(err) => {
                    tracing::warn!("reading the ring-buffer re-read timer: {err}");
                    self.armed = false;
                    return;
                }
            }
        }
    }
}

/// A timerfd, pollable.
struct TimerFdRaw(nix::sys::timerfd::TimerFd);

impl std::os::fd::AsRawFd for TimerFdRaw {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.0.as_fd().as_raw_fd()
    }
}

/// The sensitive-file watch, pollable.
struct SensitiveFd(SensitiveWatch);

impl std::os::fd::AsRawFd for SensitiveFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.group().as_fd().as_raw_fd()
    }
}

/// Waits until the sensitive-file watch is readable; never, without one.
async fn readable(
    watch: &mut Option<AsyncFd<SensitiveFd>>,
) -> std::io::Result<tokio::io::unix::AsyncFdReadyMutGuard<'_, SensitiveFd>> {
    match watch {
        Some(fd) => fd.readable_mut().await,
        None => std::future::pending().await,
    }
}
