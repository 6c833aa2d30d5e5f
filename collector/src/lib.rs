//! auditloop's central collector.
//!
//! Agents POST batches of journal records ([`auditloop_protocol::batch::Batch`]); the collector verifies each
//! batch against the host's stored chain state with the same rules as `auditloop verify` ([`ingest`]),
//! stores verified records all or nothing ([`store`]), raises alerts on forks, gaps, tampering, unexpected
//! restarts, spool overflows and silence ([`alerts`]), and serves the stored events to the admin
//! ([`query`]). The HTTP contract is documented in `docs/collector.md`; [`api::app`] is the router.
//!
//! The collector never stores a record it could not verify, never stores a batch in part, and never
//! stores a record twice.
#![deny(missing_docs)]

pub mod alerts;
pub mod api;
pub mod auth;
pub mod cli;
pub mod columns;
pub mod config;
pub mod error;
pub mod ingest;
pub mod intake;
pub mod prepare;
pub mod query;
pub mod server;
pub mod store;

#[cfg(test)]
mod testutil;

pub use api::{AppState, app};
pub use error::AppError;
pub use store::{SqliteStore, Store};
