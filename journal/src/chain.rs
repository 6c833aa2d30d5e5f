//! Streaming chain verification: the rules every record must follow, one record at a time.
//!
//! [`ChainState`] is what a verifier must remember between records: the next sequence number, the last hash,
//! the key epoch and its public key, and the next segment index. `verify` walks a journal directory with it;
//! the collector keeps one per host (serialized) and feeds it each shipped batch, so both sides apply exactly
//! the same checks.

use serde::{Deserialize, Serialize};

use crate::damage::Damage;
use crate::keys::verify_signature;
use crate::record::{Checkpoint, Hash, Payload, RawRecord, SegmentStart, decode_payload};

pub use crate::record::{TAG_CHECKPOINT, TAG_EVENT, TAG_EVENT_V1, TAG_SEGMENT_START, is_event_tag};

/// What a verifier remembers between records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainState {
    /// Sequence number the next record must have.
    pub next_seq: u64,
    /// Hash the next record's `prev_hash` must equal.
    pub last_hash: Hash,
    /// Key epoch the next checkpoint must name.
    pub epoch: u64,
    /// Public key of that epoch (`None` until the genesis segment start is seen).
    pub key: Option<[u8; 32]>,
    /// The genesis public key, once seen.
    pub genesis: Option<[u8; 32]>,
    /// Index the next segment start must carry (`None` until one is seen).
    pub next_segment: Option<u64>,
    /// Generation of the last segment start.
    pub generation: u64,
    /// Sequence number of the last verified checkpoint (0 = none yet).
    pub last_checkpoint_seq: u64,
}

/// A record that broke the rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("seq {seq}: {detail}")]
pub struct ChainError {
    /// Sequence number expected at that place.
    pub seq: u64,
    /// Kind of damage.
    pub damage: Damage,
    /// Details.
    pub detail: String,
}

/// A record that followed the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepted<'a> {
    /// A segment start (already decoded).
    SegmentStart(SegmentStart),
    /// An event; its payload bytes are not decoded here (the hash covers them).
    Event(&'a [u8]),
    /// A checkpoint whose signature verified.
    Checkpoint(Checkpoint),
}

impl ChainState {
    /// The state before a journal's first record (seq 1, zero hash, key from the genesis segment start).
    pub fn genesis() -> ChainState {
        ChainState::anchored(1, [0; 32], 0, None)
    }

    /// The state before record `seq` of a journal whose earlier records are gone (an `ANCHOR`): its
    /// `prev_hash`, and the epoch and public key of the next checkpoint.
    pub fn anchored(seq: u64, prev_hash: Hash, epoch: u64, key: Option<[u8; 32]>) -> ChainState {
        ChainState {
            next_seq: seq,
            last_hash: prev_hash,
            epoch,
            key,
            genesis: None,
            next_segment: None,
            generation: 0,
            last_checkpoint_seq: 0,
        }
    }

    /// Checks `rec` against the chain and advances past it. `hash_ok` is whether the record's stored hash
    /// matches its contents (computed by the caller, possibly in parallel). On error the state is not
    /// meaningful any more; callers that must stay usable check a clone.
    pub fn accept<'a>(
        &mut self,
        rec: &RawRecord<'a>,
        hash_ok: bool,
    ) -> Result<Accepted<'a>, ChainError> {
        let expected = self.next_seq;
        let fail = |damage: Damage, detail: String| ChainError {
            seq: expected,
            damage,
            detail,
        };
        if !hash_ok {
            return Err(fail(
                Damage::HashMismatch,
                format!("record claims seq {}", rec.seq),
            ));
        }
        if rec.seq != self.next_seq {
            return Err(fail(Damage::SequenceGap, format!("found seq {}", rec.seq)));
        }
        if rec.prev_hash != self.last_hash {
            return Err(fail(
                Damage::BrokenLink,
                "prev_hash does not match the previous record".into(),
            ));
        }
        let accepted = match rec.payload.first().copied() {
            Some(tag) if is_event_tag(tag) => Accepted::Event(rec.payload),
            Some(TAG_SEGMENT_START | TAG_CHECKPOINT) => match decode_payload(rec.payload) {
                Ok(Payload::SegmentStart(start)) => {
                    self.segment_start(&start, rec.seq)
                        .map_err(|(d, s)| fail(d, s))?;
                    Accepted::SegmentStart(start)
                }
                Ok(Payload::Checkpoint(cp)) => {
                    self.checkpoint(&cp, rec.seq, &rec.prev_hash)
                        .map_err(|(d, s)| fail(d, s))?;
                    Accepted::Checkpoint(cp)
                }
                Ok(Payload::Event(_)) => Accepted::Event(rec.payload),
                Err(why) => return Err(fail(Damage::BadPayload, why.to_string())),
            },
            tag => {
                return Err(fail(
                    Damage::BadPayload,
                    format!("unknown payload tag {tag:?}"),
                ));
            }
        };
        self.last_hash = rec.hash;
        self.next_seq += 1;
        Ok(accepted)
    }

    fn segment_start(&mut self, start: &SegmentStart, seq: u64) -> Result<(), (Damage, String)> {
        if self.next_segment.is_some_and(|i| i != start.index) {
            return Err((
                Damage::BadSegmentStart,
                format!(
                    "segment start says index {}, expected {}",
                    start.index,
                    self.next_segment.unwrap_or_default()
                ),
            ));
        }
        if seq == 1 {
            let Some(genesis) = start.genesis_public_key else {
                return Err((
                    Damage::BadSegmentStart,
                    "first segment has no genesis key".into(),
                ));
            };
            self.key = Some(genesis);
            self.genesis = Some(genesis);
        }
        self.next_segment = Some(start.index + 1);
        self.generation = start.generation;
        Ok(())
    }

    fn checkpoint(
        &mut self,
        cp: &Checkpoint,
        seq: u64,
        prev: &Hash,
    ) -> Result<(), (Damage, String)> {
        if cp.epoch != self.epoch {
            return Err((
                Damage::BadCheckpoint,
                format!("epoch {} where {} was expected", cp.epoch, self.epoch),
            ));
        }
        if cp.head_seq + 1 != seq || cp.head_hash != *prev {
            return Err((
                Damage::BadCheckpoint,
                "checkpoint head is not the preceding record".into(),
            ));
        }
        let Some(key) = self.key else {
            return Err((Damage::BadCheckpoint, "no key known for this epoch".into()));
        };
        let message =
            Checkpoint::signed_message(cp.epoch, cp.head_seq, &cp.head_hash, &cp.next_public_key);
        if !verify_signature(&key, &message, &cp.signature) {
            return Err((
                Damage::BadSignature,
                format!("signature does not verify under epoch {} key", cp.epoch),
            ));
        }
        self.key = Some(cp.next_public_key);
        self.epoch += 1;
        self.last_checkpoint_seq = seq;
        Ok(())
    }
}
