//! Loss accounting: turns the kernel's per-CPU `LOST` counters and userspace decode failures into `loss`
//! events with exact counts, emitted whenever a count moves.

use agent_common::wire::{LOST_SLOTS, MAX_KINDS, RecordKind, SyscallOp};
use auditloop_model::{Loss, LossStage};

/// Name of a `LOST` slot: a record kind, or `syscall:<op>` for syscall entry records.
fn slot_name(slot: usize) -> String {
    let Ok(slot) = u32::try_from(slot) else {
        return "unknown".into();
    };
    if slot >= MAX_KINDS {
        return SyscallOp::from_u32(slot - MAX_KINDS).map_or_else(
            || "syscall:unknown".into(),
            |op| format!("syscall:{}", op.name()),
        );
    }
    RecordKind::from_u32(slot)
        .map_or("unknown", RecordKind::name)
        .into()
}

/// Running totals, to report only what moved.
#[derive(Debug)]
pub struct LossBooks {
    kernel: [u64; LOST_SLOTS as usize],
    decode_reported: u64,
    decode_total: u64,
}

impl Default for LossBooks {
    fn default() -> LossBooks {
        LossBooks {
            kernel: [0; LOST_SLOTS as usize],
            decode_reported: 0,
            decode_total: 0,
        }
    }
}

impl LossBooks {
    /// Counts one record that could not be decoded.
    pub fn count_decode_error(&mut self) {
        self.decode_total += 1;
    }

    /// Total records the kernel could not deliver, all kinds.
    pub fn kernel_total(&self) -> u64 {
        self.kernel.iter().sum()
    }

    /// Compares kernel totals (index = record kind value) with the last report and returns a loss report
    /// for every kind that moved, and for decode errors since the last call.
    pub fn update(&mut self, kernel_totals: &[u64]) -> Vec<Loss> {
        let mut out = Vec::new();
        for (kind, (&now, last)) in kernel_totals.iter().zip(self.kernel.iter_mut()).enumerate() {
            if now > *last {
                let record = slot_name(kind);
                out.push(Loss {
                    stage: LossStage::KernelRingBuffer,
                    record,
                    count: now - *last,
                    total: now,
                });
                *last = now;
            }
        }
        if self.decode_total > self.decode_reported {
            out.push(Loss {
                stage: LossStage::Decode,
                record: "unknown".into(),
                count: self.decode_total - self.decode_reported,
                total: self.decode_total,
            });
            self.decode_reported = self.decode_total;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_only_moves() {
        let mut books = LossBooks::default();
        let mut totals = [0u64; LOST_SLOTS as usize];
        assert!(books.update(&totals).is_empty());
        totals[RecordKind::ExecEnter as usize] = 5;
        let got = books.update(&totals);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].record, "exec_enter");
        assert_eq!((got[0].count, got[0].total), (5, 5));
        assert!(books.update(&totals).is_empty());
        totals[RecordKind::ExecEnter as usize] = 7;
        books.count_decode_error();
        let got = books.update(&totals);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].count, got[0].total), (2, 7));
        assert_eq!(got[1].stage, LossStage::Decode);
        assert_eq!(books.kernel_total(), 7);
        totals[(MAX_KINDS + SyscallOp::Open as u32) as usize] = 1;
        assert_eq!(books.update(&totals)[0].record, "syscall:open");
    }
}
