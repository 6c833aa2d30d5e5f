//! A host group's stored events learned into one baseline, and the alert-only rules proposed from it.

use auditloop_learn::{Baseline, Learner, Options, Proposal, propose};
use auditloop_model::WallTime;
use serde::Serialize;

use crate::store::{Store, StoreError};
use crate::tuning::read::{Read, Window, read_events};

/// What a baseline holds, in counts (the baseline itself can hold every program of every host).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BaselineSummary {
    /// Events learned from.
    pub events: u64,
    /// Time of the earliest event learned from.
    pub first: Option<WallTime>,
    /// Time of the latest.
    pub last: Option<WallTime>,
    /// Parent executables that started programs.
    pub parents: usize,
    /// Successful execs with a known parent.
    pub execs: u64,
    /// Successful execs whose parent's executable was unknown (no exec rule judges them).
    pub execs_unknown_parent: u64,
    /// Config paths written.
    pub config_paths: usize,
    /// Programs that connected out.
    pub connecting_programs: usize,
    /// Outbound connections whose program was unknown.
    pub connects_unknown_program: u64,
    /// Programs that listened on an inet port.
    pub listeners: usize,
    /// Programs that listened or accepted: the servers.
    pub servers: usize,
    /// Sensitive paths read.
    pub sensitive_paths: usize,
}

impl BaselineSummary {
    /// The counts of `b`.
    pub fn of(b: &Baseline) -> BaselineSummary {
        BaselineSummary {
            events: b.events,
            first: b.window.map(|(f, _)| f),
            last: b.window.map(|(_, l)| l),
            parents: b.execs.len(),
            execs: b
                .execs
                .values()
                .filter_map(|p| p.programs.seen.map(|s| s.count))
                .sum(),
            execs_unknown_parent: b.execs_unknown_parent,
            config_paths: b.config_writes.len(),
            connecting_programs: b.connects.len(),
            connects_unknown_program: b.connects_unknown_program,
            listeners: b.listen_ports.len(),
            servers: b.servers.len(),
            sensitive_paths: b.reads.len(),
        }
    }
}

/// A learned group: what was read, the baseline in counts, and the proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Learned {
    /// The read.
    pub read: Read,
    /// The baseline, in counts.
    pub baseline: BaselineSummary,
    /// The proposed rules.
    pub proposal: Proposal,
}

/// Learns one baseline from the verified events of `hosts` in `window` (at most `max_events`) and
/// proposes rules from it with `options`.
pub fn learn(
    store: &dyn Store,
    hosts: &[String],
    window: Window,
    max_events: u64,
    options: &Options,
) -> Result<Learned, StoreError> {
    let mut learner = Learner::new(options.clone());
    let read = read_events(store, hosts, window, max_events, |_, event| {
        learner.observe(event);
    })?;
    let baseline = learner.finish();
    Ok(Learned {
        read,
        baseline: BaselineSummary::of(&baseline),
        proposal: propose(&baseline, options),
    })
}
