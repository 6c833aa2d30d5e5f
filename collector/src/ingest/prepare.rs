//! The per-record work of verifying a batch that does not depend on the chain: checking each record's
//! stored hash and decoding each event with its searchable columns, on all cores for large batches.
//!
//! Links, order and signatures are then checked one record at a time by the chain verifier, which takes
//! these results in order.

use auditloop_journal::chain::is_event_tag;
use auditloop_journal::record::RawRecord;
use auditloop_model::Event;

use crate::ingest::decode::decode_event;
use crate::ingest::reject::Reject;
use crate::store::SearchColumns;
use crate::store::columns;

/// Batches smaller than this are prepared on the calling thread.
const PARALLEL_ABOVE: usize = 2048;

/// What was worked out for one record.
#[derive(Debug)]
pub struct Prepared {
    /// Whether the stored hash matches the record's contents.
    pub hash_ok: bool,
    /// For a record tagged as an event: the event and its columns, or why it does not decode.
    pub event: Option<Result<(Event, SearchColumns), Reject>>,
}

/// Prepares each record of `records`, in order.
pub fn prepare(records: &[RawRecord<'_>]) -> Vec<Prepared> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if workers < 2 || records.len() < PARALLEL_ABOVE {
        return records.iter().map(one).collect();
    }
    let chunk = records.len().div_ceil(workers);
    std::thread::scope(|s| {
        let handles: Vec<_> = records
            .chunks(chunk)
            .map(|part| {
                let handle = s.spawn(move || part.iter().map(one).collect::<Vec<_>>());
                (part, handle)
            })
            .collect();
        // A failed worker's records are prepared again here, so positions stay aligned.
        handles
            .into_iter()
            .flat_map(|(part, h)| h.join().unwrap_or_else(|_| part.iter().map(one).collect()))
            .collect()
    })
}

fn one(rec: &RawRecord<'_>) -> Prepared {
    let event = rec
        .payload
        .first()
        .copied()
        .is_some_and(is_event_tag)
        .then(|| {
            decode_event(rec.payload, rec.seq).map(|event| {
                let columns = columns::of_event(&event);
                (event, columns)
            })
        });
    Prepared {
        hash_ok: rec.hash_ok(),
        event,
    }
}

#[cfg(test)]
mod tests {
    use auditloop_journal::record::{frame, read_frame};

    use super::prepare;

    #[test]
    fn parallel_and_serial_checks_agree() {
        let mut bytes = Vec::new();
        let mut prev = [0; 32];
        for seq in 1..=5000u64 {
            prev = frame(&mut bytes, seq, &prev, &seq.to_le_bytes());
        }
        // Corrupt the payload of record 4000 (frame length 76 + 8 bytes).
        bytes[3999 * 84 + 44] ^= 1;
        let mut records = Vec::new();
        let mut rest = &bytes[..];
        while let Ok(rec) = read_frame(rest) {
            rest = &rest[rec.len..];
            records.push(rec);
        }
        let ok: Vec<bool> = prepare(&records).iter().map(|p| p.hash_ok).collect();
        assert_eq!(ok.len(), 5000);
        assert_eq!(ok.iter().filter(|b| !**b).count(), 1);
        assert!(!ok[3999]);
    }
}
