//! The root of trust: where the chain of a host's first batch may start.
//!
//! A host is enrolled with its journal's genesis public key, and that key is the only thing its first batch
//! is trusted by. The batch must either start at seq 1 with the segment-0 segment start that names exactly
//! this genesis key, or carry an anchor (its first records were deleted before it first shipped) whose key
//! ladder leads from the enrolled key to the anchor epoch's public key
//! ([`KeyLadder::check`](auditloop_journal::ladder::KeyLadder::check)). From there the chain verifier
//! checks every checkpoint signature along the host's key chain. Nothing here is trusted on first use.

use auditloop_journal::chain::ChainState;
use auditloop_journal::record::{Payload, RawRecord, TAG_SEGMENT_START, decode_payload};
use auditloop_protocol::batch::Batch;

use crate::ingest::reject::Reject;

/// The chain state before the first record of `batch`, the first batch of a host enrolled with
/// `enrolled` (whose first record is `first`), and the anchor key it starts from, if any. A batch that does
/// not start from the enrolled key is [`Reject::Untrusted`]; one that neither starts at seq 1 nor carries
/// an anchor is a gap (the host must ship from seq 1).
pub fn first_chain(
    enrolled: Option<&[u8; 32]>,
    batch: &Batch,
    first: &RawRecord<'_>,
) -> Result<(ChainState, Option<[u8; 32]>), Reject> {
    let Some(enrolled) = enrolled else {
        return Err(untrusted("the host has no enrolled key"));
    };
    if batch.first_seq == 1 {
        let genesis = match first.payload.first().copied() {
            Some(TAG_SEGMENT_START) => match decode_payload(first.payload) {
                Ok(Payload::SegmentStart(start)) if start.index == 0 => start.genesis_public_key,
                _ => None,
            },
            _ => None,
        };
        return match genesis {
            Some(key) if key == *enrolled => Ok((ChainState::genesis(), None)),
            Some(_) => Err(untrusted(
                "the first segment start names another genesis key than the enrolled one",
            )),
            None => Err(untrusted(
                "record 1 is not the first segment start with a genesis key",
            )),
        };
    }
    let Some(anchor) = &batch.anchor else {
        return Err(Reject::Gap {
            expected_seq: 1,
            detail: format!(
                "nothing stored yet: the first batch must start at seq 1 or carry an anchor (starts at \
                 seq {})",
                batch.first_seq
            ),
        });
    };
    anchor
        .ladder
        .check(enrolled, anchor.epoch, &anchor.public_key)
        .map_err(|e| {
            untrusted(&format!(
                "the anchor's key does not lead back to the enrolled key: {e}"
            ))
        })?;
    let chain = ChainState::anchored(
        batch.first_seq,
        anchor.prev_hash,
        anchor.epoch,
        Some(anchor.public_key),
    );
    Ok((chain, Some(anchor.public_key)))
}

fn untrusted(detail: &str) -> Reject {
    Reject::Untrusted {
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use auditloop_journal::keys::EpochKey;
    use auditloop_journal::ladder::{KeyLadder, KeyLink};
    use auditloop_journal::record::{frame, read_frame};
    use auditloop_protocol::batch::{Batch, BatchAnchor};

    use super::first_chain;
    use crate::ingest::reject::Reject;
    use crate::testutil::TestJournal;

    fn first_of(batch: &Batch) -> auditloop_journal::record::RawRecord<'_> {
        batch.records().next().unwrap().unwrap()
    }

    #[test]
    fn a_genesis_batch_must_name_the_enrolled_key() {
        let mut j = TestJournal::new("h");
        j.execs(2);
        let batch = j.batch(1, 3);
        let key = j.journal().genesis_public_key();
        let (chain, anchor) = first_chain(Some(&key), &batch, &first_of(&batch)).unwrap();
        assert_eq!((chain.next_seq, anchor), (1, None));
        let other = [9; 32];
        let err = first_chain(Some(&other), &batch, &first_of(&batch)).unwrap_err();
        assert!(matches!(err, Reject::Untrusted { .. }), "{err:?}");
        assert!(matches!(
            first_chain(None, &batch, &first_of(&batch)),
            Err(Reject::Untrusted { .. })
        ));
        // Record 1 that is an event, not a segment start.
        let mut frames = Vec::new();
        frame(&mut frames, 1, &[0; 32], &[1, 2, 3]);
        let fake = Batch {
            first_seq: 1,
            last_seq: 1,
            anchor: None,
            frames,
        };
        let first = read_frame(&fake.frames).unwrap();
        assert!(matches!(
            first_chain(Some(&key), &fake, &first),
            Err(Reject::Untrusted { .. })
        ));
    }

    #[test]
    fn an_anchor_must_lead_back_to_the_enrolled_key() {
        let seed = [3u8; 32];
        let genesis = EpochKey::from_seed(0, seed, [0; 32]).public();
        let mut key = EpochKey::from_seed(0, seed, genesis);
        let mut ladder = KeyLadder::default();
        for _ in 0..3 {
            ladder.push(KeyLink::step(&key));
            key.evolve();
        }
        let mut frames = Vec::new();
        frame(&mut frames, 50, &[4; 32], &[1]);
        let mut batch = Batch {
            first_seq: 50,
            last_seq: 50,
            anchor: Some(BatchAnchor {
                prev_hash: [4; 32],
                epoch: 3,
                public_key: key.public(),
                ladder: ladder.clone(),
            }),
            frames,
        };
        let first = read_frame(&batch.frames).unwrap();
        let (chain, anchor) = first_chain(Some(&genesis), &batch, &first).unwrap();
        assert_eq!(
            (chain.next_seq, chain.epoch, chain.key),
            (50, 3, Some(key.public()))
        );
        assert_eq!(anchor, Some(key.public()));
        // Another host's genesis key, an anchor key the ladder does not reach, an empty ladder.
        let err = first_chain(Some(&[8; 32]), &batch, &first).unwrap_err();
        assert!(matches!(err, Reject::Untrusted { .. }), "{err:?}");
        batch.anchor.as_mut().unwrap().public_key[0] ^= 1;
        assert!(matches!(
            first_chain(Some(&genesis), &batch, &first),
            Err(Reject::Untrusted { .. })
        ));
        let anchor = batch.anchor.as_mut().unwrap();
        anchor.public_key = key.public();
        anchor.ladder = KeyLadder::default();
        assert!(matches!(
            first_chain(Some(&genesis), &batch, &first),
            Err(Reject::Untrusted { .. })
        ));
        // Without an anchor, the host must start at seq 1.
        batch.anchor = None;
        assert!(matches!(
            first_chain(Some(&genesis), &batch, &first),
            Err(Reject::Gap {
                expected_seq: 1,
                ..
            })
        ));
    }
}
