//! What verification found and what it could not prove: the report, the state of `HEAD`, how far trust in
//! the signing keys reaches, and the reasons a clean chain still does not prove its tail.

use serde::Serialize;

pub use crate::damage::Damage;

/// The first problem found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Segment file name (`LADDER` for the key ladder, `ANCHOR` for the anchor).
    pub segment: String,
    /// Byte offset of the bad record (or of the end, for truncation).
    pub offset: u64,
    /// Sequence number expected at that place (for key ladder problems: the first retained record, whose
    /// key could not be traced).
    pub seq: u64,
    /// What is wrong.
    pub damage: Damage,
    /// Details.
    pub detail: String,
}

/// What `HEAD` (the last record known durable) says about the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadState {
    /// `HEAD` names the journal's last record.
    Ok,
    /// There is no readable `HEAD`.
    Missing,
    /// `HEAD` names an earlier record: the records after it were written after the last sync. Consistent
    /// only when they are all unsigned (no checkpoint after `HEAD`), see [`Report::unproven`].
    Behind,
    /// `HEAD` names a record past the journal's end: records that were durable are missing (reported as
    /// [`Damage::Truncated`]).
    Beyond,
}

/// How far the signatures are traced to a genesis key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trust {
    /// From the trusted key given (`--pubkey`): it is the genesis key of segment 0, or the key ladder leads
    /// from it to `ANCHOR`'s key. Proves authorship by whoever held that key (up to the moment of a
    /// compromise, see docs/integrity.md).
    TrustedKey,
    /// From the journal's own genesis key (segment 0's, or the key ladder's after retention), no trusted key
    /// given: proves the journal is internally consistent, not who wrote it.
    OwnGenesis,
    /// Retention deleted the journal's start and no key ladder leads from a genesis key to `ANCHOR`'s key:
    /// the signatures are checked from `ANCHOR`'s key, which whoever can write the directory could have
    /// chosen.
    Untraced,
}

/// What verification found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// Segments read.
    pub segments: u64,
    /// Records verified.
    pub records: u64,
    /// Event records among them.
    pub events: u64,
    /// Checkpoints verified.
    pub checkpoints: u64,
    /// First sequence number.
    pub first_seq: u64,
    /// Last verified sequence number.
    pub last_seq: u64,
    /// Sequence number of the last checkpoint (0 when no checkpoint follows `ANCHOR`).
    pub last_checkpoint_seq: u64,
    /// Records after the last checkpoint (not yet signed).
    pub unsigned_tail: u64,
    /// Time the unsigned tail spans, in seconds: from the first unsigned record's time to the last record's
    /// (event times and segment start times, as the records state them); 0 without an unsigned tail.
    pub unsigned_tail_secs: f64,
    /// What `HEAD` says; `None` when verification stopped at a problem before `HEAD` could be compared.
    pub head: Option<HeadState>,
    /// The sequence number `HEAD` names, when it is readable.
    pub head_seq: Option<u64>,
    /// A last segment that holds no complete record beyond what `HEAD` says is durable: a start that
    /// was interrupted before its first record was written (the agent removes it at its next start). Not
    /// damage: no durable record is missing.
    pub interrupted_start: Option<String>,
    /// The last segment ends in a record cut short beyond what `HEAD` says is durable: a crash or kill
    /// during a write (the agent cuts it at its next start and journals `journal_recovered`). Not damage:
    /// no durable record is missing, and no byte of the cut record is trusted.
    pub torn_tail: Option<String>,
    /// The key the first checkpoint's signature was checked with (hex): the genesis key, or `ANCHOR`'s
    /// after retention.
    pub public_key: String,
    /// How far the signatures are traced; `None` when verification stopped at a problem first.
    pub trust: Option<Trust>,
    /// The genesis key the signatures are traced to (hex); empty when untraced.
    pub genesis_public_key: String,
    /// Key ladder links followed from the genesis key to `ANCHOR`'s epoch (0 while segment 0 is retained).
    pub ladder_links: u64,
    /// Why trust is [`Trust::Untraced`], or what limits it later (no key ladder yet).
    pub trust_note: Option<String>,
    /// The first problem, if any.
    pub problem: Option<Problem>,
}

/// Why a journal whose chain verifies still does not prove its whole content.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Unproven {
    /// The unsigned tail spans more time than allowed.
    UnsignedTail {
        /// Records in it.
        records: u64,
        /// Seconds it spans.
        secs: f64,
        /// The limit.
        limit_secs: f64,
    },
    /// There is no readable `HEAD`.
    HeadMissing,
    /// `HEAD` names a record before the last checkpoint: a checkpoint was written but `HEAD` never
    /// followed it.
    HeadBehindCheckpoint {
        /// What `HEAD` names.
        head_seq: u64,
        /// The last checkpoint.
        checkpoint_seq: u64,
    },
}

impl std::fmt::Display for Unproven {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unproven::UnsignedTail {
                records,
                secs,
                limit_secs,
            } => write!(
                f,
                "the {records} records after the last checkpoint span {secs:.1} s, more than the \
                 {limit_secs} s allowed (--max-unsigned-secs): nothing signed them"
            ),
            Unproven::HeadMissing => write!(f, "HEAD is missing or unreadable"),
            Unproven::HeadBehindCheckpoint {
                head_seq,
                checkpoint_seq,
            } => write!(
                f,
                "HEAD names seq {head_seq}, before the last checkpoint at seq {checkpoint_seq}"
            ),
        }
    }
}

impl Report {
    /// Whether the journal verified.
    pub fn is_clean(&self) -> bool {
        self.problem.is_none()
    }

    /// Why a clean journal still does not prove its tail (empty: it does): an unsigned tail spanning more
    /// than `max_unsigned_secs`, a missing `HEAD`, or a `HEAD` behind the last checkpoint. (A journal with
    /// a problem proves nothing past it; this is not asked of it.)
    pub fn unproven(&self, max_unsigned_secs: f64) -> Vec<Unproven> {
        let mut out = Vec::new();
        if self.unsigned_tail > 0 && self.unsigned_tail_secs > max_unsigned_secs {
            out.push(Unproven::UnsignedTail {
                records: self.unsigned_tail,
                secs: self.unsigned_tail_secs,
                limit_secs: max_unsigned_secs,
            });
        }
        match (self.head, self.head_seq) {
            (Some(HeadState::Missing), _) => out.push(Unproven::HeadMissing),
            (Some(HeadState::Behind), Some(head_seq)) if head_seq < self.last_checkpoint_seq => {
                out.push(Unproven::HeadBehindCheckpoint {
                    head_seq,
                    checkpoint_seq: self.last_checkpoint_seq,
                });
            }
            _ => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> Report {
        Report {
            last_seq: 100,
            last_checkpoint_seq: 90,
            unsigned_tail: 10,
            unsigned_tail_secs: 4.9,
            head: Some(HeadState::Ok),
            head_seq: Some(100),
            ..Report::default()
        }
    }

    #[test]
    fn a_short_tail_and_a_good_head_prove_everything() {
        assert_eq!(clean().unproven(5.0), vec![]);
        let behind_in_tail = Report {
            head: Some(HeadState::Behind),
            head_seq: Some(90),
            ..clean()
        };
        assert_eq!(behind_in_tail.unproven(5.0), vec![]);
    }

    #[test]
    fn a_long_tail_a_missing_head_and_a_head_before_the_checkpoint_do_not() {
        let long = Report {
            unsigned_tail_secs: 5.01,
            ..clean()
        };
        assert_eq!(
            long.unproven(5.0),
            vec![Unproven::UnsignedTail {
                records: 10,
                secs: 5.01,
                limit_secs: 5.0
            }]
        );
        assert_eq!(long.unproven(6.0), vec![]);
        let missing = Report {
            head: Some(HeadState::Missing),
            head_seq: None,
            ..clean()
        };
        assert_eq!(missing.unproven(5.0), vec![Unproven::HeadMissing]);
        let before = Report {
            head: Some(HeadState::Behind),
            head_seq: Some(89),
            ..clean()
        };
        assert_eq!(
            before.unproven(5.0),
            vec![Unproven::HeadBehindCheckpoint {
                head_seq: 89,
                checkpoint_seq: 90
            }]
        );
        let text = before.unproven(5.0)[0].to_string();
        assert!(text.contains("seq 89") && text.contains("seq 90"), "{text}");
        // No tail, whatever its span says.
        let sealed = Report {
            unsigned_tail: 0,
            unsigned_tail_secs: 60.0,
            ..clean()
        };
        assert_eq!(sealed.unproven(5.0), vec![]);
    }
}
