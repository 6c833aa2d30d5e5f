//! What ingest remembers about a host between batches ([`HostState`]), and how it is kept in the store
//! ([`HostRecord`]): the verifier's own chain state never becomes a storage format.

use auditloop_journal::chain::ChainState;
use auditloop_protocol::api::HostStatus;

use crate::store::{CheckpointPoint, HostRecord};

/// Where a host stood right after its last verified checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AtCheckpoint {
    /// The verifier's state after the checkpoint record.
    pub chain: ChainState,
    /// Generation of the last segment start seen.
    pub generation: Option<u64>,
    /// Whether that generation had logged `agent_stop`.
    pub clean_stop: bool,
    /// Whether the last event was a `spool_overflow` loss.
    pub spool_overflowing: bool,
}

/// What the collector remembers about one host between batches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostState {
    /// The genesis public key the host is enrolled with: the root of trust of its first batch (`None`
    /// refuses every first batch).
    pub enrolled_key: Option<[u8; 32]>,
    /// The verifier's state after the last stored record; `None` until a first batch is stored.
    pub chain: Option<ChainState>,
    /// Sequence number of the first stored record (0 before the first batch).
    pub first_seq: u64,
    /// The public key of the anchor the host's first stored batch started from, when it did not start at
    /// seq 1 (its earlier records were gone).
    pub anchor_key: Option<[u8; 32]>,
    /// Whether that anchor was trusted on first use (a host stored before enrollment).
    pub tofu: bool,
    /// Generation (agent start counter) of the last segment start seen.
    pub generation: Option<u64>,
    /// Whether the current generation logged `agent_stop` (its run ended cleanly; events the agent still
    /// writes while stopping, such as a final `loss`, do not undo that).
    pub clean_stop: bool,
    /// Whether the last event is a `spool_overflow` loss (one alert per run of such events).
    pub spool_overflowing: bool,
    /// Where the host stood right after its last verified checkpoint, if known.
    pub at_checkpoint: Option<AtCheckpoint>,
}

impl HostState {
    /// The state of a host enrolled with `key` that has shipped nothing yet.
    pub fn enrolled(key: [u8; 32]) -> HostState {
        HostState {
            enrolled_key: Some(key),
            ..HostState::default()
        }
    }

    /// The sequence number the next stored record must have (1 for a host that shipped nothing).
    pub fn next_seq(&self) -> u64 {
        self.chain.as_ref().map_or(1, |c| c.next_seq)
    }

    /// The highest sequence number covered by a verified checkpoint (0 if none).
    pub fn verified_through(&self) -> u64 {
        self.chain.as_ref().map_or(0, |c| c.last_checkpoint_seq)
    }

    /// The state the host was in right after its last verified checkpoint (or, before its first, when it
    /// had stored nothing): what a batch that replaces its pending records is verified from. `None` when
    /// that is not known (a host stored before it was kept, or trusted on first use).
    pub fn rewound(&self) -> Option<HostState> {
        if self.tofu {
            return None;
        }
        if self.verified_through() == 0 {
            return Some(HostState {
                enrolled_key: self.enrolled_key,
                ..HostState::default()
            });
        }
        let at = self.at_checkpoint.as_ref()?;
        Some(HostState {
            chain: Some(at.chain.clone()),
            generation: at.generation,
            clean_stop: at.clean_stop,
            spool_overflowing: at.spool_overflowing,
            ..self.clone()
        })
    }

    /// The host's status after a stored batch: verified from its enrolled key, or from an anchor trusted on
    /// first use before enrollment.
    pub fn status(&self) -> HostStatus {
        if self.tofu {
            HostStatus::AnchoredTofu
        } else {
            HostStatus::Verified
        }
    }

    /// The record the store keeps for this state (a host with no chain yet stands at genesis).
    pub fn to_record(&self) -> HostRecord {
        let chain = self.chain.clone().unwrap_or_else(ChainState::genesis);
        HostRecord {
            next_seq: chain.next_seq,
            last_hash: chain.last_hash,
            epoch: chain.epoch,
            epoch_key: chain.key,
            genesis_key: chain.genesis,
            next_segment: chain.next_segment,
            segment_generation: chain.generation,
            last_checkpoint_seq: chain.last_checkpoint_seq,
            first_seq: self.first_seq,
            anchor_key: self.anchor_key,
            generation: self.generation,
            clean_stop: self.clean_stop,
            spool_overflowing: self.spool_overflowing,
            enrolled_key: self.enrolled_key,
            tofu: self.tofu,
            at_checkpoint: self.at_checkpoint.as_ref().map(|at| CheckpointPoint {
                last_hash: at.chain.last_hash,
                epoch: at.chain.epoch,
                epoch_key: at.chain.key,
                next_segment: at.chain.next_segment,
                segment_generation: at.chain.generation,
                generation: at.generation,
                clean_stop: at.clean_stop,
                spool_overflowing: at.spool_overflowing,
            }),
        }
    }

    /// The state of a stored host (one that stored nothing yet has no chain).
    pub fn from_record(record: &HostRecord) -> HostState {
        HostState {
            enrolled_key: record.enrolled_key,
            chain: record.started().then_some(ChainState {
                next_seq: record.next_seq,
                last_hash: record.last_hash,
                epoch: record.epoch,
                key: record.epoch_key,
                genesis: record.genesis_key,
                next_segment: record.next_segment,
                generation: record.segment_generation,
                last_checkpoint_seq: record.last_checkpoint_seq,
            }),
            first_seq: record.first_seq,
            anchor_key: record.anchor_key,
            tofu: record.tofu,
            generation: record.generation,
            clean_stop: record.clean_stop,
            spool_overflowing: record.spool_overflowing,
            at_checkpoint: record
                .at_checkpoint
                .filter(|_| record.last_checkpoint_seq != 0)
                .map(|at| AtCheckpoint {
                    chain: ChainState {
                        next_seq: record.last_checkpoint_seq + 1,
                        last_hash: at.last_hash,
                        epoch: at.epoch,
                        key: at.epoch_key,
                        genesis: record.genesis_key,
                        next_segment: at.next_segment,
                        generation: at.segment_generation,
                        last_checkpoint_seq: record.last_checkpoint_seq,
                    },
                    generation: at.generation,
                    clean_stop: at.clean_stop,
                    spool_overflowing: at.spool_overflowing,
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use auditloop_journal::chain::ChainState;
    use auditloop_protocol::api::HostStatus;

    use super::{AtCheckpoint, HostState};
    use crate::store::HostRecord;

    #[test]
    fn a_stored_state_reads_back_the_same() {
        let state = HostState {
            enrolled_key: Some([7; 32]),
            chain: Some(ChainState {
                next_seq: 42,
                last_hash: [0xab; 32],
                epoch: 3,
                key: Some([1; 32]),
                genesis: Some([7; 32]),
                next_segment: Some(2),
                generation: 5,
                last_checkpoint_seq: 40,
            }),
            first_seq: 1,
            anchor_key: Some([9; 32]),
            tofu: true,
            generation: Some(5),
            clean_stop: true,
            spool_overflowing: true,
            at_checkpoint: Some(AtCheckpoint {
                chain: ChainState {
                    next_seq: 41,
                    last_hash: [0xcd; 32],
                    epoch: 3,
                    key: Some([2; 32]),
                    genesis: Some([7; 32]),
                    next_segment: Some(2),
                    generation: 5,
                    last_checkpoint_seq: 40,
                },
                generation: Some(5),
                clean_stop: false,
                spool_overflowing: true,
            }),
        };
        assert_eq!(HostState::from_record(&state.to_record()), state);
        let rewound = state.rewound();
        assert_eq!(rewound, None, "trusted on first use: no rewinding");
        let enrolled = HostState {
            tofu: false,
            ..state.clone()
        };
        let rewound = enrolled.rewound().unwrap();
        assert_eq!((rewound.next_seq(), rewound.clean_stop), (41, false));
        assert_eq!(rewound.chain.as_ref().unwrap().last_hash, [0xcd; 32]);
        let anchored = HostState {
            enrolled_key: Some([7; 32]),
            chain: Some(ChainState::anchored(10, [1; 32], 2, None)),
            first_seq: 10,
            anchor_key: Some([3; 32]),
            ..HostState::default()
        };
        assert_eq!(HostState::from_record(&anchored.to_record()), anchored);
        assert_eq!(anchored.status(), HostStatus::Verified);
        assert_eq!(state.status(), HostStatus::AnchoredTofu);
        assert_eq!(state.verified_through(), 40);
    }

    #[test]
    fn an_enrolled_host_has_no_chain_yet() {
        let enrolled = HostState::enrolled([5; 32]);
        assert_eq!(enrolled.to_record(), HostRecord::enrolled([5; 32]));
        assert_eq!(
            HostState::from_record(&HostRecord::enrolled([5; 32])),
            enrolled
        );
        assert_eq!((enrolled.next_seq(), enrolled.verified_through()), (1, 0));
        assert_eq!(enrolled.rewound(), Some(enrolled.clone()));
        let pending_only = HostState {
            chain: Some(ChainState::anchored(9, [1; 32], 0, Some([5; 32]))),
            first_seq: 5,
            ..enrolled.clone()
        };
        assert_eq!(
            pending_only.rewound(),
            Some(enrolled),
            "back to nothing stored"
        );
    }
}
