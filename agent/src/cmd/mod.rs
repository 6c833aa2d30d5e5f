//! Offline commands on a journal (verify, export, key), rules tools, and the drill of a running agent.

pub mod drill;
pub mod export;
pub mod key;
pub mod rules;
pub mod rules_fields;
pub mod rules_test;
pub mod verify;
