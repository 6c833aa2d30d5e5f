//! The learning stage of the loop: what normally happens on a host, and what a rule change would do.
//!
//! - [`Learner`] reads events (a journal window, or a fleet's stored events) into a [`Baseline`]: the
//!   programs each parent starts and as whom, the writers of each config path, the outbound destinations
//!   of server programs, the ports each program listens on, and the readers of each sensitive file.
//! - [`propose`] turns a baseline into alert-only rules that flag departures from it, each with its support
//!   counts and first/last seen as comments and its values in lists the user can edit. The proposal is
//!   built so that replaying the window it was learned from raises nothing ([`Proposal::verify`]).
//! - [`Differ`] replays events through an old and a new rule set and reports, per rule, the alerts that
//!   appear and disappear ([`DiffReport`]), so a change can be gated before it ships.

mod baseline;
mod diff;
mod propose;
mod yaml;

#[cfg(test)]
mod tests;

pub use baseline::{Baseline, Keyed, Learner, Options, ParentExecs, Seen};
pub use diff::{DiffReport, Differ, Example, RuleDiff, RuleStatus};
pub use propose::{Proposal, ProposedRule, Skipped, propose};
