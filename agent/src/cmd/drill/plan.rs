//! Deriving a harmless stimulus from a rule, without touching the host: [`derive`] is a pure function.
//!
//! Candidates come from the rule's words ([`RuleWords`]); each is turned into the events the agent would
//! journal for it (the `sim` module) and kept only when the compiled rule set really fires the rule on
//! them ([`RuleSet::fire`] with a fresh state). So macros, lists, `not`, thresholds and sequences are judged by
//! the same evaluator the agent runs. The first candidate that fires wins, trying in this order: exec of a
//! program copy, exec from a memfd, a read-only open, creating (and unlinking) a file of the drill's own.
//!
//! A candidate is only ever *safe*: programs are placed under `/tmp`, `/var/tmp`, `/dev/shm` or inside a
//! fresh directory named with the drill's nonce; files are only created with a nonce name; existing
//! files are at most opened read-only; a connection goes only to the drill's own listener on 127.0.0.1; a
//! signal to the agent is signal 0. A rule on `config_change` events (a rollback rule) is planned by the
//! `stage` module instead: a stand-in file of the drill's own is watched through a drill overlay. Deny
//! rules are reported as not drillable, with the reason.

use crate::cmd::drill::candidates::{candidates, reason, reason_words};
use crate::cmd::drill::ops::{Context, MAX_REPEAT, Op};
use crate::cmd::drill::sim::Sim;
use crate::cmd::drill::stage::{self, Stage};
use crate::cmd::drill::words::RuleWords;
use auditloop_rules::{Action, Rule, RuleKind, RuleSet};

/// Candidates tried per sequence step, of each kind of operation.
const STEP_CANDIDATES: usize = 2;
/// The most steps of a sequence rule the drill searches.
const MAX_STEPS: usize = 5;

/// What the drill will do for one rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stimulus {
    /// The child's operations, in order (a threshold's repetitions unrolled).
    pub ops: Vec<Op>,
    /// The child stays alive afterwards (the rule kills): program copies are of `/bin/sleep`.
    pub linger: bool,
    /// A short description for the report.
    pub label: String,
    /// The stand-in file and overlay of a staged drill (a rule on `config_change` events).
    pub stage: Option<Stage>,
}

/// The stimulus for `rule` (one of `set`'s rules), or why there is none. Pure: reads nothing from the host.
pub fn derive(
    set: &RuleSet,
    rule: &Rule,
    words: Option<&RuleWords>,
    ctx: &Context,
) -> Result<Stimulus, String> {
    if !rule.enabled() {
        return Err("rule is disabled".into());
    }
    if rule.actions().contains(&Action::Deny) {
        return Err("deny action: it needs BPF LSM, which this kernel refuses".into());
    }
    let words = words.ok_or("the rule's source was not found")?;
    if let Some(staged) = stage::derive(rule, words, ctx) {
        return staged.map(|(op, label, stage)| Stimulus {
            ops: vec![op],
            linger: false,
            label,
            stage: Some(stage),
        });
    }
    let linger = rule
        .actions()
        .iter()
        .any(|a| matches!(a, Action::Kill | Action::KillGroup));
    let mut search = Search {
        set,
        rule,
        ctx,
        linger,
        unsafe_hit: None,
    };
    let found = match rule.kind() {
        RuleKind::Stateless => search.single(&words.condition),
        RuleKind::Threshold => search.threshold(&words.condition),
        RuleKind::Sequence => search.sequence(words),
    };
    found.ok_or_else(|| reason(words, search.unsafe_hit))
}

struct Search<'a> {
    set: &'a RuleSet,
    rule: &'a Rule,
    ctx: &'a Context,
    linger: bool,
    /// Why the first candidate that matched but is unsafe was refused.
    unsafe_hit: Option<String>,
}

impl Search<'_> {
    /// The safe candidates from `words` whose events the rule's condition holds for.
    fn matching(&mut self, words: &[String]) -> Vec<Op> {
        let mut out = Vec::new();
        for (op, refusal) in candidates(words, self.ctx) {
            let mut sim = Sim::new(self.ctx, self.linger);
            if !sim.events(&op).iter().any(|e| self.rule.matches(e)) {
                continue;
            }
            match refusal {
                Some(why) => {
                    self.unsafe_hit.get_or_insert(why);
                }
                None => out.push(op),
            }
        }
        out
    }

    /// Whether the rule fires on the events of `ops`, played in order on a fresh state.
    fn fires(&self, ops: &[Op]) -> bool {
        let mut sim = Sim::new(self.ctx, self.linger);
        let mut state = self.set.new_state();
        ops.iter().flat_map(|op| sim.events(op)).any(|event| {
            self.set
                .fire(&mut state, &event)
                .iter()
                .any(|r| r.name() == self.rule.name())
        })
    }

    fn single(&mut self, words: &[String]) -> Option<Stimulus> {
        let op = self
            .matching(words)
            .into_iter()
            .find(|op| self.fires(std::slice::from_ref(op)))?;
        Some(self.stimulus(vec![op.clone()], op.label()))
    }

    /// Repeats one candidate until the rule fires: the count is found by playing the events.
    fn threshold(&mut self, words: &[String]) -> Option<Stimulus> {
        for op in self.matching(words) {
            // Every repetition of an exec is its own process.
            let op = op.with_fork(true);
            let mut sim = Sim::new(self.ctx, self.linger);
            let mut state = self.set.new_state();
            for n in 1..=MAX_REPEAT {
                let fired = sim.events(&op).iter().any(|event| {
                    self.set
                        .fire(&mut state, event)
                        .iter()
                        .any(|r| r.name() == self.rule.name())
                });
                if fired {
                    let label = format!("{} ×{n}", op.label());
                    return Some(self.stimulus(vec![op; n as usize], label));
                }
            }
            self.unsafe_hit.get_or_insert(format!(
                "threshold not reached within {MAX_REPEAT} repetitions of `{}`",
                op.label()
            ));
        }
        None
    }

    /// Tries combinations of per-step candidates, with the last exec in the child itself or in a
    /// grandchild (which decides the `proc.pid`/`proc.ppid` keys the steps see).
    fn sequence(&mut self, words: &RuleWords) -> Option<Stimulus> {
        if words.steps.len() < 2 || words.steps.len() > MAX_STEPS {
            self.unsafe_hit.get_or_insert(format!(
                "sequence of {} steps: the drill searches 2 to {MAX_STEPS}",
                words.steps.len()
            ));
            return None;
        }
        let mut per_step = Vec::new();
        for (i, step) in words.steps.iter().enumerate() {
            let mut all: Vec<String> = step.clone();
            all.extend(words.condition.iter().cloned());
            // A sequence rule matches an event of any step, so keep a few of every kind of operation.
            let mut found = Vec::new();
            for op in self.matching(&all) {
                let same = found
                    .iter()
                    .filter(|f| std::mem::discriminant(*f) == std::mem::discriminant(&op))
                    .count();
                if same < STEP_CANDIDATES {
                    found.push(op);
                }
            }
            if found.is_empty() {
                self.unsafe_hit
                    .get_or_insert(format!("step {}: {}", i + 1, reason_words(&all)));
                return None;
            }
            per_step.push(found);
        }
        let mut pick = vec![0usize; per_step.len()];
        loop {
            let chosen: Vec<&Op> = pick
                .iter()
                .zip(&per_step)
                .filter_map(|(&i, c)| c.get(i))
                .collect();
            for in_place_last in [true, false] {
                let last = chosen.len().saturating_sub(1);
                let ops: Vec<Op> = chosen
                    .iter()
                    .enumerate()
                    .map(|(i, op)| op.with_fork(!(in_place_last && i == last)))
                    .collect();
                if self.fires(&ops) {
                    let label = ops.iter().map(Op::label).collect::<Vec<_>>().join(" → ");
                    return Some(self.stimulus(ops, label));
                }
            }
            // Next combination (odometer).
            let mut digit = 0;
            loop {
                let (Some(p), Some(c)) = (pick.get_mut(digit), per_step.get(digit)) else {
                    self.unsafe_hit.get_or_insert(
                        "no combination of the steps' stimuli completes the sequence".into(),
                    );
                    return None;
                };
                *p += 1;
                if *p < c.len() {
                    break;
                }
                *p = 0;
                digit += 1;
            }
        }
    }

    fn stimulus(&self, ops: Vec<Op>, label: String) -> Stimulus {
        Stimulus {
            ops,
            linger: self.linger,
            label,
            stage: None,
        }
    }
}
