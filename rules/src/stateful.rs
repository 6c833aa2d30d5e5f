//! Stateful rules: `threshold` (N matching events per key within a sliding window) and `sequence` (steps
//! matched in order per correlation key within a time limit), and the per-rule memory they keep in a
//! [`RuleState`].
//!
//! The clock is the event's `mono_ns` (never wall time). Memory is bounded: per rule at most
//! [`MAX_KEYS`] keys (the least recently touched key is evicted first); per threshold key at most `count`
//! timestamps; per sequence key one step index and one timestamp. This module only decides what fires; it
//! never acts on the host.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write;

use auditloop_model::Event;

use crate::eval::{Cond, FieldSel};
use crate::fields::Value;
use crate::{Rule, RuleKind};

/// The most keys (distinct `by` values) one stateful rule tracks; the least recently touched key is
/// evicted to make room for a new one.
pub const MAX_KEYS: usize = 10_000;

/// The largest `count` a threshold accepts (a threshold key keeps at most `count` timestamps).
pub(crate) const MAX_COUNT: u64 = 10_000;

/// Separates the values of a multi-field key (a control character no field value is expected to hold).
const KEY_SEPARATOR: char = '\u{1f}';

/// The compiled stateful part of a rule.
#[derive(Clone, Debug)]
pub(crate) enum Stateful {
    Threshold(Threshold),
    Sequence(Sequence),
}

/// Fires when `count` events of one key fall within `window_ns`.
#[derive(Clone, Debug)]
pub(crate) struct Threshold {
    pub count: usize,
    pub window_ns: u64,
    pub by: Vec<FieldSel>,
}

/// Fires when the steps match in order, per key, within `within_ns` of the first step.
#[derive(Clone, Debug)]
pub(crate) struct Sequence {
    pub within_ns: u64,
    /// The rule's own `condition`, when given: every step's event must also satisfy it.
    pub guard: Option<Cond>,
    pub steps: Vec<Step>,
}

/// One step of a sequence.
#[derive(Clone, Debug)]
pub(crate) struct Step {
    pub cond: Cond,
    pub by: Vec<FieldSel>,
}

/// The key of `ev` for `by`: the fields' values joined; `None` when one is absent (the event does not
/// count). No fields: the one global key.
fn key_of(by: &[FieldSel], ev: &Event) -> Option<String> {
    let mut key = String::new();
    for (i, sel) in by.iter().enumerate() {
        if i > 0 {
            key.push(KEY_SEPARATOR);
        }
        // Writing to a String cannot fail.
        let _ = match sel.get(ev)? {
            Value::Str(s) => write!(key, "{s}"),
            Value::Num(n) => write!(key, "{n}"),
            Value::Bool(b) => write!(key, "{b}"),
        };
    }
    Some(key)
}

/// Values per key, at most `max` keys; the least recently touched key is evicted first.
#[derive(Clone, Debug)]
struct KeyTable<V> {
    entries: HashMap<String, (u64, V)>,
    /// Touch tick → key, oldest first.
    order: BTreeMap<u64, String>,
    tick: u64,
    max: usize,
}

impl<V> KeyTable<V> {
    fn new(max: usize) -> KeyTable<V> {
        KeyTable {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            max: max.max(1),
        }
    }

    /// The value of `key`, marked as the most recently touched.
    fn touch(&mut self, key: &str) -> Option<&mut V> {
        self.tick += 1;
        let (tick, value) = self.entries.get_mut(key)?;
        if let Some(k) = self.order.remove(tick) {
            self.order.insert(self.tick, k);
        }
        *tick = self.tick;
        Some(value)
    }

    /// The value of `key` (touched), inserting `new()` (evicting the oldest keys if full) when missing.
    fn entry(&mut self, key: String, new: impl FnOnce() -> V) -> &mut V {
        self.tick += 1;
        let tick = self.tick;
        match self.entries.get(&key).map(|e| e.0) {
            Some(old) => {
                self.order.remove(&old);
            }
            None => {
                while self.entries.len() >= self.max {
                    let Some((_, oldest)) = self.order.pop_first() else {
                        break;
                    };
                    self.entries.remove(&oldest);
                }
            }
        }
        self.order.insert(tick, key.clone());
        let slot = self.entries.entry(key).or_insert_with(|| (tick, new()));
        slot.0 = tick;
        &mut slot.1
    }

    fn remove(&mut self, key: &str) {
        if let Some((tick, _)) = self.entries.remove(key) {
            self.order.remove(&tick);
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A sequence key's progress: the next step to match and when step 1 matched.
#[derive(Clone, Copy, Debug)]
struct Progress {
    next: usize,
    first_ns: u64,
}

impl Threshold {
    /// Counts `ev` (whose condition holds); true when it brings its key's window to `count`.
    fn advance(&self, table: &mut KeyTable<VecDeque<u64>>, ev: &Event) -> bool {
        let Some(key) = key_of(&self.by, ev) else {
            return false;
        };
        let now = ev.mono_ns;
        let times = table.entry(key.clone(), VecDeque::new);
        while times
            .front()
            .is_some_and(|&t| now.saturating_sub(t) > self.window_ns)
        {
            times.pop_front();
        }
        times.push_back(now);
        if times.len() < self.count {
            return false;
        }
        table.remove(&key);
        true
    }
}

impl Sequence {
    /// Advances every key `ev` moves on; true when it completes the last step for some key.
    fn advance(&self, table: &mut KeyTable<Progress>, ev: &Event) -> bool {
        if self.guard.as_ref().is_some_and(|g| !g.eval(ev)) {
            return false;
        }
        let now = ev.mono_ns;
        let last = self.steps.len().saturating_sub(1);
        let (mut advanced, mut fired) = (Vec::new(), false);
        // Later steps first, so one event moves a key on by one step at most.
        for (i, step) in self.steps.iter().enumerate().skip(1).rev() {
            if !step.cond.eval(ev) {
                continue;
            }
            let Some(key) = key_of(&step.by, ev).filter(|k| !advanced.contains(k)) else {
                continue;
            };
            let Some(p) = table.touch(&key) else {
                continue;
            };
            if now.saturating_sub(p.first_ns) > self.within_ns {
                table.remove(&key);
            } else if p.next == i && i == last {
                table.remove(&key);
                fired = true;
                advanced.push(key);
            } else if p.next == i {
                p.next += 1;
                advanced.push(key);
            }
        }
        if let Some(first) = self.steps.first()
            && first.cond.eval(ev)
            && let Some(key) = key_of(&first.by, ev).filter(|k| !advanced.contains(k))
        {
            let within = self.within_ns;
            let p = table.entry(key, || Progress {
                next: 1,
                first_ns: now,
            });
            // A fresh start replaces one that has only matched step 1 or has run out of time.
            if p.next <= 1 || now.saturating_sub(p.first_ns) > within {
                *p = Progress {
                    next: 1,
                    first_ns: now,
                };
            }
        }
        fired
    }
}

/// One rule's memory.
#[derive(Clone, Debug)]
enum Slot {
    Stateless,
    Threshold(KeyTable<VecDeque<u64>>),
    Sequence(KeyTable<Progress>),
}

/// The memory of a rule set's threshold and sequence rules (from [`RuleSet::new_state`]).
///
/// A state belongs to the rule set that made it: after a reload, make a new one (in-flight counts and
/// partial sequences are dropped). Given a state of another set, [`RuleSet::fire`] starts it afresh.
///
/// [`RuleSet::new_state`]: crate::RuleSet::new_state
/// [`RuleSet::fire`]: crate::RuleSet::fire
#[derive(Clone, Debug)]
pub struct RuleState {
    slots: Vec<Slot>,
    max_keys: usize,
}

impl RuleState {
    /// A fresh state for `rules`, tracking at most `max_keys` keys per rule.
    pub(crate) fn new(rules: &[Rule], max_keys: usize) -> RuleState {
        let slots = rules
            .iter()
            .map(|r| match r.kind() {
                RuleKind::Stateless => Slot::Stateless,
                RuleKind::Threshold => Slot::Threshold(KeyTable::new(max_keys)),
                RuleKind::Sequence => Slot::Sequence(KeyTable::new(max_keys)),
            })
            .collect();
        RuleState { slots, max_keys }
    }

    /// Whether this state has the shape of `rules`' state.
    pub(crate) fn fits(&self, rules: &[Rule]) -> bool {
        self.slots.len() == rules.len()
            && self.slots.iter().zip(rules).all(|(s, r)| {
                matches!(
                    (s, r.kind()),
                    (Slot::Stateless, RuleKind::Stateless)
                        | (Slot::Threshold(_), RuleKind::Threshold)
                        | (Slot::Sequence(_), RuleKind::Sequence)
                )
            })
    }

    /// The most keys tracked per rule.
    pub(crate) fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// How many keys rule `index` tracks now.
    pub fn tracked_keys(&self, index: usize) -> usize {
        match self.slots.get(index) {
            Some(Slot::Threshold(t)) => t.len(),
            Some(Slot::Sequence(t)) => t.len(),
            _ => 0,
        }
    }

    /// Whether `rule` (number `index` of its set, condition not yet tested) fires for `ev`; updates its
    /// memory.
    pub(crate) fn fire(&mut self, index: usize, rule: &Rule, ev: &Event) -> bool {
        match (&rule.stateful, self.slots.get_mut(index)) {
            (None, _) => rule.cond.eval(ev),
            (Some(Stateful::Threshold(t)), Some(Slot::Threshold(table))) => {
                rule.cond.eval(ev) && t.advance(table, ev)
            }
            (Some(Stateful::Sequence(s)), Some(Slot::Sequence(table))) => s.advance(table, ev),
            _ => false,
        }
    }
}
