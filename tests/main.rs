//! Integration tests: the real agent on the real kernel, as root. One module per area.
#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test, which is the point"
)]

mod ack;
mod alive;
mod ancestry;
mod cli;
mod cluster;
mod collector_limits;
mod collector_metrics;
mod console;
mod drill;
mod evasion;
mod exec;
mod failover;
mod files;
mod filters;
mod forgery;
mod holds;
mod hygiene;
mod journal;
mod learn;
mod learn_fleet;
mod lineage;
mod login;
mod net;
mod output;
mod package;
mod process;
mod protect;
mod redact;
mod rollback;
mod rules;
mod ship;
mod silence;
mod status;
mod storm;
mod tls;
mod uring;
mod verify_trust;
mod watch;
