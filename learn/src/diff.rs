//! Replaying events through an old and a new rule set at once: per rule, the alerts the change adds and
//! the alerts it removes, with counts and a few examples. An alert is a rule name and the event it fired
//! on (the host and journal sequence number), so a rule that keeps its name but changes its condition
//! shows exactly the events it gains and loses.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;

use auditloop_model::{Event, WallTime};
use auditloop_rules::{RuleSet, RuleState};
use serde::Serialize;

/// Where a rule stands between the two sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleStatus {
    /// Only the new set has it.
    Added,
    /// Only the old set has it.
    Removed,
    /// Both have it.
    Kept,
}

/// One alert, as an example.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Example {
    /// The host whose event it fired on (empty for a local journal).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// The event's sequence number.
    pub seq: u64,
    /// The event's time.
    pub time: WallTime,
    /// The rule's rendered output.
    pub output: String,
}

/// One rule's change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleDiff {
    /// The rule.
    pub rule: String,
    /// Whether it is new, gone or in both sets.
    pub status: RuleStatus,
    /// Alerts only the new set raises.
    pub added: u64,
    /// Alerts only the old set raised.
    pub removed: u64,
    /// Alerts both raise.
    pub unchanged: u64,
    /// The first few added alerts.
    pub added_examples: Vec<Example>,
    /// The first few removed alerts.
    pub removed_examples: Vec<Example>,
}

/// What a rule change does to the alerts of the replayed events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiffReport {
    /// Events replayed.
    pub events: u64,
    /// Alerts only the new set raises, over all rules.
    pub added: u64,
    /// Alerts only the old set raised.
    pub removed: u64,
    /// Alerts both raise.
    pub unchanged: u64,
    /// Rules whose alerts changed or that were added or removed, most added alerts first.
    pub rules: Vec<RuleDiff>,
}

impl DiffReport {
    /// The report as text: a line per rule (`+added -removed rule`), its examples indented.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} events replayed: {} alerts added, {} removed, {} unchanged",
            self.events, self.added, self.removed, self.unchanged
        );
        for r in &self.rules {
            let status = match r.status {
                RuleStatus::Added => " (new rule)",
                RuleStatus::Removed => " (rule removed)",
                RuleStatus::Kept => "",
            };
            let _ = writeln!(
                out,
                "{:>8} {:>8}  {}{status}  ({} unchanged)",
                format!("+{}", r.added),
                format!("-{}", r.removed),
                r.rule,
                r.unchanged
            );
            for (sign, examples) in [("+", &r.added_examples), ("-", &r.removed_examples)] {
                for e in examples {
                    let host = if e.host.is_empty() {
                        String::new()
                    } else {
                        format!(" host={}", e.host)
                    };
                    let _ = writeln!(
                        out,
                        "      {sign} {}{host} seq={} {}",
                        e.time, e.seq, e.output
                    );
                }
            }
        }
        out
    }
}

#[derive(Default)]
struct Tally {
    added: u64,
    removed: u64,
    unchanged: u64,
    added_examples: Vec<Example>,
    removed_examples: Vec<Example>,
}

/// Replays events through two rule sets and tallies the difference.
pub struct Differ<'a> {
    old: &'a RuleSet,
    new: &'a RuleSet,
    examples: usize,
    /// Each host's rule state in both sets (thresholds and sequences are per host).
    states: HashMap<String, (RuleState, RuleState)>,
    tallies: BTreeMap<String, Tally>,
    events: u64,
}

impl<'a> Differ<'a> {
    /// A differ keeping up to `examples` examples per rule and direction.
    pub fn new(old: &'a RuleSet, new: &'a RuleSet, examples: usize) -> Differ<'a> {
        Differ {
            old,
            new,
            examples,
            states: HashMap::new(),
            tallies: BTreeMap::new(),
            events: 0,
        }
    }

    /// Replays one event of `host` (empty for a local journal) through both sets.
    pub fn observe(&mut self, host: &str, event: &Event) {
        self.events += 1;
        if !self.states.contains_key(host) {
            let fresh = (self.old.new_state(), self.new.new_state());
            self.states.insert(host.to_owned(), fresh);
        }
        let Some((old_state, new_state)) = self.states.get_mut(host) else {
            return;
        };
        let old_fired: BTreeMap<&str, &auditloop_rules::Rule> = self
            .old
            .fire(old_state, event)
            .into_iter()
            .map(|r| (r.name(), r))
            .collect();
        let new_fired: BTreeMap<&str, &auditloop_rules::Rule> = self
            .new
            .fire(new_state, event)
            .into_iter()
            .map(|r| (r.name(), r))
            .collect();
        let names: BTreeSet<&str> = old_fired.keys().chain(new_fired.keys()).copied().collect();
        for name in names {
            let tally = self.tallies.entry(name.to_owned()).or_default();
            let example = |rule: &auditloop_rules::Rule| Example {
                host: host.to_owned(),
                seq: event.seq,
                time: event.time,
                output: rule.render_output(event),
            };
            match (old_fired.get(name), new_fired.get(name)) {
                (Some(_), Some(_)) => tally.unchanged += 1,
                (None, Some(rule)) => {
                    tally.added += 1;
                    if tally.added_examples.len() < self.examples {
                        tally.added_examples.push(example(rule));
                    }
                }
                (Some(rule), None) => {
                    tally.removed += 1;
                    if tally.removed_examples.len() < self.examples {
                        tally.removed_examples.push(example(rule));
                    }
                }
                (None, None) => {}
            }
        }
    }

    /// The report.
    pub fn finish(self) -> DiffReport {
        let old: BTreeSet<&str> = self.old.rules().iter().map(|r| r.name()).collect();
        let new: BTreeSet<&str> = self.new.rules().iter().map(|r| r.name()).collect();
        let mut tallies = self.tallies;
        for name in old.symmetric_difference(&new) {
            tallies.entry((*name).to_owned()).or_default();
        }
        let totals = tallies.values().fold((0, 0, 0), |(a, r, u), t| {
            (a + t.added, r + t.removed, u + t.unchanged)
        });
        let mut rules: Vec<RuleDiff> = tallies
            .into_iter()
            .filter_map(|(rule, t)| {
                let status = match (old.contains(rule.as_str()), new.contains(rule.as_str())) {
                    (false, true) => RuleStatus::Added,
                    (true, false) => RuleStatus::Removed,
                    _ => RuleStatus::Kept,
                };
                if status == RuleStatus::Kept && t.added == 0 && t.removed == 0 {
                    return None;
                }
                Some(RuleDiff {
                    rule,
                    status,
                    added: t.added,
                    removed: t.removed,
                    unchanged: t.unchanged,
                    added_examples: t.added_examples,
                    removed_examples: t.removed_examples,
                })
            })
            .collect();
        rules.sort_by(|a, b| {
            b.added
                .cmp(&a.added)
                .then(b.removed.cmp(&a.removed))
                .then(a.rule.cmp(&b.rule))
        });
        DiffReport {
            events: self.events,
            added: totals.0,
            removed: totals.1,
            unchanged: totals.2,
            rules,
        }
    }
}
