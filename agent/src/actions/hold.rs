//! Holds: processes stopped for a rule until a person decides, or the rule's timeout applies its default.
//!
//! A hold is stopped either in the kernel (SIGSTOP at `sys_enter_execve` for exec rules the kernel decides,
//! so the new program runs no instruction before the decision) or here through a pidfd. Every hold is kept
//! with its pidfd (no pid-reuse race): approve sends SIGCONT, deny SIGKILL, both through the pidfd. Each
//! step returns a [`Hold`] body to journal: `requested` when the process is stopped, then exactly one
//! outcome (`approved`, `denied`, `timed_out`, `gone` or `failed`).
//!
//! A hold never stops init, the service manager (systemd, any instance), a kernel thread, the agent or any
//! of the agent's ancestors: such a request is journaled `failed` and the process left running (a process
//! the kernel already stopped is continued).

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use auditloop_model::{Event, EventBody, Hold, HoldDecision, HoldState, HoldStopper};
use auditloop_rules::HoldSpec;

use super::kill::{self, KillError};

/// One hold waiting for its decision.
#[derive(Debug)]
struct Waiting {
    rule: String,
    pid: u32,
    pidfd: OwnedFd,
    stopped_by: HoldStopper,
    spec: HoldSpec,
    since: Instant,
    deadline: Instant,
    comm: String,
    exe: String,
}

/// What `auditloop holds list` shows of one waiting hold.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HoldInfo {
    /// The hold's id (the triggering event's sequence number).
    pub id: u64,
    /// Rule name.
    pub rule: String,
    /// The held process.
    pub pid: u32,
    /// Its task name.
    pub comm: String,
    /// Its executable.
    pub exe: String,
    /// What stopped it.
    pub stopped_by: HoldStopper,
    /// Milliseconds since it was stopped.
    pub age_ms: u64,
    /// Milliseconds until the default applies.
    pub remaining_ms: u64,
    /// What the timeout applies.
    pub default: HoldDecision,
    /// Its ancestors, parent first, as `pid comm exe` (from `/proc`, read now).
    pub parents: Vec<String>,
    /// Its `/proc/<pid>/stat` state now (`T` while stopped).
    pub state: String,
}

/// Why a decision was not applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecideError {
    /// No hold with this id is waiting (unknown, or decided already).
    #[error("no hold {0} is waiting (unknown id, or it was decided already)")]
    NotWaiting(u64),
}

/// The waiting holds.
#[derive(Debug)]
pub struct HoldBook {
    waiting: BTreeMap<u64, Waiting>,
    /// The agent and its ancestors up to init, read once at start.
    protected: Vec<u32>,
}

impl Default for HoldBook {
    fn default() -> HoldBook {
        HoldBook::new()
    }
}

impl HoldBook {
    /// An empty book protecting the agent and its ancestors.
    pub fn new() -> HoldBook {
        HoldBook {
            waiting: BTreeMap::new(),
            protected: ancestry(std::process::id()),
        }
    }

    /// Whether a hold with `id` is waiting.
    pub fn is_waiting(&self, id: u64) -> bool {
        self.waiting.contains_key(&id)
    }

    /// How many holds wait.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The ids of the waiting holds, in order.
    pub fn ids(&self) -> Vec<u64> {
        self.waiting.keys().copied().collect()
    }

    /// Places a hold for `rule` on the process of `event`: with `by_kernel`, the kernel already sent
    /// SIGSTOP; otherwise SIGSTOP is sent through a pidfd now. Returns the `hold` body to journal
    /// (`requested`, or `failed` with the reason, the process then left running).
    pub fn request(&mut self, rule: &str, spec: HoldSpec, event: &Event, by_kernel: bool) -> Hold {
        let pid = event.process.pid;
        // What was executed as passed (a script's path; `filename` is then its interpreter).
        let exe = if let EventBody::Exec(exec) = &event.event {
            if exec.raw_filename.is_empty() {
                exec.filename.clone()
            } else {
                exec.raw_filename.clone()
            }
        } else {
            event.process.exe.clone()
        };
        let stopped_by = if by_kernel {
            HoldStopper::Kernel
        } else {
            HoldStopper::Pidfd
        };
        let base = Hold {
            rule: rule.to_owned(),
            id: event.seq,
            target_pid: pid,
            state: HoldState::Requested,
            stopped_by,
            timeout_ms: spec.timeout_ns / 1_000_000,
            default: spec.default,
            comm: event.process.comm.clone(),
            exe,
            ..Hold::default()
        };
        let failed = |detail: String| Hold {
            state: HoldState::Failed,
            detail,
            ..base.clone()
        };
        if self.waiting.contains_key(&event.seq) {
            return failed("a hold with this id is waiting already (one hold per event)".into());
        }
        let pidfd = match kill::pidfd_for_event(pid, event.mono_ns) {
            Ok(fd) => fd,
            Err(KillError::Gone(_)) => {
                return Hold {
                    state: HoldState::Gone,
                    ok: true,
                    detail: "the process exited before it could be held".into(),
                    ..base
                };
            }
            Err(err) => return failed(err.to_string()),
        };
        if let Some(why) = self.refusal(pid, &base.comm, &base.exe) {
            let detail = if by_kernel {
                match kill::send_signal(&pidfd, pid, libc::SIGCONT) {
                    Ok(()) => format!("refused: {why}; the kernel's stop was undone (SIGCONT)"),
                    Err(err) => format!("refused: {why}; undoing the kernel's stop failed: {err}"),
                }
            } else {
                format!("refused: {why}; not stopped")
            };
            return failed(detail);
        }
        let detail = if by_kernel {
            "SIGSTOP sent in sys_enter_execve: the new program runs no instruction before the decision"
                .to_string()
        } else {
            if let Err(err) = kill::send_signal(&pidfd, pid, libc::SIGSTOP) {
                return match err {
                    KillError::Gone(_) => Hold {
                        state: HoldState::Gone,
                        ok: true,
                        detail: "the process exited before it could be held".into(),
                        ..base
                    },
                    err => failed(err.to_string()),
                };
            }
            "SIGSTOP sent through a pidfd after the event was journaled".to_string()
        };
        let since = Instant::now();
        self.waiting.insert(
            event.seq,
            Waiting {
                rule: base.rule.clone(),
                pid,
                pidfd,
                stopped_by,
                spec,
                since,
                deadline: since + Duration::from_nanos(spec.timeout_ns),
                comm: base.comm.clone(),
                exe: base.exe.clone(),
            },
        );
        Hold {
            ok: true,
            detail,
            ..base
        }
    }

    /// Applies `decision` to the waiting hold `id`, decided by `by` (`local:uid0`, `collector:<who>`);
    /// returns the outcome body to journal.
    pub fn decide(
        &mut self,
        id: u64,
        decision: HoldDecision,
        by: &str,
        comment: &str,
    ) -> Result<Hold, DecideError> {
        let waiting = self
            .waiting
            .remove(&id)
            .ok_or(DecideError::NotWaiting(id))?;
        let state = match decision {
            HoldDecision::Approve => HoldState::Approved,
            HoldDecision::Deny => HoldState::Denied,
        };
        Ok(apply(id, waiting, decision, state, by, comment))
    }

    /// Applies the default of every hold whose timeout passed (`timed_out`, decided by `timeout`) and
    /// closes those whose process is gone; returns the outcome bodies to journal.
    pub fn expire(&mut self, now: Instant) -> Vec<Hold> {
        let mut out = Vec::new();
        let ids: Vec<u64> = self.waiting.keys().copied().collect();
        for id in ids {
            let Some(w) = self.waiting.get(&id) else {
                continue;
            };
            if exited(&w.pidfd) {
                if let Some(w) = self.waiting.remove(&id) {
                    out.push(Hold {
                        state: HoldState::Gone,
                        ok: true,
                        latency_us: micros(w.since.elapsed()),
                        detail: "the process ended while held (killed by someone else)".into(),
                        ..outcome_base(id, &w)
                    });
                }
                continue;
            }
            if now >= w.deadline
                && let Some(w) = self.waiting.remove(&id)
            {
                let default = w.spec.default;
                out.push(apply(id, w, default, HoldState::TimedOut, "timeout", ""));
            }
        }
        out
    }

    /// Applies every waiting hold's default because the agent stops (decided by `shutdown`): a stopped
    /// process must not outlive the agent that would decide it.
    pub fn shutdown(&mut self) -> Vec<Hold> {
        let all = std::mem::take(&mut self.waiting);
        all.into_iter()
            .map(|(id, w)| {
                let default = w.spec.default;
                apply(id, w, default, HoldState::TimedOut, "shutdown", "")
            })
            .collect()
    }

    /// What `auditloop holds list` shows, oldest first.
    pub fn list(&self, now: Instant) -> Vec<HoldInfo> {
        self.waiting
            .iter()
            .map(|(&id, w)| HoldInfo {
                id,
                rule: w.rule.clone(),
                pid: w.pid,
                comm: w.comm.clone(),
                exe: w.exe.clone(),
                stopped_by: w.stopped_by,
                age_ms: millis(now.saturating_duration_since(w.since)),
                remaining_ms: millis(w.deadline.saturating_duration_since(now)),
                default: w.spec.default,
                parents: parents(w.pid),
                state: proc_state(w.pid).unwrap_or_default(),
            })
            .collect()
    }

    /// Why holding `pid` is refused, if it is.
    fn refusal(&self, pid: u32, comm: &str, exe: &str) -> Option<&'static str> {
        if pid <= 1 {
            return Some("it is init (PID 1)");
        }
        if pid == std::process::id() {
            return Some("it is the agent itself");
        }
        if self.protected.contains(&pid) {
            return Some("it is one of the agent's ancestors");
        }
        if comm == "systemd" || exe.rsplit('/').next() == Some("systemd") {
            return Some("it is the service manager (systemd)");
        }
        if pid == 2 || parent_of(pid) == Some(2) {
            return Some("it is a kernel thread");
        }
        None
    }
}

/// The journaled fields every outcome of hold `id` repeats from its request.
fn outcome_base(id: u64, w: &Waiting) -> Hold {
    Hold {
        rule: w.rule.clone(),
        id,
        target_pid: w.pid,
        stopped_by: w.stopped_by,
        timeout_ms: w.spec.timeout_ns / 1_000_000,
        default: w.spec.default,
        comm: w.comm.clone(),
        exe: w.exe.clone(),
        ..Hold::default()
    }
}

/// Sends what `decision` means (SIGCONT or SIGKILL) and describes it as `state`.
fn apply(
    id: u64,
    w: Waiting,
    decision: HoldDecision,
    state: HoldState,
    by: &str,
    comment: &str,
) -> Hold {
    let (signal, what) = match decision {
        HoldDecision::Approve => (libc::SIGCONT, "SIGCONT: the process runs on"),
        HoldDecision::Deny => (
            libc::SIGKILL,
            "SIGKILL: the process was killed while stopped",
        ),
    };
    let sent = kill::send_signal(&w.pidfd, w.pid, signal);
    let latency_us = micros(w.since.elapsed());
    let base = Hold {
        decided_by: by.to_owned(),
        comment: comment.to_owned(),
        latency_us,
        ..outcome_base(id, &w)
    };
    match sent {
        Ok(()) => Hold {
            state,
            decision: Some(decision),
            ok: true,
            detail: what.into(),
            ..base
        },
        Err(KillError::Gone(_)) => Hold {
            state: HoldState::Gone,
            ok: true,
            detail: "the process ended while held".into(),
            ..base
        },
        Err(err) => Hold {
            state: HoldState::Failed,
            decision: Some(decision),
            detail: err.to_string(),
            ..base
        },
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether the process of `pidfd` has exited (a pidfd polls readable then).
fn exited(pidfd: &OwnedFd) -> bool {
    let mut fds = [libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: one valid pollfd, no wait.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) };
    n > 0 && fds[0].revents & (libc::POLLIN | libc::POLLHUP) != 0
}

/// `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()
}

/// The parent of `pid`, from `/proc`.
fn parent_of(pid: u32) -> Option<u32> {
    crate::procfs::parse_stat_ppid(&stat(pid)?)
}

/// The state letter of `pid` (`R`, `S`, `T`, …).
pub fn proc_state(pid: u32) -> Option<String> {
    crate::procfs::stat_field(&stat(pid)?, 3).map(str::to_owned)
}

/// `pid` and its ancestors up to init.
fn ancestry(pid: u32) -> Vec<u32> {
    let mut chain = vec![pid];
    let mut at = pid;
    while let Some(parent) = parent_of(at) {
        if parent == 0 || chain.contains(&parent) || chain.len() > 64 {
            break;
        }
        chain.push(parent);
        at = parent;
    }
    chain
}

/// The ancestors of `pid`, parent first, as `pid comm exe`.
fn parents(pid: u32) -> Vec<String> {
    ancestry(pid)
        .into_iter()
        .skip(1)
        .map(|p| {
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            let exe = std::fs::read_link(format!("/proc/{p}/exe"))
                .map(|e| e.display().to_string())
                .unwrap_or_default();
            format!("{p} {} {exe}", comm.trim())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditloop_model::{Exec, Process, WallTime};

    fn event_of(pid: u32, seq: u64, comm: &str) -> Event {
        Event {
            seq,
            time: WallTime(0),
            mono_ns: crate::clock::monotonic_ns(),
            process: Process {
                pid,
                tid: pid,
                comm: comm.into(),
                ..Process::default()
            },
            event: EventBody::Exec(Exec {
                filename: "/bin/sleep".into(),
                success: true,
                ..Exec::default()
            }),
        }
    }

    fn spec(ms: u64, default: HoldDecision) -> HoldSpec {
        HoldSpec {
            timeout_ns: ms * 1_000_000,
            default,
        }
    }

    fn wait_state(pid: u32, want: &str) {
        for _ in 0..200 {
            if proc_state(pid).as_deref() == Some(want) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!(
            "pid {pid} never reached state {want}: {:?}",
            proc_state(pid)
        );
    }

    #[test]
    fn a_pidfd_hold_stops_then_approve_continues_and_deny_kills() {
        let mut book = HoldBook::new();
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let held = book.request(
            "r",
            spec(60_000, HoldDecision::Deny),
            &event_of(pid, 7, "sleep"),
            false,
        );
        assert_eq!(
            (held.state, held.ok, held.stopped_by),
            (HoldState::Requested, true, HoldStopper::Pidfd),
            "{held:?}"
        );
        wait_state(pid, "T");
        let listed = book.list(Instant::now());
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].id, listed[0].pid), (7, pid));
        assert!(!listed[0].parents.is_empty(), "{listed:?}");
        let again = book.request(
            "r",
            spec(60_000, HoldDecision::Deny),
            &event_of(pid, 7, "sleep"),
            false,
        );
        assert_eq!(again.state, HoldState::Failed, "one hold per event");
        let done = book
            .decide(7, HoldDecision::Approve, "local:uid0", "fine")
            .unwrap();
        assert_eq!(
            (done.state, done.decision, done.decided_by.as_str()),
            (
                HoldState::Approved,
                Some(HoldDecision::Approve),
                "local:uid0"
            )
        );
        assert_ne!(proc_state(pid).as_deref(), Some("T"));
        assert!(matches!(
            book.decide(7, HoldDecision::Deny, "x", ""),
            Err(DecideError::NotWaiting(7))
        ));
        book.request(
            "r",
            spec(60_000, HoldDecision::Approve),
            &event_of(pid, 8, "sleep"),
            false,
        );
        let done = book
            .decide(8, HoldDecision::Deny, "collector:alice", "")
            .unwrap();
        assert_eq!(done.state, HoldState::Denied);
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        assert!(book.is_empty());
    }

    #[test]
    fn the_timeout_applies_the_default_and_a_vanished_process_is_gone() {
        let mut book = HoldBook::new();
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        book.request(
            "r",
            spec(10, HoldDecision::Deny),
            &event_of(pid, 9, "sleep"),
            false,
        );
        assert!(book.expire(Instant::now()).is_empty(), "not yet due");
        let done = book.expire(Instant::now() + Duration::from_millis(20));
        assert_eq!(done.len(), 1);
        assert_eq!(
            (done[0].state, done[0].decided_by.as_str(), done[0].decision),
            (HoldState::TimedOut, "timeout", Some(HoldDecision::Deny))
        );
        child.wait().unwrap();

        let mut other = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        book.request(
            "r",
            spec(60_000, HoldDecision::Deny),
            &event_of(other.id(), 10, "sleep"),
            false,
        );
        other.kill().unwrap();
        other.wait().unwrap();
        let done = book.expire(Instant::now());
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].state, HoldState::Gone);
    }

    #[test]
    fn init_the_agent_its_ancestors_and_systemd_are_never_held() {
        let mut book = HoldBook::new();
        let me = std::process::id();
        let parent = std::os::unix::process::parent_id();
        for (pid, comm) in [(1, "systemd"), (me, "auditloop"), (parent, "cargo")] {
            let held = book.request(
                "r",
                spec(60_000, HoldDecision::Deny),
                &event_of(pid, u64::from(pid) + 100, comm),
                false,
            );
            assert_eq!(held.state, HoldState::Failed, "{pid}: {held:?}");
            assert!(held.detail.starts_with("refused"), "{held:?}");
        }
        assert_ne!(proc_state(me).as_deref(), Some("T"));
        // A process named like the service manager.
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let held = book.request(
            "r",
            spec(60_000, HoldDecision::Deny),
            &event_of(child.id(), 5, "systemd"),
            false,
        );
        assert_eq!(held.state, HoldState::Failed);
        assert_ne!(proc_state(child.id()).as_deref(), Some("T"));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(book.is_empty());
    }
}
