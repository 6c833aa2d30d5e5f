//! A batch whose replayed records differ from stored records that no checkpoint covers yet (pending ones).
//!
//! Pending records are not signed. A host that lost them (a power loss before its journal synced them)
//! writes other records at the same sequence numbers, and whoever holds a host's token and knows its last
//! hash can ship unsigned records for it. So a replay that differs only from pending records is no fork of
//! the signed chain, and must not lock the host out. The batch is verified again from where the host stood
//! right after its last verified checkpoint ([`HostState::rewound`]):
//!
//! - if it verifies and one of its checkpoints covers the first differing record, the host signed its
//!   version and nobody signed the stored one: its records replace the pending ones;
//! - if it verifies but no checkpoint of it covers that record yet, or it starts after the host's last
//!   verified record, the host is asked to resend from that record (409): an agent does so until its journal
//!   holds a checkpoint (an idle one writes a heartbeat checkpoint every few seconds);
//! - otherwise it is refused as the fork it is.
//!
//! Either way the collector never keeps a pending record over a signed one, and a batch that cannot prove
//! itself changes nothing.

use auditloop_journal::record::Hash;
use auditloop_protocol::batch::Batch;

use crate::ingest::reject::Reject;
use crate::ingest::state::HostState;
use crate::ingest::verify::{Verified, check};

/// What to do with `batch`, refused by `fork` for differing at `fork_seq` from a pending record of the host
/// in `state`: its records replacing the host's pending ones, or a refusal (a 409 asking for the records
/// from the last verified one, or `fork` itself).
pub fn replace_pending<'b>(
    state: &HostState,
    batch: &'b Batch,
    stored_hash: impl Fn(u64) -> Option<Hash>,
    fork: Reject,
    fork_seq: u64,
) -> Result<Verified<'b>, Reject> {
    let Some(rewound) = state.rewound() else {
        return Err(fork);
    };
    let verified_through = state.verified_through();
    let resend = |detail: &str| Reject::PendingFork {
        expected_seq: rewound.next_seq(),
        seq: fork_seq,
        detail: detail.to_owned(),
    };
    let verified_only = |seq: u64| {
        (seq <= verified_through)
            .then(|| stored_hash(seq))
            .flatten()
    };
    match check(&rewound, batch, verified_only) {
        Ok(mut verified) if verified.verified_through() >= fork_seq => {
            verified.replace_from = Some(verified_through + 1);
            Ok(verified)
        }
        Ok(_) => Err(resend(
            "replayed records differ from pending records, and no checkpoint of the batch covers them yet",
        )),
        Err(Reject::Gap { .. }) => Err(resend(
            "replayed records differ from pending records; the batch must start at the last verified record",
        )),
        Err(_) => Err(fork),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use auditloop_journal::record::Hash;
    use auditloop_protocol::batch::Batch;

    use super::replace_pending;
    use crate::ingest::reject::Reject;
    use crate::ingest::state::HostState;
    use crate::ingest::verify::check;
    use crate::testutil::{TestJournal, batch_of, with_bad_signature};

    /// A host as a store would keep it.
    struct Host {
        state: HostState,
        hashes: HashMap<u64, Hash>,
    }

    impl Host {
        fn of(j: &mut TestJournal) -> Host {
            Host {
                state: HostState::enrolled(j.genesis_key()),
                hashes: HashMap::new(),
            }
        }

        fn store(&mut self, batch: &Batch) {
            let v = check(&self.state, batch, |s| self.hashes.get(&s).copied()).unwrap();
            for r in &v.records {
                self.hashes.insert(r.seq, r.hash);
            }
            self.state = v.state;
        }

        /// `batch` refused as a fork, then tried against the pending records.
        fn retry(&self, batch: &Batch) -> Result<u64, Reject> {
            let lookup = |s: u64| self.hashes.get(&s).copied();
            let (fork, seq) = match check(&self.state, batch, lookup) {
                Err(fork @ Reject::Fork { seq, .. }) => (fork, seq),
                other => panic!("not a fork: {other:?}"),
            };
            replace_pending(&self.state, batch, lookup, fork, seq).map(|v| {
                assert_eq!(v.replace_from, Some(self.state.verified_through() + 1));
                v.verified_through()
            })
        }
    }

    #[test]
    fn records_the_host_signed_replace_pending_ones_it_lost() {
        let mut real = TestJournal::new("h");
        real.execs(3);
        let cp = real.checkpoint();
        // The journal on disk at the checkpoint; the records after it get lost in a power loss.
        let mut after_loss = real.fork();
        real.execs(2);
        let mut host = Host::of(&mut real);
        host.store(&real.batch(1, cp + 2));
        assert_eq!(
            (host.state.verified_through(), host.state.next_seq()),
            (cp, cp + 3)
        );

        // The host restarts (a segment start at cp + 1) and writes other records.
        after_loss.execs(1);
        let err = host.retry(&after_loss.batch(cp + 1, cp + 2)).unwrap_err();
        assert!(
            matches!(err, Reject::PendingFork { expected_seq, .. } if expected_seq == cp + 1),
            "no checkpoint yet: resend from the last verified record: {err:?}"
        );
        let cp2 = after_loss.checkpoint();
        assert_eq!(host.retry(&after_loss.batch(cp + 1, cp2)), Ok(cp2));
        // From before the checkpoint too (replayed verified records must still match).
        assert_eq!(host.retry(&after_loss.batch(2, cp2)), Ok(cp2));
        // A batch that starts after the last verified record cannot be checked: resend.
        let err = host.retry(&after_loss.batch(cp + 2, cp2)).unwrap_err();
        assert!(
            matches!(err, Reject::PendingFork { expected_seq, .. } if expected_seq == cp + 1),
            "{err:?}"
        );
    }

    #[test]
    fn an_unsigned_or_forged_tail_never_replaces_anything() {
        let mut real = TestJournal::new("h");
        real.execs(2);
        let cp = real.checkpoint();
        let mut other = real.fork();
        real.execs(3);
        let mut host = Host::of(&mut real);
        host.store(&real.batch(1, cp + 3));
        other.execs(2);
        let cp2 = other.checkpoint();
        let mut frames = other.frames();
        let last = frames.len() - 1;
        frames[last] = with_bad_signature(&frames[last]);
        let forged = batch_of(&frames, cp + 1, cp2);
        let err = host.retry(&forged).unwrap_err();
        assert!(
            matches!(err, Reject::Fork { .. }),
            "a bad signature is the fork it is: {err:?}"
        );
        // A differing replay of verified records is a fork whatever follows.
        let mut elsewhere = TestJournal::new("h");
        elsewhere.execs(5);
        let lookup = |s: u64| host.hashes.get(&s).copied();
        let batch = elsewhere.batch(1, 4);
        let fork = check(&host.state, &batch, lookup).unwrap_err();
        assert!(matches!(fork, Reject::Fork { seq: 1, .. }));
    }

    #[test]
    fn pending_records_from_genesis_are_replaced_from_the_enrolled_key() {
        let mut real = TestJournal::new("h");
        let mut other = real.fork();
        real.execs(3);
        let mut host = Host::of(&mut real);
        host.store(&real.batch(1, 4));
        assert_eq!(host.state.verified_through(), 0);
        other.execs(1);
        other.exec(9, "/bin/other");
        let cp = other.checkpoint();
        assert_eq!(host.retry(&other.batch(1, cp)), Ok(cp));
        // Trusted on first use: no known point to verify from, so the fork stands.
        host.state.tofu = true;
        let err = host.retry(&other.batch(1, cp)).unwrap_err();
        assert!(matches!(err, Reject::Fork { .. }), "{err:?}");
    }
}
