//! Ingest: taking a host's batch from its body to the store, or refusing it whole.
//!
//! One step, in order: decode the body ([`Ingest::receive_body`]), load the host's record from the store
//! and turn it into the verifier's [`HostState`] (`state.rs`), verify the batch against it ([`check`],
//! pure and fuzzed: `verify.rs`; a first batch must start from the host's enrolled key, `trust.rs`; the
//! per-record hash checks and event decoding are done in parallel by `prepare.rs` and `decode.rs`, and each
//! record's searchable columns derived by the store's `columns`; a replay that differs only from pending records is
//! verified again from the last checkpoint, `rewind.rs`), then commit what verified or store the alert of
//! its refusal ([`receive`], one batch per host at a time: `receive.rs`, `locks.rs`).
//!
//! Ingest never stores a record it could not verify, never stores a batch in part, never stores a record
//! twice, and never lets a refused batch change the host it names. It knows the store only through
//! [`Store`](crate::store::Store), and nothing of HTTP.

mod decode;
mod locks;
mod prepare;
mod receive;
mod reject;
mod rewind;
mod state;
mod trust;
mod verify;

pub use locks::{HostLock, HostLocks};
pub use receive::{Ingest, IngestError, Sender, receive};
pub use reject::Reject;
pub use rewind::replace_pending;
pub use state::{AtCheckpoint, HostState};
pub use trust::first_chain;
pub use verify::{MAX_SEQ, Verified, check};
