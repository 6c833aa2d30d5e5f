//! Receiving one host's batch: decode it, load the host's record, verify the batch, then commit it or
//! record why not.
//!
//! Batches of one host are taken one at a time ([`HostLocks`]), so two batches can never both be verified
//! against the same state; the store's compare-and-set on the host's next sequence number backs this up.
//! Everything here blocks: run it in `spawn_blocking`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use auditloop_model::WallTime;
use auditloop_protocol::api::BatchReceipt;
use auditloop_protocol::batch::{Batch, BatchError};

use crate::alerts;
use crate::ingest::reject::Reject;
use crate::ingest::state::HostState;
use crate::ingest::verify::check;
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
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One lock per host, so a host's batches are verified and stored one at a time.
#[derive(Debug, Default)]
pub struct HostLocks {
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl HostLocks {
    /// The lock of `host`.
    pub fn of(&self, host: &str) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(locks.entry(host.to_owned()).or_default())
    }
}

/// Ingest over one store: takes batch bodies as hosts ship them and stores what verifies.
pub struct Ingest {
    store: Arc<dyn Store>,
    locks: HostLocks,
}

impl Ingest {
    /// Ingest into `store`.
    pub fn new(store: Arc<dyn Store>) -> Ingest {
        Ingest {
            store,
            locks: HostLocks::default(),
        }
    }

    /// Decodes `body` (of `content_type`) shipped by `host`, then, holding the host's lock, verifies and
    /// stores it (see [`receive`]). Blocks.
    pub fn receive_body(
        &self,
        host: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<BatchReceipt, IngestError> {
        let batch = Batch::decode(content_type, body)?;
        let lock = self.locks.of(host);
        let _one_at_a_time = lock.lock().unwrap_or_else(PoisonError::into_inner);
        receive(self.store.as_ref(), host, &batch, WallTime::now().0)
    }
}

/// Verifies `batch` for `host` and stores it, or stores the alerts its refusal raises and the status it
/// sets. The caller holds the host's lock.
pub fn receive(
    store: &dyn Store,
    host: &str,
    batch: &Batch,
    now_ns: u64,
) -> Result<BatchReceipt, IngestError> {
    let record = store.host_record(host)?;
    let expected_next_seq = record.map(|r| r.next_seq);
    let state = record
        .as_ref()
        .map(HostState::from_record)
        .unwrap_or_default();
    let stored = match expected_next_seq {
        Some(next_seq) if batch.first_seq < next_seq => {
            let to = batch.last_seq.min(next_seq - 1);
            store
                .stored_hashes(host, batch.first_seq, to)?
                .into_iter()
                .collect::<HashMap<_, _>>()
        }
        _ => HashMap::new(),
    };
    match check(&state, batch, |seq| stored.get(&seq).copied()) {
        Ok(verified) => {
            store.commit(&verified.commit(host, expected_next_seq, now_ns))?;
            for alert in &verified.alerts {
                alerts::log(host, alert);
            }
            tracing::debug!(
                host,
                first = batch.first_seq,
                last = batch.last_seq,
                stored = verified.records.len(),
                duplicates = verified.duplicates,
                "batch stored"
            );
            Ok(BatchReceipt {
                stored: verified.records.len() as u64,
                duplicates: verified.duplicates,
                next_seq: verified.next_seq(),
            })
        }
        Err(reject) => {
            let alert: Vec<_> = reject.alert().into_iter().collect();
            store.reject(&Rejection {
                host,
                status: reject.status(),
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
