//! Killing a process from userspace without the pid-reuse race: `pidfd_open` pins the process, its start
//! time is checked to precede the event (a process started later merely reuses the pid), then
//! `pidfd_send_signal` delivers SIGKILL. A process that exec'd since the event is still the same process.

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
    let pidfd = pidfd_open(pid)?;
    let started = start_time_ns(pid).ok_or(KillError::Gone(pid))?;
    // Start times have a 10 ms resolution.
    if started > event_ns + 1_000_000_000 / USER_HZ {
        return Err(KillError::Reused(pid));
    }
    if group {
        let pgid =
            nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid as i32))).map_err(|e| {
                KillError::Syscall {
                    call: "getpgid",
                    pid,
                    source: e.into(),
                }
            })?;
        return nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL).map_err(|e| {
            KillError::Syscall {
                call: "killpg",
                pid,
                source: e.into(),
            }
        });
    }
    // SAFETY: pidfd_send_signal with a valid pidfd, SIGKILL, no siginfo, no flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
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

/// When `pid` started, in nanoseconds since boot (field 22 of `/proc/<pid>/stat`).
fn start_time_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks: u64 = crate::capture::stat_field(&stat, 22)?.parse().ok()?;
    Some(ticks * (1_000_000_000 / USER_HZ))
}

fn pidfd_open(pid: u32) -> Result<OwnedFd, KillError> {
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
}
