//! Why a batch is refused as a whole ([`Reject`]), and the alert the refusal raises.
//!
//! A refusal never changes the host: not its chain, status, last contact nor silence. Its text is for the
//! collector's log and the alert; what the sender is told is only its kind (see `http/error.rs`), and no
//! text here ever holds a stored hash or payload.

use auditloop_journal::Damage;

use crate::alerts::{self, NewAlert, Offender};
use crate::metrics::Refusal;

/// Why a batch is refused as a whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reject {
    /// The header does not describe the frames (HTTP 400).
    #[error("{0}")]
    Malformed(String),
    /// The batch does not continue the stored chain (HTTP 409).
    #[error("{detail}")]
    Gap {
        /// The sequence number the collector expects next.
        expected_seq: u64,
        /// What is wrong.
        detail: String,
    },
    /// A replayed record differs from the stored record at the same sequence number (HTTP 422).
    #[error("seq {seq}: {detail}")]
    Fork {
        /// The sequence number.
        seq: u64,
        /// Details.
        detail: String,
    },
    /// A record breaks the chain rules (HTTP 422).
    #[error("seq {seq}: {detail}")]
    Damaged {
        /// The sequence number expected at that place.
        seq: u64,
        /// Kind of damage.
        damage: Damage,
        /// Details.
        detail: String,
    },
    /// The host's first batch does not start from its enrolled key (HTTP 422).
    #[error("{detail}")]
    Untrusted {
        /// What is wrong.
        detail: String,
    },
    /// Replayed records differ from pending (unsigned) stored records, and the batch does not prove its own
    /// yet: the host must resend from its last verified record (HTTP 409).
    #[error("seq {seq}: {detail}")]
    PendingFork {
        /// The sequence number to resend from: the one after the last verified record.
        expected_seq: u64,
        /// The first differing sequence number.
        seq: u64,
        /// Details.
        detail: String,
    },
}

impl Reject {
    /// The refusal's reason, as the metrics count it.
    pub fn refusal(&self) -> Refusal {
        match self {
            Reject::Malformed(_) => Refusal::Malformed,
            Reject::Gap { .. } => Refusal::Gap,
            Reject::Fork { .. } => Refusal::ChainFork,
            Reject::Damaged { .. } => Refusal::BadChain,
            Reject::Untrusted { .. } => Refusal::WrongKey,
            Reject::PendingFork { .. } => Refusal::PendingFork,
        }
    }

    /// The alert this refusal of a batch sent by `offender` raises, if any: `gap` for a gap, `forgery`
    /// for a batch that does not verify against the host's stored chain and enrolled key, or that differs
    /// from its pending records.
    pub fn alert(&self, offender: &Offender<'_>) -> Option<NewAlert> {
        match self {
            Reject::Malformed(_) => None,
            Reject::Gap {
                expected_seq,
                detail,
            } => Some(alerts::gap(*expected_seq, detail)),
            Reject::Fork { seq, detail } => Some(alerts::forgery(
                offender,
                alerts::Refused::ChainFork,
                Some(*seq),
                detail,
            )),
            Reject::Damaged {
                seq,
                damage,
                detail,
            } => Some(alerts::forgery(
                offender,
                alerts::Refused::Damage(*damage),
                Some(*seq),
                detail,
            )),
            Reject::Untrusted { detail } => Some(alerts::forgery(
                offender,
                alerts::Refused::WrongKey,
                None,
                detail,
            )),
            Reject::PendingFork { seq, detail, .. } => Some(alerts::forgery(
                offender,
                alerts::Refused::PendingFork,
                Some(*seq),
                detail,
            )),
        }
    }
}
