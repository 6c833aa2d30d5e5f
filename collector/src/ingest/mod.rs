//! Ingest: taking a host's batch from its body to the store, or refusing it whole.
//!
//! One step, in order: decode the body ([`Ingest::receive_body`]), load the host's record from the store
//! and turn it into the verifier's [`HostState`] (`state.rs`), verify the batch against it ([`check`],
//! pure and fuzzed: `verify.rs`, with the per-record hash checks and event decoding done in parallel by
//! `prepare.rs` and `decode.rs`, and each record's searchable columns derived by `columns.rs`), then commit
//! what verified or store why not ([`receive`], one batch per host at a time: `receive.rs`).
//!
//! Ingest never stores a record it could not verify, never stores a batch in part, and never stores a
//! record twice. It knows the store only through [`Store`](crate::store::Store), and nothing of HTTP.

pub mod columns;
mod decode;
mod prepare;
mod receive;
mod reject;
mod state;
mod verify;

pub use receive::{HostLocks, Ingest, IngestError, receive};
pub use reject::Reject;
pub use state::HostState;
pub use verify::{MAX_SEQ, Verified, check};
