//! Why a batch is refused as a whole ([`Reject`]), and what the refusal raises and sets.

use auditloop_journal::Damage;
use auditloop_protocol::api::HostStatus;

use crate::alerts::{self, NewAlert};

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
}

impl Reject {
    /// The alert this refusal raises, if any.
    pub fn alert(&self) -> Option<NewAlert> {
        match self {
            Reject::Malformed(_) => None,
            Reject::Gap {
                expected_seq,
                detail,
            } => Some(alerts::gap(*expected_seq, detail)),
            Reject::Fork { seq, detail } => Some(alerts::chain_fork(*seq, detail)),
            Reject::Damaged {
                seq,
                damage,
                detail,
            } => Some(alerts::tamper(*seq, *damage, detail)),
        }
    }

    /// The host status this refusal sets, if it changes it.
    pub fn status(&self) -> Option<HostStatus> {
        match self {
            Reject::Malformed(_) | Reject::Gap { .. } => None,
            Reject::Fork { .. } => Some(HostStatus::Forked),
            Reject::Damaged { .. } => Some(HostStatus::Tampered),
        }
    }
}
