//! auditloop's central collector.
//!
//! The collector owns the judgement of what a host shipped: hosts are enrolled with their journal's genesis
//! public key and ship with a token of their own; agents POST batches of journal records
//! ([`auditloop_protocol::batch::Batch`]); the collector verifies each batch against the host's stored chain
//! and enrolled key with the same rules as `auditloop verify`, stores records all or nothing (verified once
//! a checkpoint signed along the host's key chain covers them, pending until then), raises alerts on
//! forgeries, gaps, unexpected restarts, spool overflows and silence, and serves the verified events to the
//! admin. It never stores a record it could not verify, never stores a batch in part, never stores a record
//! twice, and never lets a refused batch change the host it names. It must not know how agents capture, journal or ship events (it sees only the journal's
//! record format, the event model and the protocol crate's contract), and above the store nothing may know
//! which database is behind it. The HTTP contract is documented in `docs/collector.md`.
//!
//! Module map, arrows pointing down (a module uses only those below it):
//!
//! - [`console`]: the web console's pages and forms (server-rendered, behind logins and the CSRF guard).
//!   Uses `http`, `lineage`, `reverify`, `store`, `session`, `auth`.
//! - [`reverify`]: a host's stored chain verified again from the store alone ("verify this host now").
//!   Uses `store`.
//! - [`http`]: the router ([`http::app`]), [`AppState`], token checks, the one [`AppError`], the batch
//!   `POST` and the queries, answering with `auditloop_protocol::api` types. Uses `ingest`, `lineage`,
//!   `tuning`, `groups`, `store`, `auth`, `metrics`.
//! - [`tuning`]: rule tuning across the fleet: a host group's stored events learned into proposed rules,
//!   a rule change replayed over them, per-rule hit statistics. Uses `store`, `groups`.
//! - [`lineage`]: cross-host lineage of a stored event: its process's ancestry, the connections it came in
//!   over, joined to the connects on the hosts that dialled them. Uses `store`.
//! - [`ingest`]: one step from a batch body to the store: decode, verify against the stored chain
//!   ([`ingest::check`], pure), prepare records in parallel, derive their searchable columns, commit or
//!   reject; one batch per host at a time. Uses `store`, `alerts`, `metrics`.
//! - `changes`: waiting for the store's change notices (live feeds), polling without them. Uses `store`.
//! - [`silence`]: the silence watcher, a task of its own. Uses `store`, `alerts`.
//! - [`store`]: the [`Store`] trait and the store's own types, the SQLite backend ([`SqliteStore`], which
//!   maintains its own search index and log checkpoints on threads of its own), the PostgreSQL backend
//!   that replicas share ([`store::PgStore`]) and the conformance suite every backend passes. Uses
//!   `alerts`.
//! - [`retention`]: drops PostgreSQL's day partitions past the days kept, on a thread of its own. Uses
//!   `store`.
//! - [`alerts`]: the alert kinds' meanings and the functions that build alerts. Uses `metrics` (every alert
//!   it logs is counted).
//! - [`metrics`]: the Prometheus metrics' names, labels and recording functions, which ingest, `http` and
//!   `alerts` call; the recorder. A leaf.
//! - [`groups`]: host groups (name to host-name glob patterns) and the hosts a request chooses. A leaf.
//! - [`auth`]: the token roles (admin, approver, viewer, enrollment, host), digests and constant-time
//!   comparison. A leaf.
//! - [`session`]: console session cookies and CSRF tokens (HMAC). Uses `auth`.
//!
//! Wiring: [`server`] serves `http` and `console` through [`listen`] (TLS, connection cap, timeouts), the metrics
//! endpoint ([`scrape`], on a listener of its own; uses `metrics`, `store`) and runs `silence` until
//! shutdown; [`cli`], [`config_file`] and [`settings`] read the command line and the `--config` file and
//! merge them, [`config`] the token files; [`host_tokens`] is the migration command `issue-host-tokens`
//! (uses `store`, `auth`); `main.rs` connects them.
#![deny(missing_docs)]

pub mod alerts;
pub mod auth;
mod changes;
pub mod cli;
pub mod config;
pub mod config_file;
pub mod console;
pub mod groups;
pub mod host_tokens;
pub mod http;
pub mod ingest;
pub mod lineage;
pub mod listen;
pub mod metrics;
pub mod retention;
pub mod reverify;
pub mod scrape;
pub mod server;
pub mod session;
pub mod settings;
pub mod silence;
pub mod store;
pub mod tuning;

#[cfg(test)]
mod testutil;

pub use http::{AppError, AppState, app};
pub use store::{SqliteStore, Store};
