//! Process lifecycle: `syscalls:sys_enter_clone`, `sys_enter_clone3`, `sched:sched_process_fork`,
//! `syscalls:sys_enter_exit_group`, `sys_enter_exit`, `signal:signal_deliver`, `sched:sched_process_exit`.
//!
//! Two records differ between kernels (docs/kernels.md), so each has one program per layout and userspace
//! attaches the one the tracepoint's `format` file describes (`agent/src/capture/layout.rs`):
//! `sched_process_fork` has `__data_loc` comms (6.18: `child_pid` at 20) or `char[16]` comms (6.1, 6.12:
//! `child_pid` at 44); `sched_process_exit` has `group_dead` at 32 (6.18) or ends at 32 (6.1, 6.12). A
//! program must not load past its record's end (the attach fails with EACCES), so the variants cannot be
//! one program with a branch.
//!
//! clone flags are stashed per thread at syscall entry so `sched_process_fork` (which has no flags) can tell
//! a new thread (not recorded) from a new process. The exit status is stashed per process from
//! `exit_group`/`exit` or a fatal default-action signal, and emitted when the last thread exits.

use agent_common::wire::{
    CLONE_THREAD, EXIT_CODE_KNOWN, EXIT_SIGNAL_KNOWN, Exit, FORK_CLONE_FLAGS_KNOWN, Fork,
    OP_SLOT_EXIT, OP_SLOT_FORK, RecordKind,
};
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
};

use crate::{
    ctx::field,
    emit::{enabled, header, ignored, reserve, send_completing},
    maps::{CLONE_FLAGS, EXIT_STATUS},
};

/// `syscalls:sys_enter_clone`: `clone_flags` at 16.
#[tracepoint]
pub fn sys_enter_clone(ctx: TracePointContext) -> u32 {
    // SAFETY: offset and size from the tracepoint's format file.
    let flags = unsafe { field::<u64, 16>(&ctx) };
    stash_clone_flags(flags);
    0
}

/// `syscalls:sys_enter_clone3`: `uargs` (a `struct clone_args *`, `flags` its first u64) at 16.
#[tracepoint]
pub fn sys_enter_clone3(ctx: TracePointContext) -> u32 {
    // SAFETY: offset and size from the tracepoint's format file; the user pointer is read with a helper.
    let flags = unsafe { bpf_probe_read_user::<u64>(field::<u64, 16>(&ctx) as *const u64) };
    if let Ok(flags) = flags {
        stash_clone_flags(flags);
    }
    0
}

#[inline(always)]
fn stash_clone_flags(flags: u64) {
    let tid = bpf_get_current_pid_tgid() as u32;
    // A full map only loses the thread/process distinction for this clone; it is then recorded as a process.
    let _ = CLONE_FLAGS.insert(tid, flags, 0);
}

/// `sched:sched_process_fork` with `__data_loc` comms: runs in the parent; `child_pid` at 20.
#[tracepoint]
pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
    // SAFETY: offset and size from the tracepoint's format file.
    record_fork(unsafe { field::<i32, 20>(&ctx) } as u32);
    0
}

/// `sched:sched_process_fork` with `char[16]` comms (`parent_comm` at 8, `child_comm` at 28): runs in the
/// parent; `child_pid` at 44.
#[tracepoint]
pub fn sched_process_fork_comm16(ctx: TracePointContext) -> u32 {
    // SAFETY: offset and size from the tracepoint's format file.
    record_fork(unsafe { field::<i32, 44>(&ctx) } as u32);
    0
}

/// Emits the fork of `child_tid` unless it is a new thread (its clone flags were stashed at entry).
#[inline(always)]
fn record_fork(child_tid: u32) {
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: the value is copied out before the entry is removed.
    let stashed = unsafe { CLONE_FLAGS.get(tid).copied() };
    if stashed.is_some() {
        let _ = CLONE_FLAGS.remove(tid);
    }
    let clone_flags = stashed.unwrap_or(0);
    if clone_flags & CLONE_THREAD != 0 || !enabled(OP_SLOT_FORK) || ignored() {
        return;
    }
    if let Some(entry) = reserve::<Fork>(RecordKind::Fork) {
        send_completing(
            entry,
            Fork {
                header: header(RecordKind::Fork),
                child_tid,
                flags: if stashed.is_some() {
                    FORK_CLONE_FLAGS_KNOWN
                } else {
                    0
                },
                clone_flags,
            },
            OP_SLOT_FORK,
        );
    }
}

/// `syscalls:sys_enter_exit_group`: `error_code` at 16.
#[tracepoint]
pub fn sys_enter_exit_group(ctx: TracePointContext) -> u32 {
    stash_exit_code(&ctx, true);
    0
}

/// `syscalls:sys_enter_exit`: `error_code` at 16 (the process's status if this is its last thread).
#[tracepoint]
pub fn sys_enter_exit(ctx: TracePointContext) -> u32 {
    stash_exit_code(&ctx, false);
    0
}

/// Set in a stashed status (above the `EXIT_*` flags, never sent) when the code came from `exit_group`.
const GROUP_EXIT: u64 = 1 << 63;

#[inline(always)]
fn stash_exit_code(ctx: &TracePointContext, group: bool) {
    // SAFETY: offset and size from the tracepoint's format file (an int stored in an 8-byte slot).
    let code = unsafe { field::<u64, 16>(ctx) };
    let status = ((code & 0xff) << 8)
        | (u64::from(EXIT_CODE_KNOWN) << 32)
        | if group { GROUP_EXIT } else { 0 };
    stash_status(status);
}

#[inline(always)]
fn stash_status(status: u64) {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let _ = EXIT_STATUS.insert(tgid, status, 0);
}

/// `signal:signal_deliver`: `sig` at 8, `sa_handler` at 24. Runs in the receiving task.
#[tracepoint]
pub fn signal_deliver(ctx: TracePointContext) -> u32 {
    // SAFETY: offsets and sizes from the tracepoint's format file.
    let (sig, handler) = unsafe { (field::<i32, 8>(&ctx), field::<u64, 24>(&ctx)) };
    if handler == 0 && default_action_terminates(sig) {
        let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
        // SAFETY: copied out of the map.
        let stashed = unsafe { EXIT_STATUS.get(tgid).copied() }.unwrap_or(0);
        // After exit_group the kernel delivers SIGKILL to every other thread of the group (io_uring's
        // io-wq and SQPOLL threads included): that is the exit itself, not its cause.
        if sig == SIGKILL && stashed & GROUP_EXIT != 0 {
            return 0;
        }
        stash_status((sig as u64 & 0x7f) | (u64::from(EXIT_SIGNAL_KNOWN) << 32));
    }
    0
}

/// `SIGKILL`.
const SIGKILL: i32 = 9;

/// Whether the default action of `sig` ends the process (`man 7 signal`).
#[inline(always)]
fn default_action_terminates(sig: i32) -> bool {
    // SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG and SIGWINCH do not.
    !matches!(sig, 17..=23 | 28) && sig > 0 && sig < 65
}

/// `sched:sched_process_exit` with `group_dead` (bool) at 32; runs in the exiting thread. The process
/// has exited when the last thread of its group has.
#[tracepoint]
pub fn sched_process_exit_group_dead(ctx: TracePointContext) -> u32 {
    // SAFETY: offset and size from the tracepoint's format file.
    if unsafe { field::<u8, 32>(&ctx) } != 0 {
        record_exit();
    }
    0
}

/// `sched:sched_process_exit` without `group_dead` (the record ends with `prio` at 28); runs in the exiting
/// thread. Without `group_dead` the process counts as exited when its thread-group leader exits: a leader
/// that ends before its other threads (`pthread_exit` in `main`) reports the exit early, without a status.
#[tracepoint]
pub fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if pid_tgid as u32 == (pid_tgid >> 32) as u32 {
        record_exit();
    }
    0
}

/// Emits the exit of the current process with the status stashed for it.
#[inline(always)]
fn record_exit() {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: the value is copied out before the entry is removed.
    let stashed = unsafe { EXIT_STATUS.get(tgid).copied() };
    if stashed.is_some() {
        let _ = EXIT_STATUS.remove(tgid);
    }
    if !enabled(OP_SLOT_EXIT) || ignored() {
        return;
    }
    let stashed = stashed.unwrap_or(0);
    if let Some(entry) = reserve::<Exit>(RecordKind::Exit) {
        send_completing(
            entry,
            Exit {
                header: header(RecordKind::Exit),
                status: stashed as u32,
                flags: (stashed >> 32) as u32 & (EXIT_CODE_KNOWN | EXIT_SIGNAL_KNOWN),
            },
            OP_SLOT_EXIT,
        );
    }
}
