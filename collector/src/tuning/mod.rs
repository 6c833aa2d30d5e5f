//! Rule tuning across the fleet: a host group's stored events learned into a baseline that proposes
//! alert-only rules (`learn.rs`), a rule change replayed over the group's stored events (`diff.rs`), both
//! reading the store a host at a time within a window and an event budget (`read.rs`), and the per-rule hit
//! statistics of the stored rule alerts (`stats.rs`).
//!
//! The work is [`auditloop_learn`]'s, run over the store instead of a journal: the same [`Learner`]
//! and [`Differ`], so a proposal or a diff made here judges events exactly as the agent's
//! `auditloop learn` and `auditloop rules diff` would over the same records. Everything here blocks (it
//! reads the store page by page) and is bounded by the event budget its caller gives; it never writes to
//! the store and knows nothing of HTTP.
//!
//! [`Learner`]: auditloop_learn::Learner
//! [`Differ`]: auditloop_learn::Differ

mod diff;
mod learn;
mod read;
mod stats;

pub use diff::{Diffed, diff};
pub use learn::{BaselineSummary, Learned, learn};
pub use read::{Read, Window};
pub use stats::{HostHits, RuleHits, RuleStats, statistics};

#[cfg(test)]
mod tests;
