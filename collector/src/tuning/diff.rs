//! A rule change replayed over stored events: each chosen host's events through the old and the new rule
//! set, with per-host rule state (thresholds and sequences never span hosts).

use auditloop_learn::{DiffReport, Differ};
use auditloop_rules::RuleSet;

use crate::store::{Store, StoreError};
use crate::tuning::read::{Read, Window, read_events};

/// A diff over stored events: what was read and the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diffed {
    /// The read.
    pub read: Read,
    /// Alerts added and removed, per rule (each example names its host).
    pub report: DiffReport,
}

/// Replays the verified events of `hosts` in `window` (at most `max_events`) through `old` and `new`,
/// keeping up to `examples` examples per rule and direction.
pub fn diff(
    store: &dyn Store,
    hosts: &[String],
    window: Window,
    max_events: u64,
    old: &RuleSet,
    new: &RuleSet,
    examples: usize,
) -> Result<Diffed, StoreError> {
    let mut differ = Differ::new(old, new, examples);
    let read = read_events(store, hosts, window, max_events, |host, event| {
        differ.observe(host, event);
    })?;
    Ok(Diffed {
        read,
        report: differ.finish(),
    })
}
