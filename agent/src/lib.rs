//! auditloop's host agent: capture (kernel programs and ring buffer) → output today; journal, rules,
//! actions and shipping are the next stages of the loop.
//!
//! The `auditloop` binary (`main.rs`) only parses the command line and calls [`run::run`].
#![deny(missing_docs)]

pub mod actions;
pub mod bounded;
pub mod capture;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod enforce;
pub mod errtext;
pub mod export;
pub mod fanotify;
pub mod holdctl;
pub mod hygiene;
pub mod identity;
pub mod journal;
pub mod loss;
pub mod metrics;
pub mod output;
pub mod procfs;
pub mod protect;
pub mod run;
pub mod ship;
pub mod status;
pub mod stdout;
pub mod telemetry;
pub mod watch;
