//! Whether an answer of the collector is one the agent may believe: an acknowledgement must fit the batch
//! it answers and the journal's durable head. Anything else would be the collector (or whoever answers in
//! its name) asking the agent to delete records it never stored; such an answer moves nothing.

use auditloop_protocol::batch::Batch;

use super::client::Outcome;

/// Checks an answer against the batch it answers: a 200 must acknowledge a sequence number inside the batch
/// (`first_seq..=last_seq + 1`), a 409 may not claim records beyond the journal's durable `head`, and a 2xx
/// must carry a receipt. Anything else is the collector (or whoever answers in its name) asking the agent to
/// delete records it never stored; the error says why.
pub fn check_ack(outcome: Outcome, batch: &Batch, head: u64) -> Result<Outcome, String> {
    match outcome {
        Outcome::Stored {
            next_seq,
            verified_through: Some(verified),
        } if verified >= next_seq => Err(format!(
            "200 says records up to {verified} are verified but acknowledges only up to {}",
            next_seq.saturating_sub(1)
        )),
        Outcome::Stored { next_seq, .. }
            if !(batch.first_seq..=batch.last_seq.saturating_add(1)).contains(&next_seq) =>
        {
            Err(format!(
                "200 acknowledges up to {} for a batch of {}..={}",
                next_seq.saturating_sub(1),
                batch.first_seq,
                batch.last_seq
            ))
        }
        Outcome::Gap { expected_seq } if expected_seq > head.saturating_add(1) => Err(format!(
            "409 expects seq {expected_seq}, past the last record this journal wrote ({head})"
        )),
        Outcome::Gap { expected_seq: 0 } => Err("409 expects seq 0".into()),
        Outcome::BadReceipt { status, why } => Err(format!("HTTP {status}: {why}")),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first_seq: u64, last_seq: u64) -> Batch {
        Batch {
            first_seq,
            last_seq,
            anchor: None,
            frames: vec![1],
        }
    }

    #[test]
    fn acks_must_fit_the_batch_sent_and_the_journal() {
        let b = batch(10, 19);
        let stored = |next_seq, verified_through| Outcome::Stored {
            next_seq,
            verified_through,
        };
        for next_seq in [10, 15, 20] {
            for verified in [None, Some(0), Some(next_seq - 1)] {
                assert_eq!(
                    check_ack(stored(next_seq, verified), &b, 25),
                    Ok(stored(next_seq, verified))
                );
            }
        }
        for next_seq in [0, 1, 9, 21, u64::MAX] {
            assert!(
                check_ack(stored(next_seq, None), &b, 25).is_err(),
                "{next_seq}"
            );
        }
        assert!(
            check_ack(stored(20, Some(20)), &b, 25).is_err(),
            "verified past acked"
        );
        for expected_seq in [1, 10, 20, 26] {
            assert_eq!(
                check_ack(Outcome::Gap { expected_seq }, &b, 25),
                Ok(Outcome::Gap { expected_seq })
            );
        }
        for expected_seq in [0, 27, 1 << 62, u64::MAX] {
            assert!(
                check_ack(Outcome::Gap { expected_seq }, &b, 25).is_err(),
                "{expected_seq}"
            );
        }
        let bad = Outcome::BadReceipt {
            status: 200,
            why: "empty".into(),
        };
        assert!(check_ack(bad, &b, 25).unwrap_err().contains("HTTP 200"));
        assert_eq!(check_ack(Outcome::TooLarge, &b, 25), Ok(Outcome::TooLarge));
    }
}
