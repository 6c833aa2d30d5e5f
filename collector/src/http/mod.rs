//! The HTTP API: the router, who may call what, batch ingest and the queries, and the one error type.
//!
//! This layer only translates: it checks tokens (`access.rs`), hands batch bodies to
//! [`ingest`](crate::ingest) (`batches.rs`, at most `--max-concurrent-batches` at once: `limit.rs`), turns query parameters into store queries and the store's rows
//! into the protocol's answers (`queries.rs`, `views.rs`), and answers every failure as
//! `auditloop_protocol::api::ErrorBody` (`error.rs`). It never verifies records and never reaches into a
//! store's internals. The contract is documented in `docs/collector.md`.

mod access;
mod batches;
mod error;
mod limit;
mod queries;
mod router;
mod state;
#[cfg(test)]
mod testutil;
mod views;

pub use access::{AdminAccess, HostAccess};
pub use error::{AppError, damage_name};
pub use limit::{BatchLimit, default_max_concurrent_batches};
pub use queries::{DEFAULT_LIMIT, MAX_LIMIT, parse_time};
pub use router::app;
pub use state::{AppState, DEFAULT_MAX_BODY_BYTES};
