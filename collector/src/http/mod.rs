//! The HTTP API: the router, who may call what, batch ingest and the queries, and the one error type.
//!
//! This layer only translates: it checks tokens (`access.rs`, host tokens looked up in the store), enrolls
//! hosts (`enroll.rs`), hands batch bodies to [`ingest`](crate::ingest) (`batches.rs`, at most
//! `--max-concurrent-batches` at once: `limit.rs`), turns query parameters into store queries and the
//! store's rows into the protocol's answers (`queries.rs`, `views.rs`), asks [`lineage`](crate::lineage)
//! for an event's lineage (`lineage.rs`), runs fleet-wide learns, rules diffs and rule statistics on
//! [`tuning`](crate::tuning) (`rules.rs`), and answers every failure as
//! `auditloop_protocol::api::ErrorBody` (`error.rs`), never with a stored value. It never verifies records
//! and never reaches into a store's internals. The contract is documented in `docs/collector.md`.

mod access;
mod batches;
pub(crate) mod blocking;
mod csrf;
mod enroll;
mod error;
mod fleet;
mod limit;
mod lineage;
mod queries;
mod router;
pub(crate) mod rules;
mod state;
#[cfg(test)]
pub(crate) mod testutil;
pub(crate) mod views;

pub use access::{AdminAccess, EnrollAccess, HostAccess, Person, ViewAccess};
pub use csrf::csrf_guard;
pub use enroll::MAX_ENROLL_BODY;
pub use error::AppError;
pub use fleet::decide_hold;
pub use limit::{BatchLimit, default_max_concurrent_batches};
pub use queries::{DEFAULT_LIMIT, MAX_LIMIT, parse_time};
pub use router::app;
pub use state::{AppState, DEFAULT_MAX_BODY_BYTES};
