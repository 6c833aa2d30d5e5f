//! Reserving, filling and submitting ring-buffer records.
//!
//! Records are submitted with `BPF_RB_NO_WAKEUP`: a wakeup per record made the kernel skip the programs for
//! most syscalls on this kernel. Instead, once more than [`WAKE_BYTES`] are pending, a record forces a wakeup,
//! at most once per [`WAKE_INTERVAL_NS`]; the reader also polls on a short timer so quiet periods flush.

use agent_common::wire::{OP_URGENT, RecordHeader, RecordKind};
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_uid_gid, bpf_ktime_get_ns,
    },
    maps::ring_buf::RingBufEntry,
};

use crate::maps::{EVENTS, IGNORE_COMMS, IGNORE_TGIDS, LAST_WAKEUP, LOST, OP_ENABLED};

/// Pending bytes above which a submit wakes the reader.
const WAKE_BYTES: u64 = 256 * 1024;
/// Minimum time between forced wakeups for pending bytes.
const WAKE_INTERVAL_NS: u64 = 1_000_000;
/// Minimum time between forced wakeups for urgent records (at most 20,000 wakeups a second, far from the
/// per-record wakeups that made the kernel skip programs).
const URGENT_INTERVAL_NS: u64 = 50_000;

/// Whether the current process is one whose activity is not recorded (by pid or by task name).
#[inline(always)]
pub fn ignored() -> bool {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: the values are only tested for presence, never read through.
    unsafe {
        if IGNORE_TGIDS.get(tgid).is_some() {
            return true;
        }
        match bpf_get_current_comm() {
            Ok(comm) => IGNORE_COMMS.get(comm).is_some(),
            Err(_) => false,
        }
    }
}

/// Whether capture of `slot` (a `SyscallOp` value or an `OP_SLOT_*`) is on.
#[inline(always)]
pub fn enabled(slot: u32) -> bool {
    OP_ENABLED.get(slot).is_none_or(|on| *on != 0)
}

/// Whether records of `slot` are urgent: a rule may act on them, so they wake the reader at once.
#[inline(always)]
pub fn urgent(slot: u32) -> bool {
    OP_ENABLED.get(slot).is_some_and(|on| *on == OP_URGENT)
}

/// The header for a record of `kind` about the current task.
#[inline(always)]
pub fn header(kind: RecordKind) -> RecordHeader {
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    RecordHeader {
        kind: kind as u32,
        aux: 0,
        // SAFETY: plain helper call without arguments.
        ktime_ns: unsafe { bpf_ktime_get_ns() },
        pid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        // SAFETY: plain helper call without arguments.
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
    }
}

/// Reserves a record of type `T`, counting a loss for `kind` when the ring buffer is full.
#[inline(always)]
pub fn reserve<T: 'static>(kind: RecordKind) -> Option<RingBufEntry<T>> {
    reserve_counted(kind as u32)
}

/// Reserves a record of type `T`, counting a loss in `LOST` slot `slot` when the ring buffer is full.
#[inline(always)]
pub fn reserve_counted<T: 'static>(slot: u32) -> Option<RingBufEntry<T>> {
    let entry = EVENTS.reserve::<T>(0);
    if entry.is_none() {
        count_lost(slot);
    }
    entry
}

/// Counts one record that could not be delivered, in `LOST` slot `slot`.
#[inline(always)]
pub fn count_lost(slot: u32) {
    if let Some(slot) = LOST.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, only this CPU writes it while this program runs (no preemption).
        unsafe { *slot += 1 };
    }
}

/// Submits a filled record, waking the reader only when enough data is pending.
#[inline(always)]
pub fn submit<T>(entry: RingBufEntry<T>) {
    let flags =
        if EVENTS.query(BPF_RB_AVAIL_DATA.into()) >= WAKE_BYTES && wake_due(WAKE_INTERVAL_NS) {
            BPF_RB_FORCE_WAKEUP
        } else {
            BPF_RB_NO_WAKEUP
        };
    entry.submit(flags.into());
}

/// Submits a filled record that completes an event of `slot`: when the slot is urgent it wakes the reader
/// now (at most once per [`URGENT_INTERVAL_NS`]; the reader drains everything pending when it wakes),
/// else as [`submit`].
#[inline(always)]
pub fn submit_completing<T>(entry: RingBufEntry<T>, slot: u32) {
    if urgent(slot) && wake_due(URGENT_INTERVAL_NS) {
        entry.submit(BPF_RB_FORCE_WAKEUP.into());
    } else {
        submit(entry);
    }
}

#[inline(always)]
fn wake_due(interval_ns: u64) -> bool {
    let Some(last) = LAST_WAKEUP.get_ptr_mut(0) else {
        return true;
    };
    // SAFETY: plain helper call; the slot is a valid u64 (races between CPUs only cost an extra wakeup).
    unsafe {
        let now = bpf_ktime_get_ns();
        if now.wrapping_sub(*last) < interval_ns {
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

/// Fills a reserved record that completes an event of `slot`, then submits it with
/// [`submit_completing`].
#[inline(always)]
pub fn send_completing<T>(mut entry: RingBufEntry<T>, value: T, slot: u32) {
    entry.write(value);
    submit_completing(entry, slot);
}
