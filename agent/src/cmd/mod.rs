//! Offline commands on a journal: verify, export, key.

pub mod export;
pub mod key;
pub mod rules;
pub mod rules_fields;
pub mod rules_test;
pub mod verify;
