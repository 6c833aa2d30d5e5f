//! The contract between auditloop's agent and its collector.
//!
//! [`batch`] is what an agent ships: a run of journal records exactly as framed on disk, in one of two
//! encodings. [`api`] is the HTTP API around it: the routes, the answer to a stored batch, the error body
//! every refusal carries, and the typed answers of the query endpoints, with the vocabularies they use
//! ([`api::AlertKind`], [`api::HostStatus`]), the cross-host lineage answer among them ([`api::lineage`]).
//!
//! Both sides build and read these types, so a change here is a protocol change made once. This crate must
//! not know how the collector verifies or stores batches, nor how the agent picks what to send.
#![deny(missing_docs)]

pub mod api;
pub mod batch;
