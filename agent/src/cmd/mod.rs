//! Offline commands on a journal (verify, export, key), rules tools, enrollment with a collector, and the
//! drill of a running agent.

pub mod drill;
pub mod enroll;
pub mod export;
pub mod holds;
pub mod key;
pub mod learn;
pub mod rules;
pub mod rules_diff;
pub mod rules_fields;
pub mod rules_test;
pub mod status;
pub mod verify;
