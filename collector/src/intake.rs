//! Receiving one host's batch: load its state, verify the batch, store it or record why not.
//!
//! Batches of one host are taken one at a time ([`HostLocks`]), so two batches can never both be verified
//! against the same state; the store's compare-and-set on the host's next sequence number backs this up.
//! Everything here blocks: run it in `spawn_blocking`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use auditloop_protocol::batch::Batch;
use serde::Serialize;

use crate::alerts;
use crate::ingest::{self, Reject};
use crate::store::{Commit, HostStatus, Rejection, Store, StoreError};

/// The answer to a stored batch (HTTP 200).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// Records stored.
    pub stored: u64,
    /// Records already stored before (replayed).
    pub duplicates: u64,
    /// The sequence number the host's next batch must start at (or before).
    pub next_seq: u64,
}

/// Why a batch was not stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IntakeError {
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
        let mut locks = match self.locks.lock() {
            Ok(locks) => locks,
            Err(poisoned) => poisoned.into_inner(),
        };
        Arc::clone(locks.entry(host.to_owned()).or_default())
    }
}

/// Verifies `batch` for `host` and stores it, or stores the alerts its refusal raises. The caller holds the
/// host's lock.
pub fn receive(
    store: &dyn Store,
    host: &str,
    batch: &Batch,
    now_ns: u64,
) -> Result<Receipt, IntakeError> {
    let state = store.host_state(host)?;
    let known = state.is_some();
    let state = state.unwrap_or_default();
    let next_seq = state.next_seq();
    let stored = if known && batch.first_seq < next_seq {
        let to = batch.last_seq.min(next_seq - 1);
        store
            .stored_hashes(host, batch.first_seq, to)?
            .into_iter()
            .collect::<HashMap<_, _>>()
    } else {
        HashMap::new()
    };
    match ingest::check(&state, batch, |seq| stored.get(&seq).copied()) {
        Ok(verified) => {
            store.commit(&Commit {
                host,
                expected_next_seq: known.then_some(next_seq),
                verified: &verified,
                now_ns,
            })?;
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
            Ok(Receipt {
                stored: verified.records.len() as u64,
                duplicates: verified.duplicates,
                next_seq: verified.next_seq(),
            })
        }
        Err(reject) => {
            let status = match reject {
                Reject::Fork { .. } => Some(HostStatus::Forked),
                Reject::Damaged { .. } => Some(HostStatus::Tampered),
                _ => None,
            };
            let alert: Vec<_> = reject.alert().into_iter().collect();
            store.reject(&Rejection {
                host,
                status,
                alerts: &alert,
                now_ns,
            })?;
            alert.iter().for_each(|a| alerts::log(host, a));
            Err(reject.into())
        }
    }
}
