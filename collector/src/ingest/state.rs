//! What ingest remembers about a host between batches ([`HostState`]), and how it is kept in the store
//! ([`HostRecord`]): the verifier's own chain state never becomes a storage format.

use auditloop_journal::chain::ChainState;
use auditloop_protocol::api::HostStatus;

use crate::store::HostRecord;

/// What the collector remembers about one host between batches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostState {
    /// The verifier's state after the last stored record; `None` until a first batch is stored.
    pub chain: Option<ChainState>,
    /// Sequence number of the first stored record.
    pub first_seq: u64,
    /// The public key of a batch anchor trusted on first use, when the host's first stored batch did not
    /// start at seq 1 (its earlier records were gone).
    pub anchor_key: Option<[u8; 32]>,
    /// Generation (agent start counter) of the last segment start seen.
    pub generation: Option<u64>,
    /// Whether the current generation logged `agent_stop` (its run ended cleanly; events the agent still
    /// writes while stopping, such as a final `loss`, do not undo that).
    pub clean_stop: bool,
    /// Whether the last event is a `spool_overflow` loss (one alert per run of such events).
    pub spool_overflowing: bool,
}

impl HostState {
    /// The sequence number the next stored record must have (1 for a host never seen).
    pub fn next_seq(&self) -> u64 {
        self.chain.as_ref().map_or(1, |c| c.next_seq)
    }

    /// The host's status after a stored batch: verified from genesis, or from an anchor trusted on first
    /// use.
    pub fn status(&self) -> HostStatus {
        if self.anchor_key.is_some() {
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
        }
    }

    /// The state of a stored host.
    pub fn from_record(record: &HostRecord) -> HostState {
        HostState {
            chain: Some(ChainState {
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
            generation: record.generation,
            clean_stop: record.clean_stop,
            spool_overflowing: record.spool_overflowing,
        }
    }
}

#[cfg(test)]
mod tests {
    use auditloop_journal::chain::ChainState;
    use auditloop_protocol::api::HostStatus;

    use super::HostState;

    #[test]
    fn a_stored_state_reads_back_the_same() {
        let state = HostState {
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
            generation: Some(5),
            clean_stop: true,
            spool_overflowing: true,
        };
        assert_eq!(HostState::from_record(&state.to_record()), state);
        let anchored = HostState {
            chain: Some(ChainState::anchored(10, [1; 32], 2, None)),
            first_seq: 10,
            ..HostState::default()
        };
        assert_eq!(HostState::from_record(&anchored.to_record()), anchored);
        assert_eq!(anchored.status(), HostStatus::Verified);
        assert_eq!(state.status(), HostStatus::AnchoredTofu);
        assert_eq!(HostState::default().to_record().next_seq, 1);
    }
}
