//! Killing a process from userspace without the pid-reuse race: `pidfd_open` pins the process, its start
//! time is checked to precede the event (a process started later merely reuses the pid), then
//! `pidfd_send_signal` delivers SIGKILL. A process that exec'd since the event is still the same process.
//!
//! Both times are compared on one clock: the event's `CLOCK_MONOTONIC` time is moved onto
//! `CLOCK_BOOTTIME` (the clock of `/proc` start times), so time spent suspended never makes a process
//! look younger than its event. A group kill never signals the agent's own process group, nor group 0
//! (what a kernel thread reports, and `killpg(0)` means the caller's group) or group 1 (init's).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Why a kill did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KillError {
    /// The process is gone (already exited or killed).
    #[error("process {0} is gone")]
    Gone(u32),
    /// The pid now belongs to a process started after the event.
    #[error("pid {0} was reused by a process started after the event; not killed")]
    Reused(u32),
    /// The kill would hit the agent itself, init, or the agent's own process group.
    #[error("not killing pid {pid}: {why}")]
    Refused {
        /// The pid.
        pid: u32,
        /// Why.
        why: &'static str,
    },
    /// A syscall failed.
    #[error("{call} for pid {pid}: {source}")]
    Syscall {
        /// Which call.
        call: &'static str,
        /// The pid.
        pid: u32,
        /// The error.
        source: std::io::Error,
    },
}

/// Clock ticks per second of `/proc/<pid>/stat` start times.
const USER_HZ: u64 = 100;

/// Sends SIGKILL to `pid` if it is the process that caused an event at monotonic time `event_ns`; with
/// `group`, to its whole process group.
pub fn kill(pid: u32, event_ns: u64, group: bool) -> Result<(), KillError> {
    if pid <= 1 || pid == std::process::id() {
        return Err(KillError::Refused {
            pid,
            why: "it is init or the agent itself",
        });
    }
    let pidfd = pidfd_for_event(pid, event_ns)?;
    if group {
        let pgid =
            nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid as i32))).map_err(|e| {
                KillError::Syscall {
                    call: "getpgid",
                    pid,
                    source: e.into(),
                }
            })?;
        if let Some(why) = refuse_group(pgid) {
            return Err(KillError::Refused { pid, why });
        }
        return nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL).map_err(|e| {
            KillError::Syscall {
                call: "killpg",
                pid,
                source: e.into(),
            }
        });
    }
    send_signal(&pidfd, pid, libc::SIGKILL)
}

/// A pidfd of `pid` if it is the process that caused an event at monotonic time `event_ns` (it started
/// before the event: a later process merely reuses the pid).
pub fn pidfd_for_event(pid: u32, event_ns: u64) -> Result<OwnedFd, KillError> {
    let pidfd = pidfd_open(pid)?;
    let started = start_time_ns(pid).ok_or(KillError::Gone(pid))?;
    // Start times have a 10 ms resolution.
    if started > crate::clock::monotonic_to_boottime(event_ns) + 1_000_000_000 / USER_HZ {
        return Err(KillError::Reused(pid));
    }
    Ok(pidfd)
}

/// Sends `signal` to the process of `pidfd` (`pid` names it in errors).
pub fn send_signal(pidfd: &OwnedFd, pid: u32, signal: i32) -> Result<(), KillError> {
    // SAFETY: pidfd_send_signal with a valid pidfd, a signal number, no siginfo, no flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret != 0 {
        let err = std::io::Error::last_os_error();
        return Err(if err.raw_os_error() == Some(libc::ESRCH) {
            KillError::Gone(pid)
        } else {
            KillError::Syscall {
                call: "pidfd_send_signal",
                pid,
                source: err,
            }
        });
    }
    Ok(())
}

/// Why signalling process group `pgid` is refused, if it is.
fn refuse_group(pgid: nix::unistd::Pid) -> Option<&'static str> {
    if pgid.as_raw() <= 1 {
        return Some("its process group is 0 or 1 (a kernel thread or init)");
    }
    if pgid == nix::unistd::getpgrp() {
        return Some("it is in the agent's own process group");
    }
    None
}

/// When `pid` started, in nanoseconds since boot (field 22 of `/proc/<pid>/stat`).
fn start_time_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks: u64 = crate::procfs::stat_field(&stat, 22)?.parse().ok()?;
    Some(ticks * (1_000_000_000 / USER_HZ))
}

/// A pidfd of `pid` (`pidfd_open`).
pub fn pidfd_open(pid: u32) -> Result<OwnedFd, KillError> {
    // SAFETY: pidfd_open(pid, 0) returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        return Err(if err.raw_os_error() == Some(libc::ESRCH) {
            KillError::Gone(pid)
        } else {
            KillError::Syscall {
                call: "pidfd_open",
                pid,
                source: err,
            }
        });
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_a_child_and_refuses_a_pid_started_after_the_event() {
        let before = crate::clock::monotonic_ns();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(matches!(
            kill(pid, before, false),
            Err(KillError::Reused(_))
        ));
        kill(pid, crate::clock::monotonic_ns(), false).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        assert!(matches!(
            kill(pid, crate::clock::monotonic_ns(), false),
            Err(KillError::Gone(_))
        ));
    }

    #[test]
    fn a_group_kill_never_hits_the_agents_own_group_init_or_itself() {
        // A child in the agent's own process group (the default for a spawned child).
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let err = kill(child.id(), crate::clock::monotonic_ns(), true).unwrap_err();
        assert!(matches!(err, KillError::Refused { .. }), "{err}");
        assert!(child.try_wait().unwrap().is_none(), "the child still runs");
        child.kill().unwrap();
        child.wait().unwrap();
        for pid in [0, 1, std::process::id()] {
            let err = kill(pid, crate::clock::monotonic_ns(), false).unwrap_err();
            assert!(matches!(err, KillError::Refused { .. }), "{pid}: {err}");
        }
        assert!(refuse_group(nix::unistd::Pid::from_raw(0)).is_some());
        assert!(refuse_group(nix::unistd::Pid::from_raw(1)).is_some());
    }

    #[test]
    fn a_group_kill_signals_another_group() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        kill(child.id(), crate::clock::monotonic_ns(), true).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
    }

    #[test]
    fn event_times_move_onto_the_boot_clock() {
        let mono = crate::clock::monotonic_ns();
        let boot = crate::clock::monotonic_to_boottime(mono);
        assert!(boot >= mono, "boot time counts suspended time too");
        assert!(boot <= crate::clock::boottime_ns());
        // Our own start time (boot clock) precedes now on either reading.
        let own = start_time_ns(std::process::id()).unwrap();
        assert!(own <= boot + 1_000_000_000 / USER_HZ);
    }
}
