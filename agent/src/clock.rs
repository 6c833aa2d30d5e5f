//! Time stamps for events, one way for every stage.
//!
//! Kernel records carry `CLOCK_MONOTONIC`; an event's wall time is that plus one measured offset between
//! the real-time and monotonic clocks, shared by every stage through a [`Clock`] handle. Capture measures
//! the offset again now and then (the real-time clock may be stepped); agent events written by any stage
//! (loss reports, spool overflow, alerts and actions) are stamped through the same handle, so events of
//! one run are ordered the same way by both of their times.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use auditloop_model::{Event, EventBody, Process, WallTime};

/// Converts `CLOCK_MONOTONIC` nanoseconds to wall-clock time; clones share one offset.
#[derive(Clone, Debug)]
pub struct Clock {
    /// Wall-clock nanoseconds minus monotonic nanoseconds.
    offset_ns: Arc<AtomicI64>,
}

impl Clock {
    /// A clock with a fixed offset (tests).
    pub fn with_offset(offset_ns: i64) -> Clock {
        Clock {
            offset_ns: Arc::new(AtomicI64::new(offset_ns)),
        }
    }

    /// Measures the offset between the real-time and monotonic clocks now.
    pub fn measure() -> Clock {
        Clock::with_offset(measured_offset())
    }

    /// Measures the offset again, for every clone.
    pub fn remeasure(&self) {
        self.offset_ns.store(measured_offset(), Ordering::Relaxed);
    }

    /// Wall time of a monotonic timestamp.
    pub fn wall(&self, mono_ns: u64) -> WallTime {
        let offset = i128::from(self.offset_ns.load(Ordering::Relaxed));
        let wall = i128::from(mono_ns) + offset;
        WallTime(u64::try_from(wall.max(0)).unwrap_or(u64::MAX))
    }

    /// An event about `process` observed now.
    pub fn event_for(&self, process: Process, body: EventBody) -> Event {
        let mono_ns = monotonic_ns();
        Event {
            seq: 0,
            time: self.wall(mono_ns),
            mono_ns,
            process,
            event: body,
        }
    }

    /// An agent event (not tied to a kernel record): the agent's own process, now.
    pub fn agent_event(&self, body: EventBody) -> Event {
        self.event_for(agent_process().clone(), body)
    }
}

fn measured_offset() -> i64 {
    let mono = i128::from(monotonic_ns());
    let wall = i128::from(WallTime::now().0);
    i64::try_from(wall - mono).unwrap_or(i64::MAX)
}

/// The agent's own process, for agent events (read once).
pub fn agent_process() -> &'static Process {
    static AGENT: OnceLock<Process> = OnceLock::new();
    AGENT.get_or_init(|| Process {
        pid: std::process::id(),
        tid: std::process::id(),
        ppid: std::os::unix::process::parent_id(),
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        comm: "auditloop".into(),
        euid: nix::unistd::geteuid().as_raw(),
        exe: std::env::current_exe()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
        ..Process::default()
    })
}

/// `CLOCK_MONOTONIC` now, in nanoseconds (the clock `bpf_ktime_get_ns` reads).
pub fn monotonic_ns() -> u64 {
    clock_ns(nix::time::ClockId::CLOCK_MONOTONIC)
}

/// Nanoseconds of `CLOCK_BOOTTIME` (like monotonic, but counting time suspended): the clock of the start
/// times in `/proc/<pid>/stat`.
pub fn boottime_ns() -> u64 {
    clock_ns(nix::time::ClockId::CLOCK_BOOTTIME)
}

/// A monotonic time (an event's) on the boot-time clock: monotonic plus the time suspended so far.
pub fn monotonic_to_boottime(monotonic: u64) -> u64 {
    let (boot, mono) = (boottime_ns(), monotonic_ns());
    monotonic.saturating_add(boot.saturating_sub(mono))
}

fn clock_ns(clock: nix::time::ClockId) -> u64 {
    nix::time::clock_gettime(clock).map_or(0, |ts| {
        u64::try_from(ts.tv_sec()).unwrap_or(0) * 1_000_000_000
            + u64::try_from(ts.tv_nsec()).unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_offset_and_agent_events_use_it() {
        let clock = Clock::with_offset(1_000);
        let other = clock.clone();
        assert_eq!(other.wall(5), WallTime(1_005));
        let ev = clock.agent_event(EventBody::AgentStop(auditloop_model::AgentStop::default()));
        assert_eq!(ev.time, WallTime(ev.mono_ns + 1_000));
        assert_eq!(ev.process.pid, std::process::id());
        other.remeasure();
        let now = clock.wall(monotonic_ns()).0;
        let real = WallTime::now().0;
        assert!(now.abs_diff(real) < 1_000_000_000, "{now} vs {real}");
    }
}
