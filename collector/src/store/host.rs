//! What the store keeps about each host: where its chain stands ([`HostRecord`]), its counters
//! ([`StoredHost`]), and how it is enrolled ([`Enrollment`]).

use auditloop_journal::record::Hash;
use auditloop_protocol::api::HostStatus;

/// Where a host's chain stands after its last stored record, and the key it is enrolled with: everything
/// needed to verify its next batch.
///
/// These are plain values, each kept as a column of its own; the store does not interpret them beyond
/// comparing `next_seq` and `enrolled_key` when a batch is committed, and telling verified records from
/// pending ones by `last_checkpoint_seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostRecord {
    /// Sequence number the next stored record must have.
    pub next_seq: u64,
    /// Hash of the last stored record (the next record's `prev_hash`).
    pub last_hash: Hash,
    /// Key epoch the next checkpoint must name.
    pub epoch: u64,
    /// Public key of that epoch (`None` until the genesis segment start is stored).
    pub epoch_key: Option<[u8; 32]>,
    /// The host's genesis public key, once its first segment start is stored.
    pub genesis_key: Option<[u8; 32]>,
    /// Index the next segment start must carry (`None` until one is stored).
    pub next_segment: Option<u64>,
    /// Generation the chain verifier recorded from the last segment start (0 before one).
    pub segment_generation: u64,
    /// Sequence number of the last verified checkpoint (0 = none yet). Every stored record up to it is
    /// verified; the records after it are pending.
    pub last_checkpoint_seq: u64,
    /// Sequence number of the first stored record (0 = nothing stored yet).
    pub first_seq: u64,
    /// The public key of the anchor the host's first stored batch started from, when it did not start at
    /// seq 1.
    pub anchor_key: Option<[u8; 32]>,
    /// Generation (agent start counter) of the last segment start seen.
    pub generation: Option<u64>,
    /// Whether the current generation logged `agent_stop`.
    pub clean_stop: bool,
    /// Whether the last event is a `spool_overflow` loss.
    pub spool_overflowing: bool,
    /// The genesis public key the host is enrolled with: its first batch must chain to it (`None` only for
    /// a migrated host that had no key stored; such a host can never start a chain).
    pub enrolled_key: Option<[u8; 32]>,
    /// Whether the chain was started from an anchor trusted on first use (hosts stored before enrollment).
    pub tofu: bool,
    /// Where the chain stood right after the last verified checkpoint (`None` before the first, and for
    /// hosts stored before this was kept): what a batch that replaces pending records is verified from.
    pub at_checkpoint: Option<CheckpointPoint>,
}

/// Where a host's chain stood right after its last verified checkpoint (record `last_checkpoint_seq`):
/// the fields of [`HostRecord`] that records after it change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointPoint {
    /// Hash of the checkpoint record.
    pub last_hash: Hash,
    /// Key epoch the next checkpoint must name.
    pub epoch: u64,
    /// Public key of that epoch.
    pub epoch_key: Option<[u8; 32]>,
    /// Index the next segment start must carry.
    pub next_segment: Option<u64>,
    /// Generation the chain verifier recorded from the last segment start.
    pub segment_generation: u64,
    /// Generation of the last segment start seen.
    pub generation: Option<u64>,
    /// Whether the generation had logged `agent_stop`.
    pub clean_stop: bool,
    /// Whether the last event was a `spool_overflow` loss.
    pub spool_overflowing: bool,
}

impl HostRecord {
    /// The record of a host enrolled with `key` that has shipped nothing yet.
    pub fn enrolled(key: [u8; 32]) -> HostRecord {
        HostRecord {
            next_seq: 1,
            last_hash: [0; 32],
            epoch: 0,
            epoch_key: None,
            genesis_key: None,
            next_segment: None,
            segment_generation: 0,
            last_checkpoint_seq: 0,
            first_seq: 0,
            anchor_key: None,
            generation: None,
            clean_stop: false,
            spool_overflowing: false,
            enrolled_key: Some(key),
            tofu: false,
            at_checkpoint: None,
        }
    }

    /// Whether a first batch was stored (the chain has started).
    pub fn started(&self) -> bool {
        self.first_seq != 0
    }

    /// The last stored sequence number (0 before the first batch).
    pub fn last_seq(&self) -> u64 {
        if self.started() {
            self.next_seq.saturating_sub(1)
        } else {
            0
        }
    }

    /// The highest sequence number covered by a verified checkpoint (0 if none).
    pub fn verified_through(&self) -> u64 {
        self.last_checkpoint_seq
    }

    /// Records stored but not yet covered by a verified checkpoint.
    pub fn pending(&self) -> u64 {
        if !self.started() {
            return 0;
        }
        let covered = self.last_checkpoint_seq.max(self.first_seq - 1);
        self.last_seq().saturating_sub(covered)
    }
}

/// One stored host: its record, status and counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredHost {
    /// Host name.
    pub name: String,
    /// Chain status, as set by enrollment and the last commit.
    pub status: HostStatus,
    /// Where its chain stands.
    pub record: HostRecord,
    /// Records stored (events, segment starts, checkpoints).
    pub records: u64,
    /// Event records stored.
    pub events: u64,
    /// Replayed records received and not stored again.
    pub duplicates: u64,
    /// Batches stored.
    pub batches: u64,
    /// When newly verified records or a newer checkpoint were last stored (ns since the Unix epoch; 0 =
    /// never).
    pub last_seen_ns: u64,
    /// When the last checkpoint was stored (ns since the Unix epoch), if one was.
    pub last_checkpoint_ns: Option<u64>,
    /// Whether a silence alert is open.
    pub silent: bool,
}

/// A host to enroll: its id, the genesis public key it is pinned to and the digest of its token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enrollment<'a> {
    /// Host name.
    pub host: &'a str,
    /// The genesis public key of the host's journal.
    pub genesis_key: [u8; 32],
    /// SHA-256 digest of the host's new token.
    pub token_digest: [u8; 32],
    /// Re-enroll a host that exists: its stored chain is kept under the name `<host>@replaced-<now_ns>`
    /// (status `replaced`, no token) and the host starts over from `genesis_key`.
    pub replace: bool,
    /// Current time (ns since the Unix epoch).
    pub now_ns: u64,
}

/// The name a replaced enrollment of `host` is kept under (not a valid host name, so never claimed).
pub fn replaced_name(host: &str, now_ns: u64) -> String {
    format!("{host}@replaced-{now_ns}")
}

#[cfg(test)]
mod tests {
    use super::HostRecord;

    #[test]
    fn pending_records_follow_the_last_checkpoint() {
        let fresh = HostRecord::enrolled([1; 32]);
        assert!(!fresh.started());
        assert_eq!((fresh.last_seq(), fresh.pending()), (0, 0));
        let mut r = HostRecord {
            first_seq: 1,
            next_seq: 11,
            ..fresh
        };
        assert_eq!((r.last_seq(), r.pending()), (10, 10));
        r.last_checkpoint_seq = 8;
        assert_eq!((r.verified_through(), r.pending()), (8, 2));
        r.last_checkpoint_seq = 10;
        assert_eq!(r.pending(), 0);
        // Anchored at 100: nothing before it is stored, so only 100..=104 can be pending.
        let anchored = HostRecord {
            first_seq: 100,
            next_seq: 105,
            ..fresh
        };
        assert_eq!(anchored.pending(), 5);
    }
}
