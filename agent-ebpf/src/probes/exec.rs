//! Exec capture: `syscalls:sys_enter_execve`, `sys_enter_execveat`, `sys_exit_execve`, `sys_exit_execveat`.
//!
//! Entry records carry the filename and the first `MAX_ARGS` argv entries read from user memory (each cut at
//! `ARG_LEN` bytes, with a flag); exit records carry the result. Userspace pairs them by thread.

use agent_common::wire::{
    ARG_LEN, AT_FDCWD, EXEC_ARGS_TRUNCATED, EXEC_ARGS_UNREADABLE, EXEC_FILENAME_TRUNCATED,
    EXEC_FILENAME_UNREADABLE, EXEC_HELD, EXEC_KILLED, ExecEnter, ExecExit, MAX_ARGS, OP_SLOT_EXEC,
    PATH_LEN, RecordKind, SIGNAL_STOP,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_probe_read_user,
        generated::{bpf_probe_read_user_str, bpf_send_signal},
    },
    macros::tracepoint,
    programs::TracePointContext,
};

use crate::{
    ctx::field,
    emit::{enabled, header, ignored, reserve, send_completing, submit},
    maps::EXEC_KILL,
    paths::path_key,
};

/// `syscalls:sys_enter_execve`: `filename` at 16, `argv` at 24.
#[tracepoint]
pub fn sys_enter_execve(ctx: TracePointContext) -> u32 {
    // SAFETY: offsets and sizes from the tracepoint's format file.
    let (filename, argv) = unsafe { (field::<u64, 16>(&ctx), field::<u64, 24>(&ctx)) };
    enter(filename as *const u8, argv as *const *const u8, AT_FDCWD, 0);
    0
}

/// `syscalls:sys_enter_execveat`: `fd` at 16, `filename` at 24, `argv` at 32, `flags` at 48.
#[tracepoint]
pub fn sys_enter_execveat(ctx: TracePointContext) -> u32 {
    // SAFETY: offsets and sizes from the tracepoint's format file (ints are stored as 8-byte slots).
    let (fd, filename, argv, flags) = unsafe {
        (
            field::<u64, 16>(&ctx),
            field::<u64, 24>(&ctx),
            field::<u64, 32>(&ctx),
            field::<u64, 48>(&ctx),
        )
    };
    enter(
        filename as *const u8,
        argv as *const *const u8,
        fd as i32,
        flags as u32,
    );
    0
}

/// `syscalls:sys_exit_execve`: `ret` at 16.
#[tracepoint]
pub fn sys_exit_execve(ctx: TracePointContext) -> u32 {
    exit(&ctx);
    0
}

/// `syscalls:sys_exit_execveat`: `ret` at 16.
#[tracepoint]
pub fn sys_exit_execveat(ctx: TracePointContext) -> u32 {
    exit(&ctx);
    0
}

#[inline(always)]
fn enter(filename: *const u8, argv: *const *const u8, dirfd: i32, at_flags: u32) {
    // Enforcement first, whatever the capture filters say and even if the record cannot be reserved.
    let killed_by = kill_if_denied(filename);
    if !enabled(OP_SLOT_EXEC) || ignored() {
        return;
    }
    let Some(mut entry) = reserve::<ExecEnter>(RecordKind::ExecEnter) else {
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points at a reserved, exclusively owned record of the right size; every field the reader
    // uses is written below (unused bytes of the string slots are ignored through the recorded lengths).
    unsafe {
        (*ev).header = header(RecordKind::ExecEnter);
        (*ev).dirfd = dirfd;
        (*ev).at_flags = at_flags;
        let mut flags = 0u32;
        let n = bpf_probe_read_user_str(
            (*ev).filename.as_mut_ptr().cast(),
            PATH_LEN as u32,
            filename.cast(),
        );
        if n < 0 {
            flags |= EXEC_FILENAME_UNREADABLE;
            (*ev).filename_len = 0;
        } else {
            (*ev).filename_len = n as u32;
            if n as usize >= PATH_LEN {
                flags |= EXEC_FILENAME_TRUNCATED;
            }
        }
        let mut argc = 0u32;
        let mut arg_truncated = 0u32;
        let mut i = 0usize;
        while i < MAX_ARGS {
            (*ev).arg_lens[i] = 0;
            i += 1;
        }
        if !argv.is_null() {
            let mut i = 0usize;
            while i < MAX_ARGS {
                let Ok(arg) = bpf_probe_read_user::<*const u8>(argv.add(i)) else {
                    flags |= EXEC_ARGS_UNREADABLE;
                    break;
                };
                if arg.is_null() {
                    break;
                }
                let n = bpf_probe_read_user_str(
                    (*ev).args[i].as_mut_ptr().cast(),
                    ARG_LEN as u32,
                    arg.cast(),
                );
                if n > 0 {
                    (*ev).arg_lens[i] = n as u16;
                    if n as usize >= ARG_LEN {
                        arg_truncated |= 1 << i;
                    }
                }
                argc += 1;
                i += 1;
            }
            if argc as usize == MAX_ARGS
                && let Ok(more) = bpf_probe_read_user::<*const u8>(argv.add(MAX_ARGS))
                && !more.is_null()
            {
                flags |= EXEC_ARGS_TRUNCATED;
            }
        }
        if let Some((rule, signal)) = killed_by {
            flags |= if signal == SIGNAL_STOP {
                EXEC_HELD
            } else {
                EXEC_KILLED
            };
            (*ev).header.aux = rule;
        }
        (*ev).argc = argc;
        (*ev).flags = flags;
        (*ev).arg_truncated = arg_truncated;
    }
    submit(entry);
}

/// If the executable path is provably canonical and matches a kernel exec rule (for this uid), sends the
/// rule's signal to the calling task: SIGKILL (the exec never completes) or, for a hold, SIGSTOP (the task
/// stops on its return to user mode, before the new program's first instruction; never to pid 1). Either
/// way the new program runs no instruction. Returns the rule index and the signal. Other spellings are
/// decided in userspace before the program runs (fanotify).
#[inline(always)]
fn kill_if_denied(filename: *const u8) -> Option<(u32, u32)> {
    let read = path_key(filename as u64)?;
    if !read.canonical {
        return None;
    }
    let rule = *EXEC_KILL.get(read.key)?;
    let uid = bpf_get_current_uid_gid() as u32;
    if rule.uid != u32::MAX && rule.uid != uid {
        return None;
    }
    let signal = if rule.signal == SIGNAL_STOP {
        // Init is never held (userspace refuses such rules at load, and such a hold at run time).
        if bpf_get_current_pid_tgid() >> 32 == 1 {
            return None;
        }
        SIGNAL_STOP
    } else {
        9
    };
    // SAFETY: plain helper call; SIGKILL (9) or SIGSTOP (19) to the current task.
    unsafe { bpf_send_signal(signal) };
    Some((rule.rule, signal))
}

#[inline(always)]
fn exit(ctx: &TracePointContext) {
    if !enabled(OP_SLOT_EXEC) || ignored() {
        return;
    }
    // SAFETY: `ret` is a long at offset 16 in both sys_exit_execve and sys_exit_execveat.
    let ret = unsafe { field::<i64, 16>(ctx) };
    if let Some(entry) = reserve::<ExecExit>(RecordKind::ExecExit) {
        send_completing(
            entry,
            ExecExit {
                header: header(RecordKind::ExecExit),
                ret,
            },
            OP_SLOT_EXEC,
        );
    }
}
