//! TCP connection ends: `sock:inet_sock_set_state`.
//!
//! The syscall records name only one end of a connection, and the other lives in kernel memory this agent
//! may not read. TCP state changes carry both: the program records, for TCP sockets, the transitions to
//! `SYN_SENT` (in the task calling `connect`, before the local port is picked) and to `LISTEN` (in the task
//! calling `listen`, with the bound address), and the ones out of `SYN_SENT` (the active end's local port
//! is known by then) and from `SYN_RECV` to `ESTABLISHED` (a connection that a listener will accept).
//! Userspace pairs them with the syscalls. Field offsets and sizes are those of the tracepoint's format
//! file; every load is aligned to its size, the last one ends at the record's end (72 bytes).

use agent_common::wire::{
    IPPROTO_TCP, RecordKind, SockState, SyscallOp, TCP_CLOSE, TCP_ESTABLISHED, TCP_LISTEN,
    TCP_SYN_RECV, TCP_SYN_SENT,
};
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};

use crate::{
    ctx::field,
    emit::{enabled, header, ignored, reserve, send},
};

/// `sock:inet_sock_set_state`: `skaddr` at 8, `oldstate` 16, `newstate` 20, `sport` 24, `dport` 26,
/// `family` 28, `protocol` 30, `saddr` 32, `daddr` 36, `saddr_v6` 40, `daddr_v6` 56.
#[tracepoint]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    // SAFETY: offsets and sizes from the tracepoint's format file.
    let (protocol, old, new) = unsafe {
        (
            field::<u16, 30>(&ctx),
            field::<i32, 16>(&ctx) as u32,
            field::<i32, 20>(&ctx) as u32,
        )
    };
    if protocol != IPPROTO_TCP {
        return 0;
    }
    // Transitions in the calling task honour the ignore lists; those driven by packets run in whatever
    // task the CPU had, so no task-based filter applies to them.
    let wanted = match (old, new) {
        (_, TCP_SYN_SENT) => enabled(SyscallOp::Connect as u32) && !ignored(),
        (_, TCP_LISTEN) => enabled(SyscallOp::Listen as u32) && !ignored(),
        (TCP_SYN_SENT, TCP_ESTABLISHED | TCP_CLOSE) => enabled(SyscallOp::Connect as u32),
        (TCP_SYN_RECV, TCP_ESTABLISHED) => enabled(SyscallOp::Accept as u32),
        _ => false,
    };
    if !wanted {
        return 0;
    }
    let Some(entry) = reserve::<SockState>(RecordKind::SockState) else {
        return 0;
    };
    // SAFETY: offsets and sizes from the tracepoint's format file; each load is aligned to its size.
    let (skaddr, sport, dport, family, v4, s6, d6) = unsafe {
        (
            field::<u64, 8>(&ctx),
            field::<u16, 24>(&ctx),
            field::<u16, 26>(&ctx),
            field::<u16, 28>(&ctx),
            field::<u64, 32>(&ctx).to_ne_bytes(),
            [field::<u64, 40>(&ctx), field::<u64, 48>(&ctx)],
            [field::<u64, 56>(&ctx), field::<u64, 64>(&ctx)],
        )
    };
    send(
        entry,
        SockState {
            header: header(RecordKind::SockState),
            skaddr,
            oldstate: old,
            newstate: new,
            sport,
            dport,
            family,
            reserved: 0,
            saddr: [v4[0], v4[1], v4[2], v4[3]],
            daddr: [v4[4], v4[5], v4[6], v4[7]],
            saddr_v6: pair_bytes(s6),
            daddr_v6: pair_bytes(d6),
        },
    );
    0
}

/// Two loaded words as the 16 bytes they were in the record.
#[inline(always)]
fn pair_bytes(words: [u64; 2]) -> [u8; 16] {
    let (a, b) = (words[0].to_ne_bytes(), words[1].to_ne_bytes());
    [
        a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], b[0], b[1], b[2], b[3], b[4], b[5], b[6],
        b[7],
    ]
}
