//! io_uring capture: `syscalls:sys_enter_io_uring_setup`, `io_uring:io_uring_create`,
//! `syscalls:sys_enter_mmap` / `sys_exit_mmap` (to learn where a ring's memory is mapped),
//! `io_uring:io_uring_submit_req`, `io_uring:io_uring_file_get` and `io_uring:io_uring_complete`.
//!
//! A submitted request's tracepoint carries its opcode and `user_data` but not its arguments, so the
//! program finds the request's SQE in the process's memory: from the user-visible SQ head (the kernel
//! publishes the new head only after the whole batch), through the SQ index array unless the ring has
//! `IORING_SETUP_NO_SQARRAY`, it looks at a bounded window of entries for the one whose opcode and
//! `user_data` match, and remembers per ring how many entries of the batch were matched. The kernel had
//! already copied the SQE when the tracepoint fires: a process that rewrites it at once can make the copy
//! here differ (then it is usually not found, and the record says so).
//!
//! Kernel pointers (ring context, request) are map keys only; records carry numbers made here.

use agent_common::wire::{
    IORING_CQE_F_MORE, OP_SLOT_IO_URING, RecordHeader, RecordKind, STR_LEN, URING_HOW_UNREADABLE,
    URING_LAYOUT_PARAMS, URING_LAYOUT_UNKNOWN, URING_LAYOUT_USER_MEMORY, URING_RING_UNKNOWN,
    URING_SQ_THREAD, URING_SQE_FOUND, URING_STR_UNREADABLE, URING_STR1_SOCKADDR,
    URING_STR1_TRUNCATED, URING_STR2_TRUNCATED, UringComplete, UringFile, UringOp, UringOpStrs,
    UringSetup,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns, bpf_probe_read_user,
        generated::{bpf_probe_read_user as read_user_raw, bpf_probe_read_user_str},
    },
    macros::tracepoint,
    programs::TracePointContext,
};

use crate::{
    ctx::field,
    emit::{enabled, header, ignored, reserve, send, submit},
    maps::{
        ReqState, RingState, URING_FDS, URING_IDS, URING_MMAP_ARGS, URING_REQS, URING_RINGS,
        URING_SETUP_ARGS,
    },
};

const IORING_SETUP_SQE128: u32 = 1 << 10;
const IORING_SETUP_NO_MMAP: u32 = 1 << 14;
const IORING_SETUP_NO_SQARRAY: u32 = 1 << 16;
const IORING_OFF_SQ_RING: u64 = 0;
const IORING_OFF_SQES: u64 = 0x1000_0000;

const OP_CONNECT: u8 = 16;
const OP_OPENAT: u8 = 18;
const OP_STATX: u8 = 21;
const OP_OPENAT2: u8 = 28;
const OP_RENAMEAT: u8 = 35;
const OP_UNLINKAT: u8 = 36;
const OP_MKDIRAT: u8 = 37;
const OP_SYMLINKAT: u8 = 38;
const OP_LINKAT: u8 = 39;
const OP_BIND: u8 = 56;

/// SQ entries looked at from the batch position for one request.
const WINDOW: u32 = 16;

/// A new ring or request number: the CPU in the top 16 bits, a per-CPU count below (never 0).
#[inline(always)]
fn next_id() -> u64 {
    // SAFETY: plain helper call without arguments.
    let cpu = u64::from(unsafe { bpf_get_smp_processor_id() });
    match URING_IDS.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, only this CPU writes it while this program runs.
        Some(count) => unsafe {
            *count += 1;
            (cpu << 48) | (*count & 0xffff_ffff_ffff)
        },
        None => 0,
    }
}

#[inline(always)]
fn tgid() -> u64 {
    bpf_get_current_pid_tgid() >> 32
}

/// `syscalls:sys_enter_io_uring_setup`: `params` at 24. Stashes the params pointer for `io_uring_create`.
#[tracepoint]
pub fn sys_enter_io_uring_setup(ctx: TracePointContext) -> u32 {
    if !enabled(OP_SLOT_IO_URING) || ignored() {
        return 0;
    }
    // SAFETY: offset and size from the tracepoint's format file.
    let params = unsafe { field::<u64, 24>(&ctx) };
    let tid = bpf_get_current_pid_tgid() as u32;
    let _ = URING_SETUP_ARGS.insert(tid, params, 0);
    0
}

/// `io_uring:io_uring_create`: `fd` at 8, `ctx` at 16, `sq_entries` at 24, `cq_entries` at 28, `flags` at 32.
/// Fires at the end of `io_uring_setup`, after the params were copied back to the process.
#[tracepoint]
pub fn io_uring_create(ctx: TracePointContext) -> u32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: copied out of the map before the entry is removed.
    let params = unsafe { URING_SETUP_ARGS.get(tid).copied() };
    let _ = URING_SETUP_ARGS.remove(tid);
    if !enabled(OP_SLOT_IO_URING) {
        return 0;
    }
    let skip = ignored();
    // SAFETY: offsets and sizes from the tracepoint's format file.
    let (fd, ring_ctx, sq_entries, cq_entries, flags) = unsafe {
        (
            field::<i32, 8>(&ctx),
            field::<u64, 16>(&ctx),
            field::<u32, 24>(&ctx),
            field::<u32, 28>(&ctx),
            field::<u32, 32>(&ctx),
        )
    };
    let mut state = RingState {
        id: next_id(),
        sq_ring: 0,
        sqes: 0,
        head_off: 0,
        array_off: 0,
        entries: sq_entries,
        setup_flags: flags,
        fd,
        batch_head: 0,
        batch_used: 0,
        ignored: u32::from(skip),
    };
    let mut layout = 0u32;
    if let Some(p) = params {
        // struct io_uring_params: sq_off at 40 (head +0, array +24, user_addr +32), cq_off.user_addr at 112.
        // SAFETY: user pointers read with the checked helper.
        if let Ok(sq_off) = unsafe { bpf_probe_read_user::<[u32; 8]>((p + 40) as *const _) } {
            state.head_off = sq_off[0];
            state.array_off = sq_off[6];
            layout |= URING_LAYOUT_PARAMS;
            if flags & IORING_SETUP_NO_MMAP != 0 {
                // SAFETY: as above.
                let sqes = unsafe { bpf_probe_read_user::<u64>((p + 72) as *const _) };
                // SAFETY: as above.
                let rings = unsafe { bpf_probe_read_user::<u64>((p + 112) as *const _) };
                if let (Ok(sqes), Ok(rings)) = (sqes, rings) {
                    (state.sqes, state.sq_ring) = (sqes, rings);
                    layout |= URING_LAYOUT_USER_MEMORY;
                }
            }
        }
    }
    let _ = URING_RINGS.insert(ring_ctx, state, 0);
    let _ = URING_FDS.insert((tgid() << 32) | u64::from(fd as u32), ring_ctx, 0);
    if skip {
        return 0;
    }
    if let Some(entry) = reserve::<UringSetup>(RecordKind::UringSetup) {
        send(
            entry,
            UringSetup {
                header: header(RecordKind::UringSetup),
                ring: state.id,
                fd,
                sq_entries,
                cq_entries,
                flags,
                layout,
                reserved: 0,
            },
        );
    }
    0
}

/// `syscalls:sys_enter_mmap`: `fd` at 48, `off` at 56. Stashes mmaps of a known ring fd.
#[tracepoint]
pub fn sys_enter_mmap(ctx: TracePointContext) -> u32 {
    // SAFETY: offsets and sizes from the tracepoint's format file.
    let (fd, off) = unsafe { (field::<u64, 48>(&ctx), field::<u64, 56>(&ctx)) };
    if (fd as i32) < 0 || (off != IORING_OFF_SQ_RING && off != IORING_OFF_SQES) {
        return 0;
    }
    let key = (tgid() << 32) | (fd & 0xffff_ffff);
    // SAFETY: copied out of the map.
    let Some(ring_ctx) = (unsafe { URING_FDS.get(key).copied() }) else {
        return 0;
    };
    let tid = bpf_get_current_pid_tgid() as u32;
    let _ = URING_MMAP_ARGS.insert(tid, [ring_ctx, off], 0);
    0
}

/// `syscalls:sys_exit_mmap`: `ret` at 16. Records where a ring's SQ ring or SQE array was mapped.
#[tracepoint]
pub fn sys_exit_mmap(ctx: TracePointContext) -> u32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: copied out of the map before the entry is removed.
    let Some([ring_ctx, off]) = (unsafe { URING_MMAP_ARGS.get(tid).copied() }) else {
        return 0;
    };
    let _ = URING_MMAP_ARGS.remove(tid);
    // SAFETY: offset and size from the tracepoint's format file.
    let ret = unsafe { field::<i64, 16>(&ctx) };
    if (-4095..0).contains(&ret) {
        return 0;
    }
    if let Some(ring) = URING_RINGS.get_ptr_mut(ring_ctx) {
        // SAFETY: the value lives in the map; updates of one ring are serialized by its mmap callers
        // (a race costs only a wrong address, which then finds no SQE).
        unsafe {
            if off == IORING_OFF_SQES {
                (*ring).sqes = ret as u64;
            } else {
                (*ring).sq_ring = ret as u64;
            }
        }
    }
    0
}

/// Finds the SQE of the request with `opcode` and `user_data` in the ring's user memory; its first 64
/// bytes.
///
/// # Safety
/// `ring` must point to a live `URING_RINGS` value.
#[inline(always)]
unsafe fn find_sqe(ring: *mut RingState, opcode: u8, user_data: u64) -> Option<[u64; 8]> {
    // SAFETY: the caller guarantees `ring`; submissions to one ring are serialized by the kernel's ring
    // lock, so this program is the only writer of the batch fields while it runs.
    let st = unsafe { &mut *ring };
    // SAFETY: user pointer read with the checked helper.
    let head =
        unsafe { bpf_probe_read_user::<u32>((st.sq_ring + u64::from(st.head_off)) as *const u32) }
            .ok()?;
    if head != st.batch_head {
        st.batch_head = head;
        st.batch_used = 0;
    }
    let mask = st.entries.wrapping_sub(1);
    let shift = if st.setup_flags & IORING_SETUP_SQE128 != 0 {
        7
    } else {
        6
    };
    let direct = st.setup_flags & IORING_SETUP_NO_SQARRAY != 0;
    let mut i = 0u32;
    while i < WINDOW {
        let pos = head.wrapping_add(st.batch_used).wrapping_add(i) & mask;
        let index = if direct {
            pos
        } else {
            let slot = st.sq_ring + u64::from(st.array_off) + u64::from(pos) * 4;
            // SAFETY: user pointer read with the checked helper.
            unsafe { bpf_probe_read_user::<u32>(slot as *const u32) }.unwrap_or(u32::MAX)
        };
        if index < st.entries {
            let addr = st.sqes + (u64::from(index) << shift);
            // SAFETY: user pointer read with the checked helper; opcode at 0, user_data at 32.
            if let Ok(words) = unsafe { bpf_probe_read_user::<[u64; 8]>(addr as *const _) }
                && words[0] as u8 == opcode
                && words[4] == user_data
            {
                st.batch_used = st.batch_used.wrapping_add(i + 1);
                return Some(words);
            }
        }
        i += 1;
    }
    None
}

/// Which strings an opcode's SQE points to besides the first (`addr`): (a second path at `off`, the
/// first is a socket address). None for opcodes that name no path or address.
#[inline(always)]
fn strings_of(opcode: u8) -> Option<(bool, bool)> {
    match opcode {
        OP_OPENAT | OP_OPENAT2 | OP_STATX | OP_UNLINKAT | OP_MKDIRAT => Some((false, false)),
        OP_RENAMEAT | OP_LINKAT | OP_SYMLINKAT => Some((true, false)),
        OP_CONNECT | OP_BIND => Some((false, true)),
        _ => None,
    }
}

/// `io_uring:io_uring_submit_req`: `ctx` at 8, `req` at 16, `user_data` at 24, `opcode` at 32,
/// `sq_thread` at 48. Records the request with what its SQE names.
#[tracepoint]
pub fn io_uring_submit_req(ctx: TracePointContext) -> u32 {
    if !enabled(OP_SLOT_IO_URING) || ignored() {
        return 0;
    }
    // SAFETY: offsets and sizes from the tracepoint's format file.
    let (ring_ctx, req, user_data, opcode, sq_thread) = unsafe {
        (
            field::<u64, 8>(&ctx),
            field::<u64, 16>(&ctx),
            field::<u64, 24>(&ctx),
            field::<u8, 32>(&ctx),
            field::<u8, 48>(&ctx),
        )
    };
    let mut op = UringOp {
        header: header(RecordKind::UringOp),
        req: next_id(),
        ring: 0,
        off: 0,
        fd: -1,
        len: 0,
        op_flags: 0,
        file_index: 0,
        flags: if sq_thread != 0 { URING_SQ_THREAD } else { 0 },
        ring_fd: -1,
        opcode,
        sqe_flags: 0,
        reserved: [0; 6],
    };
    let mut sqe = [0u64; 8];
    match URING_RINGS.get_ptr_mut(ring_ctx) {
        None => op.flags |= URING_RING_UNKNOWN,
        Some(ring) => {
            // SAFETY: `ring` points into the map.
            if unsafe { (*ring).ignored } != 0 {
                return 0;
            }
            // SAFETY: `ring` points into the map.
            let (id, fd, known) = unsafe {
                (
                    (*ring).id,
                    (*ring).fd,
                    (*ring).sq_ring != 0 && (*ring).sqes != 0,
                )
            };
            (op.ring, op.ring_fd) = (id, fd);
            if !known {
                op.flags |= URING_LAYOUT_UNKNOWN;
            // SAFETY: `ring` points into the map.
            } else if let Some(words) = unsafe { find_sqe(ring, opcode, user_data) } {
                sqe = words;
                op.flags |= URING_SQE_FOUND;
                op.sqe_flags = (sqe[0] >> 8) as u8;
                op.fd = (sqe[0] >> 32) as i32;
                op.off = sqe[1];
                op.len = sqe[3] as u32;
                op.op_flags = (sqe[3] >> 32) as u32;
                op.file_index = (sqe[5] >> 32) as u32;
                if opcode == OP_OPENAT2 {
                    // struct open_how { u64 flags; u64 mode; u64 resolve; } at `off`.
                    // SAFETY: user pointer read with the checked helper.
                    match unsafe { bpf_probe_read_user::<[u64; 2]>(sqe[1] as *const _) } {
                        Ok(how) => (op.op_flags, op.len) = (how[0] as u32, how[1] as u32),
                        Err(_) => op.flags |= URING_HOW_UNREADABLE,
                    }
                }
            }
        }
    }
    let strings = if op.flags & URING_SQE_FOUND != 0 {
        strings_of(opcode)
    } else {
        None
    };
    let recorded = match strings {
        Some((two, sockaddr)) => {
            send_with_strings(op, sqe[2], if two { sqe[1] } else { 0 }, sockaddr)
        }
        None => match reserve::<UringOp>(RecordKind::UringOp) {
            Some(entry) => {
                send(entry, op);
                true
            }
            None => false,
        },
    };
    if recorded {
        let state = ReqState {
            id: op.req,
            want_fd: u32::from(op.flags & URING_SQE_FOUND == 0),
            reserved: 0,
        };
        let _ = URING_REQS.insert(req, state, 0);
    }
    0
}

/// Sends `op` with the strings at `first` and `second` (0: none); `first` is a socket address of `op.off`
/// bytes when `sockaddr` is set. False when the record could not be reserved (counted).
#[inline(always)]
fn send_with_strings(mut op: UringOp, first: u64, second: u64, sockaddr: bool) -> bool {
    let Some(mut entry) = reserve::<UringOpStrs>(RecordKind::UringOpStrs) else {
        return false;
    };
    op.header.kind = RecordKind::UringOpStrs as u32;
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` is a reserved, exclusively owned record; user memory is read with the checked helpers
    // into the record's slots of `STR_LEN` bytes.
    unsafe {
        (*rec).str_lens = [0, 0];
        if first != 0 {
            let dst = (*rec).strs[0].as_mut_ptr();
            if sockaddr {
                op.flags |= URING_STR1_SOCKADDR;
                let len = if op.off > STR_LEN as u64 {
                    STR_LEN as u32
                } else {
                    op.off as u32
                };
                if read_user_raw(dst.cast(), len, first as *const _) == 0 {
                    (*rec).str_lens[0] = len;
                } else {
                    op.flags |= URING_STR_UNREADABLE;
                }
            } else {
                let n = bpf_probe_read_user_str(dst.cast(), STR_LEN as u32, first as *const _);
                if n > 0 {
                    (*rec).str_lens[0] = n as u32;
                    if n as usize >= STR_LEN {
                        op.flags |= URING_STR1_TRUNCATED;
                    }
                } else {
                    op.flags |= URING_STR_UNREADABLE;
                }
            }
        }
        if second != 0 {
            let dst = (*rec).strs[1].as_mut_ptr();
            let n = bpf_probe_read_user_str(dst.cast(), STR_LEN as u32, second as *const _);
            if n > 0 {
                (*rec).str_lens[1] = n as u32;
                if n as usize >= STR_LEN {
                    op.flags |= URING_STR2_TRUNCATED;
                }
            } else {
                op.flags |= URING_STR_UNREADABLE;
            }
        }
        (*rec).op = op;
    }
    submit(entry);
    true
}

/// `io_uring:io_uring_file_get`: `req` at 16, `fd` at 32. The descriptor of a recorded request whose
/// SQE was not found.
#[tracepoint]
pub fn io_uring_file_get(ctx: TracePointContext) -> u32 {
    // SAFETY: offset and size from the tracepoint's format file.
    let req = unsafe { field::<u64, 16>(&ctx) };
    let Some(state) = URING_REQS.get_ptr_mut(req) else {
        return 0;
    };
    // SAFETY: `state` points into the map.
    let id = unsafe {
        if (*state).want_fd == 0 {
            return 0;
        }
        (*state).want_fd = 0;
        (*state).id
    };
    // SAFETY: offset and size from the tracepoint's format file.
    let fd = unsafe { field::<i32, 32>(&ctx) };
    if let Some(entry) = reserve::<UringFile>(RecordKind::UringFile) {
        send(
            entry,
            UringFile {
                header: header(RecordKind::UringFile),
                req: id,
                fd,
                reserved: 0,
            },
        );
    }
    0
}

/// `io_uring:io_uring_complete`: `req` at 16, `res` at 32, `cflags` at 36. The result of a recorded
/// request; the request is forgotten unless `IORING_CQE_F_MORE` says more completions follow.
#[tracepoint]
pub fn io_uring_complete(ctx: TracePointContext) -> u32 {
    // SAFETY: offset and size from the tracepoint's format file.
    let req = unsafe { field::<u64, 16>(&ctx) };
    if req == 0 {
        return 0;
    }
    // SAFETY: copied out of the map.
    let Some(state) = (unsafe { URING_REQS.get(req).copied() }) else {
        return 0;
    };
    // SAFETY: offsets and sizes from the tracepoint's format file.
    let (res, cflags) = unsafe { (field::<i32, 32>(&ctx), field::<u32, 36>(&ctx)) };
    if cflags & IORING_CQE_F_MORE == 0 {
        let _ = URING_REQS.remove(req);
    }
    if let Some(entry) = reserve::<UringComplete>(RecordKind::UringComplete) {
        send(
            entry,
            UringComplete {
                // Only the request number matters: the completing task is not the op's process.
                header: RecordHeader {
                    kind: RecordKind::UringComplete as u32,
                    aux: 0,
                    // SAFETY: plain helper call without arguments.
                    ktime_ns: unsafe { bpf_ktime_get_ns() },
                    pid: 0,
                    tid: 0,
                    uid: 0,
                    gid: 0,
                    comm: [0; 16],
                    cgroup_id: 0,
                },
                req: state.id,
                res,
                cflags,
            },
        );
    }
    0
}
