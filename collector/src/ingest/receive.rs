//! Receiving one host's batch: decode it, load the host's record, verify the batch, then commit it or
//! record why not; and refusing a batch sent with another identity's token.
//!
//! Batches of one host are taken one at a time ([`HostLocks`]), so two batches can never both be verified
//! against the same state; the store's compare-and-set on the host's next sequence number and enrolled key
//! backs this up. A refusal stores only its alert: the host's state, status and last contact stay as they
//! were, so a forged batch cannot harm the host it names. Everything here blocks: run it in
//! `spawn_blocking`.

use std::collections::HashMap;

use auditloop_model::WallTime;
use auditloop_protocol::api::BatchReceipt;
use auditloop_protocol::batch::{Batch, BatchError};

use crate::alerts::{self, Offender, Refused};
use crate::ingest::locks::HostLocks;
use crate::ingest::reject::Reject;
use crate::ingest::rewind::replace_pending;
use crate::ingest::state::HostState;
use crate::ingest::verify::check;
use crate::metrics::{self, Refusal, StoredBatch};
use crate::store::{Rejection, Store, StoreError};

/// Why a batch was not stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The body is not a batch (HTTP 400).
    #[error(transparent)]
    Decode(#[from] BatchError),
    /// The batch was refused.
    #[error(transparent)]
    Rejected(#[from] Reject),
    /// The host is not enrolled (HTTP 403; its token was checked, so only a host removed meanwhile).
    #[error("host {0} is not enrolled")]
    NotEnrolled(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who sent a batch: the host whose own token it carried (the host in the path), and the peer address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sender<'a> {
    /// The host.
    pub host: &'a str,
    /// The peer address (`ip:port`, or `unknown`).
    pub peer: &'a str,
}

/// Ingest over one store: takes batch bodies as hosts ship them and stores what verifies.
pub struct Ingest {
    store: std::sync::Arc<dyn Store>,
    locks: HostLocks,
}

impl Ingest {
    /// Ingest into `store`.
    pub fn new(store: std::sync::Arc<dyn Store>) -> Ingest {
        Ingest {
            store,
            locks: HostLocks::default(),
        }
    }

    /// Decodes `body` (of `content_type`) shipped by `sender`, then, holding the host's lock, verifies and
    /// stores it (see [`receive`]); counts a refusal or failure in the metrics. Blocks.
    pub fn receive_body(
        &self,
        sender: &Sender<'_>,
        content_type: &str,
        body: &[u8],
    ) -> Result<BatchReceipt, IngestError> {
        let result = Batch::decode(content_type, body)
            .map_err(IngestError::from)
            .and_then(|batch| {
                let lock = self.locks.of(sender.host);
                let _one_at_a_time = lock.hold();
                receive(self.store.as_ref(), sender, &batch, WallTime::now().0)
            });
        match &result {
            Ok(_) => {}
            Err(IngestError::Decode(_)) => metrics::host_refused(sender.host, Refusal::Malformed),
            Err(IngestError::Rejected(reject)) => {
                metrics::host_refused(sender.host, reject.refusal());
            }
            Err(IngestError::NotEnrolled(_)) => metrics::refused(Refusal::NotEnrolled),
            Err(IngestError::Store(_)) => metrics::failed(),
        }
        result
    }

    /// Refuses a batch for `host` sent with another identity's token (`offender`): raises a `forgery`
    /// alert for `host` if it is enrolled (a host id that is not enrolled has no chain at stake, and its
    /// alerts would only let token holders add rows at will: that is only logged). Returns whether an
    /// alert was stored. Blocks.
    pub fn refuse_foreign(&self, host: &str, offender: &Offender<'_>) -> Result<bool, StoreError> {
        let error = format!(
            "a {} token ({}) was used to ship batches for host {host}",
            offender.role, offender.token
        );
        if self.store.host_record(host)?.is_none() {
            tracing::warn!(
                host,
                token = offender.token,
                role = offender.role,
                peer = offender.peer,
                "refused a batch for a host that is not enrolled: {error}"
            );
            return Ok(false);
        }
        let alert = alerts::forgery(offender, Refused::ForeignToken, None, &error);
        self.store.reject(&Rejection {
            host,
            alerts: std::slice::from_ref(&alert),
            now_ns: WallTime::now().0,
        })?;
        alerts::log(host, &alert);
        Ok(true)
    }

    /// The per-host locks (for tests of their bound).
    #[cfg(test)]
    pub(crate) fn locks(&self) -> &HostLocks {
        &self.locks
    }
}

/// Verifies `batch` of `sender`'s host and stores it, or stores the alert its refusal raises. The caller
/// holds the host's lock.
pub fn receive(
    store: &dyn Store,
    sender: &Sender<'_>,
    batch: &Batch,
    now_ns: u64,
) -> Result<BatchReceipt, IngestError> {
    let host = sender.host;
    let Some(record) = store.host_record(host)? else {
        return Err(IngestError::NotEnrolled(host.to_owned()));
    };
    let state = HostState::from_record(&record);
    let stored = if record.started() && batch.first_seq < record.next_seq {
        let to = batch.last_seq.min(record.next_seq - 1);
        store
            .stored_hashes(host, batch.first_seq, to)?
            .into_iter()
            .collect::<HashMap<_, _>>()
    } else {
        HashMap::new()
    };
    let lookup = |seq: u64| stored.get(&seq).copied();
    let verdict = match check(&state, batch, lookup) {
        Err(fork @ Reject::Fork { seq, .. }) if seq > state.verified_through() => {
            replace_pending(&state, batch, lookup, fork, seq)
        }
        other => other,
    };
    let offender = Offender {
        token: host,
        role: "host",
        peer: sender.peer,
    };
    match verdict {
        Ok(mut verified) => {
            if let Some(from) = verified.replace_from {
                let dropped = record.next_seq - from;
                let error = format!(
                    "{dropped} pending records from seq {from} differed from records the host signed and \
                     were replaced (a host that lost its unsynced records, or unsigned records shipped \
                     with its token)"
                );
                verified.alerts.push(alerts::forgery(
                    &offender,
                    Refused::PendingFork,
                    Some(from),
                    &error,
                ));
            }
            store.commit(&verified.commit(host, record.next_seq, now_ns))?;
            metrics::stored(
                host,
                StoredBatch {
                    records: verified.records.len() as u64,
                    newest_event_ns: verified
                        .records
                        .iter()
                        .filter(|r| r.kind.is_event())
                        .filter_map(|r| r.columns.time_ns)
                        .max(),
                },
            );
            for alert in &verified.alerts {
                alerts::log(host, alert);
            }
            tracing::debug!(
                host,
                first = batch.first_seq,
                last = batch.last_seq,
                stored = verified.records.len(),
                duplicates = verified.duplicates,
                verified_through = verified.verified_through(),
                "batch stored"
            );
            Ok(BatchReceipt {
                stored: verified.records.len() as u64,
                duplicates: verified.duplicates,
                // Never past the batch: an agent takes only acks within what it sent (a replay of records
                // far behind the host's head is acked up to its own end, and the agent goes on from there).
                next_seq: verified.next_seq().min(batch.last_seq.saturating_add(1)),
                verified_through: verified.verified_through(),
                pending: verified.pending(),
            })
        }
        Err(reject) => {
            let alert: Vec<_> = reject.alert(&offender).into_iter().collect();
            store.reject(&Rejection {
                host,
                alerts: &alert,
                now_ns,
            })?;
            alert.iter().for_each(|a| alerts::log(host, a));
            Err(reject.into())
        }
    }
}

#[cfg(test)]
mod tests;
