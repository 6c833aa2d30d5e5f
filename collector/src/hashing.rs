//! Checking the stored hash of every record of a batch, on all cores for large batches.
//!
//! Record hashes are independent of each other, so they are computed in parallel; links, order and
//! signatures are then checked one record at a time by the chain verifier.

use auditloop_journal::record::RawRecord;

/// Batches smaller than this are hashed on the calling thread.
const PARALLEL_ABOVE: usize = 2048;

/// Whether each record's stored hash matches its contents, in order.
pub fn hashes_ok(records: &[RawRecord<'_>]) -> Vec<bool> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if workers < 2 || records.len() < PARALLEL_ABOVE {
        return records.iter().map(RawRecord::hash_ok).collect();
    }
    let chunk = records.len().div_ceil(workers);
    std::thread::scope(|s| {
        let handles: Vec<_> = records
            .chunks(chunk)
            .map(|part| {
                let handle =
                    s.spawn(move || part.iter().map(RawRecord::hash_ok).collect::<Vec<_>>());
                (part.len(), handle)
            })
            .collect();
        // A failed worker cannot vouch for its records: they count as mismatches, keeping positions aligned.
        handles
            .into_iter()
            .flat_map(|(len, h)| h.join().unwrap_or_else(|_| vec![false; len]))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use auditloop_journal::record::{frame, read_frame};

    use super::*;

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
        let ok = hashes_ok(&records);
        assert_eq!(ok.len(), 5000);
        assert_eq!(ok.iter().filter(|b| !**b).count(), 1);
        assert!(!ok[3999]);
    }
}
