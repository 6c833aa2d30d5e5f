//! io_uring records → events: pairs each submitted request with its completion (and, for requests whose
//! SQE was not found, with the descriptor the kernel looked up), remembers which process set up each ring,
//! and hands finished requests to [`convert`] (one `io_uring` event, plus a `file` or `net` event for
//! ops with that meaning).
//!
//! Pure logic over records, tested without a kernel. It never drops a request: one whose completion does
//! not come within [`URING_PAIR_TIMEOUT_NS`] is emitted without a result, and everything pending is
//! emitted at shutdown.

mod convert;

use std::collections::HashMap;

use agent_common::decode::UringStrs;
use agent_common::wire::{COMM_LEN, RecordHeader, URING_SQ_THREAD, UringFile, UringOp, UringSetup};
use auditloop_model::{EventBody, IoUringSetup};

use crate::bounded::BoundedMap;

pub use convert::{UringFiles, convert};

/// A request still waiting for its completion is emitted without a result after this long.
pub const URING_PAIR_TIMEOUT_NS: u64 = 1_000_000_000;
/// Most requests kept waiting for their completion; past this the oldest is emitted without one.
const MAX_PENDING: usize = 16384;
/// Most rings remembered.
const MAX_RINGS: usize = 4096;

/// `IORING_SETUP_SQPOLL`.
const IORING_SETUP_SQPOLL: u32 = 1 << 1;

/// A submitted request and what has been learnt of it so far.
#[derive(Clone, Debug)]
pub struct PendingOp {
    /// The submission record.
    pub op: UringOp,
    /// The strings its SQE points to, for opcodes that name paths or an address.
    pub strs: Option<Box<UringStrs>>,
    /// The descriptor the kernel looked up, for a request whose SQE was not found.
    pub looked_up_fd: Option<i32>,
}

/// Who set a ring up.
#[derive(Clone, Copy, Debug)]
struct RingOwner {
    pid: u32,
    comm: [u8; COMM_LEN],
}

/// Pairing state for io_uring requests.
#[derive(Debug)]
pub struct UringPairing {
    pending: HashMap<u64, PendingOp>,
    rings: BoundedMap<u64, RingOwner>,
}

impl Default for UringPairing {
    fn default() -> UringPairing {
        UringPairing {
            pending: HashMap::new(),
            rings: BoundedMap::new(MAX_RINGS),
        }
    }
}

impl UringPairing {
    /// A ring was set up: remembers its owner and returns the `io_uring_setup` body.
    pub fn on_setup(&mut self, rec: &UringSetup) -> EventBody {
        self.rings.insert(
            rec.ring,
            RingOwner {
                pid: rec.header.pid,
                comm: rec.header.comm,
            },
        );
        EventBody::IoUringSetup(IoUringSetup {
            ring_fd: i64::from(rec.fd),
            sq_entries: rec.sq_entries,
            cq_entries: rec.cq_entries,
            flags: rec.flags,
            sqpoll: rec.flags & IORING_SETUP_SQPOLL != 0,
            layout_known: rec.layout & agent_common::wire::URING_LAYOUT_PARAMS != 0,
        })
    }

    /// A request was submitted. Returns the oldest pending request when too many are waiting (emit it
    /// without a result).
    pub fn on_submit(&mut self, op: UringOp, strs: Option<Box<UringStrs>>) -> Option<PendingOp> {
        let evicted = if self.pending.len() >= MAX_PENDING {
            let oldest = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.op.header.ktime_ns)
                .map(|(&id, _)| id);
            oldest.and_then(|id| self.pending.remove(&id))
        } else {
            None
        };
        self.pending.insert(
            op.req,
            PendingOp {
                op,
                strs,
                looked_up_fd: None,
            },
        );
        evicted
    }

    /// The kernel looked up the descriptor of a request whose SQE was not found.
    pub fn on_file(&mut self, rec: &UringFile) {
        if let Some(p) = self.pending.get_mut(&rec.req) {
            p.looked_up_fd = Some(rec.fd);
        }
    }

    /// A request completed: the pending request, if it is still waiting (later completions of a
    /// multishot request find nothing).
    pub fn on_complete(&mut self, req: u64) -> Option<PendingOp> {
        self.pending.remove(&req)
    }

    /// Requests submitted more than [`URING_PAIR_TIMEOUT_NS`] before `now_ns`, oldest first.
    pub fn take_stale(&mut self, now_ns: u64) -> Vec<PendingOp> {
        let ids: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| now_ns.saturating_sub(p.op.header.ktime_ns) > URING_PAIR_TIMEOUT_NS)
            .map(|(&id, _)| id)
            .collect();
        let mut stale: Vec<PendingOp> = ids
            .into_iter()
            .filter_map(|id| self.pending.remove(&id))
            .collect();
        stale.sort_by_key(|p| p.op.header.ktime_ns);
        stale
    }

    /// Every pending request, oldest first (at shutdown).
    pub fn take_all(&mut self) -> Vec<PendingOp> {
        let mut all: Vec<PendingOp> = self.pending.drain().map(|(_, p)| p).collect();
        all.sort_by_key(|p| p.op.header.ktime_ns);
        all
    }

    /// Requests waiting for their completion.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The header to describe a request's process with: an SQPOLL submission is made by the ring's
    /// `iou-sqp-<pid>` kernel thread, a thread of the process; its task name is replaced by the name of
    /// the process that set the ring up (or, when that was not seen, the process's name now).
    pub fn submitter(&self, op: &UringOp) -> RecordHeader {
        let mut header = op.header;
        if op.flags & URING_SQ_THREAD != 0 {
            match self.rings.get(&op.ring).filter(|o| o.pid == header.pid) {
                Some(owner) => header.comm = owner.comm,
                None => {
                    if let Ok(name) = std::fs::read_to_string(format!("/proc/{}/comm", header.pid))
                    {
                        let name = name.trim_end().as_bytes();
                        let n = name.len().min(COMM_LEN - 1);
                        header.comm = [0; COMM_LEN];
                        header.comm[..n].copy_from_slice(&name[..n]);
                    }
                }
            }
        }
        header
    }
}

#[cfg(test)]
mod tests;
