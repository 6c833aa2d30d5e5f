//! Earlier formats of the journal's payloads, frozen, with their conversion into today's model.

pub mod v1;
pub mod v2;
pub mod v3;
pub mod v4;
