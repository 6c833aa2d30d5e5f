//! Reserving, filling and submitting ring-buffer records.
//!
//! Records are submitted with `BPF_RB_NO_WAKEUP`: a wakeup per record made the kernel skip the programs for
//! most syscalls on this kernel. Instead, once more than [`WAKE_BYTES`] are pending, a record forces a wakeup,
//! at most once per [`WAKE_INTERVAL_NS`]; the reader also polls on a short timer so quiet periods flush.

use agent_common::wire::{RecordHeader, RecordKind};
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns,
    },
    maps::ring_buf::RingBufEntry,
};

use crate::maps::{EVENTS, IGNORE_TGIDS, LAST_WAKEUP, LOST};

/// Pending bytes above which a submit wakes the reader.
const WAKE_BYTES: u64 = 256 * 1024;
/// Minimum time between forced wakeups.
const WAKE_INTERVAL_NS: u64 = 1_000_000;

/// Whether the current process is one whose activity is not recorded.
#[inline(always)]
pub fn ignored() -> bool {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: the value is only tested for presence, never read through.
    unsafe { IGNORE_TGIDS.get(&tgid).is_some() }
}

/// The header for a record of `kind` about the current task.
#[inline(always)]
pub fn header(kind: RecordKind) -> RecordHeader {
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    RecordHeader {
        kind: kind as u32,
        reserved: 0,
        // SAFETY: plain helper call without arguments.
        ktime_ns: unsafe { bpf_ktime_get_ns() },
        pid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    }
}

/// Reserves a record of type `T`, counting a loss for `kind` when the ring buffer is full.
#[inline(always)]
pub fn reserve<T: 'static>(kind: RecordKind) -> Option<RingBufEntry<T>> {
    let entry = EVENTS.reserve::<T>(0);
    if entry.is_none() {
        count_lost(kind);
    }
    entry
}

/// Counts one record of `kind` that could not be delivered.
#[inline(always)]
pub fn count_lost(kind: RecordKind) {
    if let Some(slot) = LOST.get_ptr_mut(kind as u32) {
        // SAFETY: per-CPU slot, only this CPU writes it while this program runs (no preemption).
        unsafe { *slot += 1 };
    }
}

/// Submits a filled record, waking the reader only when enough data is pending.
#[inline(always)]
pub fn submit<T>(entry: RingBufEntry<T>) {
    let flags = if EVENTS.query(BPF_RB_AVAIL_DATA.into()) >= WAKE_BYTES && wake_due() {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    entry.submit(flags.into());
}

#[inline(always)]
fn wake_due() -> bool {
    let Some(last) = LAST_WAKEUP.get_ptr_mut(0) else {
        return true;
    };
    // SAFETY: plain helper call; the slot is a valid u64 (races between CPUs only cost an extra wakeup).
    unsafe {
        let now = bpf_ktime_get_ns();
        if now.wrapping_sub(*last) < WAKE_INTERVAL_NS {
            return false;
        }
        *last = now;
    }
    true
}

/// Fills a reserved record in place with `value`, then submits it.
#[inline(always)]
pub fn send<T>(mut entry: RingBufEntry<T>, value: T) {
    entry.write(value);
    submit(entry);
}
