//! Integration tests: the real agent on the real kernel, as root. One module per area.
#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test, which is the point"
)]

mod cli;
mod drill;
mod exec;
mod files;
mod filters;
mod journal;
mod net;
mod process;
mod rules;
mod ship;
mod storm;
mod watch;
