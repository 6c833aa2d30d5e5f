//! Data-driven syscall capture: `sys_enter_args0` … `sys_enter_args6` (one per argument count, attached to
//! every `syscalls:sys_enter_<name>` the agent configured) and `sys_exit_generic` (attached to the matching
//! `sys_exit_<name>`), plus `sys_enter_close` and the accept pair.
//!
//! The program for N arguments loads exactly N argument slots, so it attaches to any syscall tracepoint with
//! at least N arguments (attach fails with EACCES on a load past the record). What a syscall means comes from
//! `SYSCALL_SPECS`, keyed by syscall number: which arguments are strings, which are open flags. File events
//! are filtered here: read-only opens are recorded only for sensitive paths, and ignored path prefixes are
//! dropped before a record is reserved.

use agent_common::wire::{
    CloseWrite, MAX_KINDS, NO_ARG, RecordKind, SPEC_ALWAYS_WRITE, SPEC_DEREF_ARG1,
    SPEC_FLAGS_IN_OPEN_HOW, SPEC_ONLY_PR_SET_NAME, SPEC_STR1_PATH, SPEC_STR1_SOCKADDR, STR_LEN,
    SYS_OPEN_DIR, SYS_OPEN_SENSITIVE, SYS_OPEN_WRITE, SYS_PATH_UNSURE, SYS_STR_UNREADABLE,
    SYS_STR1_TRUNCATED, SYS_STR2_TRUNCATED, SysExit, Syscall, SyscallOp, SyscallSpec,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_user,
        generated::{bpf_probe_read_user as read_user_raw, bpf_probe_read_user_str},
    },
    macros::tracepoint,
    programs::TracePointContext,
};

use crate::{
    ctx::field,
    emit::{enabled, header, ignored, reserve, reserve_counted, send, send_completing, submit},
    maps::{ACCEPT_ARGS, IGNORE_PATHS, PENDING, SENSITIVE_PATHS, SYSCALL_SPECS, WRITE_FDS},
    paths::path_key,
};

const O_WRONLY: u64 = 0o1;
const O_RDWR: u64 = 0o2;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;
const O_DIRECTORY: u64 = 0o200000;
const O_PATH: u64 = 0o10000000;
const PR_SET_NAME: u64 = 15;

macro_rules! enter_program {
    ($name:ident, $n:literal) => {
        /// Generic `sys_enter_*` program for syscalls with at least this many arguments.
        #[tracepoint]
        pub fn $name(ctx: TracePointContext) -> u32 {
            enter::<$n>(&ctx);
            0
        }
    };
}

enter_program!(sys_enter_args0, 0);
enter_program!(sys_enter_args1, 1);
enter_program!(sys_enter_args2, 2);
enter_program!(sys_enter_args3, 3);
enter_program!(sys_enter_args4, 4);
enter_program!(sys_enter_args5, 5);
enter_program!(sys_enter_args6, 6);

/// Loads the first `N` argument slots (each 8 bytes from offset 16).
#[inline(always)]
fn load_args<const N: usize>(ctx: &TracePointContext) -> [u64; 6] {
    let mut args = [0u64; 6];
    // SAFETY: every syscall tracepoint record has 8-byte argument slots from offset 16; the program for N
    // arguments is attached only to syscalls with at least N of them, and loads no slot beyond N.
    unsafe {
        if N > 0 {
            args[0] = field::<u64, 16>(ctx);
        }
        if N > 1 {
            args[1] = field::<u64, 24>(ctx);
        }
        if N > 2 {
            args[2] = field::<u64, 32>(ctx);
        }
        if N > 3 {
            args[3] = field::<u64, 40>(ctx);
        }
        if N > 4 {
            args[4] = field::<u64, 48>(ctx);
        }
        if N > 5 {
            args[5] = field::<u64, 56>(ctx);
        }
    }
    args
}

#[inline(always)]
fn pick(args: &[u64; 6], index: u8) -> Option<u64> {
    match index {
        0 => Some(args[0]),
        1 => Some(args[1]),
        2 => Some(args[2]),
        3 => Some(args[3]),
        4 => Some(args[4]),
        5 => Some(args[5]),
        _ => None,
    }
}

#[inline(always)]
fn enter<const N: usize>(ctx: &TracePointContext) {
    // SAFETY: `__syscall_nr` is an int at offset 8 in every syscall tracepoint.
    let nr = unsafe { field::<i32, 8>(ctx) } as u32;
    // SAFETY: copied out of the map at once.
    let Some(spec) = (unsafe { SYSCALL_SPECS.get(nr).copied() }) else {
        return;
    };
    if !enabled(spec.op) || ignored() {
        return;
    }
    let mut args = load_args::<N>(ctx);
    if spec.flags & SPEC_DEREF_ARG1 != 0 {
        // SAFETY: user pointer read with the checked helper; an unreadable pointer gives 0.
        args[1] = unsafe { bpf_probe_read_user::<u64>(args[1] as *const u64) }.unwrap_or(0);
    }
    let mut flags = 0u32;
    if spec.flags & SPEC_ONLY_PR_SET_NAME != 0 && args[0] != PR_SET_NAME {
        return;
    }
    if let Some(oflags) = open_flags(&spec, &args) {
        if oflags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC) != 0 {
            flags |= SYS_OPEN_WRITE;
        } else if oflags & (O_DIRECTORY | O_PATH) != 0 {
            flags |= SYS_OPEN_DIR;
        }
    }
    if spec.flags & SPEC_STR1_PATH != 0
        && let Some(ptr) = pick(&args, spec.str1_arg)
        && ptr != 0
        && let Some(read) = path_key(ptr)
    {
        if !read.canonical {
            // Another spelling may name an ignored or a sensitive file: userspace resolves and decides.
            flags |= SYS_PATH_UNSURE;
        } else {
            if IGNORE_PATHS.get(read.key).is_some() {
                return;
            }
            // A directory's descriptor may be the base of later relative paths: recorded, not an event.
            if spec.op == SyscallOp::Open as u32 && flags & (SYS_OPEN_WRITE | SYS_OPEN_DIR) == 0 {
                if SENSITIVE_PATHS.get(read.key).is_none() {
                    return;
                }
                flags |= SYS_OPEN_SENSITIVE;
            }
        }
    } else if spec.op == SyscallOp::Open as u32 && flags & (SYS_OPEN_WRITE | SYS_OPEN_DIR) == 0 {
        return;
    }
    emit_syscall(&spec, nr, N as u32, &args, flags);
}

/// For open-like specs: the open flags (`O_*`). None for other syscalls.
#[inline(always)]
fn open_flags(spec: &SyscallSpec, args: &[u64; 6]) -> Option<u64> {
    if spec.flags & SPEC_ALWAYS_WRITE != 0 {
        return Some(O_WRONLY | O_CREAT | O_TRUNC);
    }
    let raw = pick(args, spec.open_flags_arg)?;
    let oflags = if spec.flags & SPEC_FLAGS_IN_OPEN_HOW != 0 {
        // SAFETY: user pointer read with the checked helper; `struct open_how` starts with u64 flags.
        unsafe { bpf_probe_read_user::<u64>(raw as *const u64) }.unwrap_or(0)
    } else {
        raw
    };
    Some(oflags)
}

/// Copies a socket address of `len` bytes (capped at `STR_LEN`) from user memory to `dst`; returns the
/// bytes copied, or `None` when unreadable.
///
/// # Safety
/// `dst` must be valid for `STR_LEN` bytes of writes.
#[inline(always)]
unsafe fn read_sockaddr(dst: *mut u8, ptr: u64, len: u64) -> Option<u32> {
    let len = if len > STR_LEN as u64 {
        STR_LEN as u64
    } else {
        len
    };
    // SAFETY: `dst` holds `STR_LEN` bytes and `len` is at most that; the helper checks the user pointer.
    let ret = unsafe { read_user_raw(dst.cast(), len as u32, ptr as *const _) };
    (ret == 0).then_some(len as u32)
}

/// Reads a NUL-terminated string (cut at `STR_LEN`) from user memory to `dst`; returns the bytes used, NUL
/// included, or `None` when unreadable.
///
/// # Safety
/// `dst` must be valid for `STR_LEN` bytes of writes.
#[inline(always)]
unsafe fn read_str(dst: *mut u8, ptr: u64) -> Option<u32> {
    // SAFETY: `dst` holds `STR_LEN` bytes; the helper checks the user pointer and NUL-terminates.
    let n = unsafe { bpf_probe_read_user_str(dst.cast(), STR_LEN as u32, ptr as *const _) };
    (n > 0).then_some(n as u32)
}

#[inline(always)]
fn emit_syscall(spec: &SyscallSpec, nr: u32, nargs: u32, args: &[u64; 6], mut flags: u32) {
    let Some(mut entry) = reserve_counted::<Syscall>(MAX_KINDS + spec.op) else {
        return;
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` is a reserved, exclusively owned record; every field the reader uses is written
    // (string slots beyond their recorded lengths are ignored).
    unsafe {
        (*rec).header = header(RecordKind::Syscall);
        (*rec).op = spec.op;
        (*rec).nr = nr;
        (*rec).nargs = nargs;
        (*rec).args = *args;
        (*rec).str_lens = [0, 0];
        if let Some(ptr) = pick(args, spec.str1_arg)
            && ptr != 0
        {
            let sockaddr = spec.flags & SPEC_STR1_SOCKADDR != 0;
            let dst = (*rec).strs[0].as_mut_ptr();
            let read = if sockaddr {
                read_sockaddr(dst, ptr, pick(args, spec.len_arg).unwrap_or(0))
            } else {
                read_str(dst, ptr)
            };
            match read {
                Some(n) => {
                    (*rec).str_lens[0] = n;
                    if !sockaddr && n as usize >= STR_LEN {
                        flags |= SYS_STR1_TRUNCATED;
                    }
                }
                None => flags |= SYS_STR_UNREADABLE,
            }
        }
        if let Some(ptr) = pick(args, spec.str2_arg)
            && ptr != 0
        {
            match read_str((*rec).strs[1].as_mut_ptr(), ptr) {
                Some(n) => {
                    (*rec).str_lens[1] = n;
                    if n as usize >= STR_LEN {
                        flags |= SYS_STR2_TRUNCATED;
                    }
                }
                None => flags |= SYS_STR_UNREADABLE,
            }
        }
        (*rec).flags = flags;
    }
    let tid = bpf_get_current_pid_tgid() as u32;
    let pending = (u64::from(nr) << 32) | (u64::from(flags) << 8) | u64::from(spec.op & 0xff);
    let _ = PENDING.insert(tid, pending, 0);
    submit(entry);
}

/// Generic `sys_exit_*` program: reports the return of a recorded entry, and remembers descriptors
/// opened for writing so `close` can report them.
#[tracepoint]
pub fn sys_exit_generic(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    // SAFETY: copied out of the map before the entry is removed.
    let Some(pending) = (unsafe { PENDING.get(tid).copied() }) else {
        return 0;
    };
    let _ = PENDING.remove(tid);
    // SAFETY: `__syscall_nr` at 8 and `ret` at 16 in every sys_exit tracepoint.
    let (nr, ret) = unsafe { (field::<i32, 8>(&ctx) as u32, field::<i64, 16>(&ctx)) };
    if u64::from(nr) != pending >> 32 {
        // Not the syscall the entry was for (its exit was missed); the entry is reported without result.
        return 0;
    }
    let op = (pending & 0xff) as u32;
    let flags = ((pending >> 8) & 0xff_ffff) as u32;
    if op == SyscallOp::Open as u32 && flags & (SYS_OPEN_WRITE | SYS_OPEN_DIR) != 0 && ret >= 0 {
        let key = (pid_tgid & 0xffff_ffff_0000_0000) | (ret as u64 & 0xffff_ffff);
        let _ = WRITE_FDS.insert(key, 1, 0);
    }
    send_exit(op, nr, ret);
    0
}

#[inline(always)]
fn send_exit(op: u32, nr: u32, ret: i64) {
    if let Some(entry) = reserve::<SysExit>(RecordKind::SysExit) {
        send_completing(
            entry,
            SysExit {
                header: header(RecordKind::SysExit),
                op,
                nr,
                ret,
            },
            op,
        );
    }
}

/// `syscalls:sys_enter_close`: `fd` at 16. Reports descriptors that were opened for writing.
#[tracepoint]
pub fn sys_enter_close(ctx: TracePointContext) -> u32 {
    // SAFETY: offset and size from the tracepoint's format file.
    let fd = unsafe { field::<u64, 16>(&ctx) } & 0xffff_ffff;
    let key = (bpf_get_current_pid_tgid() & 0xffff_ffff_0000_0000) | fd;
    // SAFETY: only tested for presence.
    if unsafe { WRITE_FDS.get(key).is_none() } {
        return 0;
    }
    let _ = WRITE_FDS.remove(key);
    if let Some(entry) = reserve::<CloseWrite>(RecordKind::CloseWrite) {
        send(
            entry,
            CloseWrite {
                header: header(RecordKind::CloseWrite),
                fd: fd as u32,
                reserved: 0,
            },
        );
    }
    0
}

/// `syscalls:sys_enter_accept` / `sys_enter_accept4`: `fd` at 16, `upeer_sockaddr` at 24,
/// `upeer_addrlen` at 32. Stashes them for the return.
#[tracepoint]
pub fn sys_enter_accept(ctx: TracePointContext) -> u32 {
    if !enabled(SyscallOp::Accept as u32) || ignored() {
        return 0;
    }
    // SAFETY: offsets and sizes from the tracepoint's format file (same in accept and accept4).
    let stash = unsafe {
        [
            field::<u64, 16>(&ctx),
            field::<u64, 24>(&ctx),
            field::<u64, 32>(&ctx),
        ]
    };
    let tid = bpf_get_current_pid_tgid() as u32;
    let _ = ACCEPT_ARGS.insert(tid, stash, 0);
    0
}

/// `syscalls:sys_exit_accept` / `sys_exit_accept4`: records a successful accept with the peer address.
#[tracepoint]
pub fn sys_exit_accept(ctx: TracePointContext) -> u32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: copied out of the map before the entry is removed.
    let Some([fd, addr, addrlen_ptr]) = (unsafe { ACCEPT_ARGS.get(tid).copied() }) else {
        return 0;
    };
    let _ = ACCEPT_ARGS.remove(tid);
    // SAFETY: `__syscall_nr` at 8 and `ret` at 16 in every sys_exit tracepoint.
    let (nr, ret) = unsafe { (field::<i32, 8>(&ctx) as u32, field::<i64, 16>(&ctx)) };
    if ret < 0 {
        return 0;
    }
    let Some(mut entry) = reserve_counted::<Syscall>(MAX_KINDS + SyscallOp::Accept as u32) else {
        return 0;
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: reserved, exclusively owned record; user memory read with the checked helpers.
    unsafe {
        (*rec).header = header(RecordKind::Syscall);
        (*rec).op = SyscallOp::Accept as u32;
        (*rec).nr = nr;
        (*rec).flags = 0;
        (*rec).nargs = 2;
        (*rec).args = [fd, ret as u64, 0, 0, 0, 0];
        (*rec).str_lens = [0, 0];
        if addr != 0 && addrlen_ptr != 0 {
            let len = bpf_probe_read_user::<u32>(addrlen_ptr as *const u32).unwrap_or(0);
            if let Some(n) = read_sockaddr((*rec).strs[0].as_mut_ptr(), addr, u64::from(len)) {
                (*rec).str_lens[0] = n;
            }
        }
    }
    submit(entry);
    send_exit(SyscallOp::Accept as u32, nr, ret);
    0
}

/// Reports an unused-argument marker so the spec's `NO_ARG` constant stays in sync with `pick`.
const _: () = assert!(NO_ARG as usize > 5);
