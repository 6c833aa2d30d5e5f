//! Drilling one rule while watching the journal: setup, stimulus, waiting for the rule's alert (and the
//! actions of its kills), cleanup. An alert counts only when its triggering event came from this rule's
//! stimulus child or one of the child's children.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use auditloop_model::{ActionKind, ActionTaken, Alert, EventBody, WallTime};

use crate::cmd::drill::child;
use crate::cmd::drill::follow::Follower;
use crate::cmd::drill::ops::Context;
use crate::cmd::drill::perform;
use crate::cmd::drill::plan::Stimulus;
use crate::cmd::drill::report::Outcome;
use auditloop_rules::{Action, Rule};

/// How often the journal is polled.
const POLL: Duration = Duration::from_millis(20);

/// The journal as seen since the drill started, reduced to what concerns the drill's processes.
pub struct Watch {
    follower: Follower,
    /// Every stimulus child started so far (their children are recognized by `ppid`).
    drill_pids: HashSet<u32>,
    /// Events of the drill's processes: seq → pid.
    ours: HashMap<u64, u32>,
    /// Alerts triggered by them, with the alert's time.
    alerts: Vec<(WallTime, Alert)>,
    /// Actions taken on them.
    actions: Vec<ActionTaken>,
    /// The agent journaled `agent_stop`.
    agent_stopped: bool,
}

impl Watch {
    /// Watches from where `follower` stands.
    pub fn new(follower: Follower) -> Watch {
        Watch {
            follower,
            drill_pids: HashSet::new(),
            ours: HashMap::new(),
            alerts: Vec::new(),
            actions: Vec::new(),
            agent_stopped: false,
        }
    }

    /// Whether the agent journaled `agent_stop` since the drill started.
    pub fn agent_stopped(&self) -> bool {
        self.agent_stopped
    }

    fn pump(&mut self) -> anyhow::Result<()> {
        for event in self.follower.poll()? {
            // The agent's own records about the drill; every other event may be one of the drill's.
            if let EventBody::Alert(alert) = &event.event {
                if self.ours.contains_key(&alert.trigger_seq) {
                    self.alerts.push((event.time, alert.clone()));
                }
                continue;
            }
            if let EventBody::Action(action) = &event.event {
                if self.ours.contains_key(&action.trigger_seq) {
                    self.actions.push(action.clone());
                }
                continue;
            }
            if let EventBody::AgentStop(_) = &event.event {
                self.agent_stopped = true;
                continue;
            }
            let p = &event.process;
            let child = if self.drill_pids.contains(&p.pid) {
                Some(p.pid)
            } else {
                self.drill_pids.get(&p.ppid).copied()
            };
            if let Some(child) = child {
                self.ours.insert(event.seq, child);
            }
        }
        Ok(())
    }

    /// The first alert of `rule` triggered by `child` (or a child of it).
    fn alert(&self, rule: &str, child: u32) -> Option<&(WallTime, Alert)> {
        self.alerts
            .iter()
            .find(|(_, a)| a.rule == rule && self.ours.get(&a.trigger_seq) == Some(&child))
    }
}

/// Drills one rule: setup, stimulus, watching (until the alert and its actions, the timeout, or
/// `interrupted()`), cleanup. Returns the outcome and what the cleanup left behind.
pub fn drill(
    rule: &Rule,
    stimulus: &Stimulus,
    ctx: &Context,
    watch: &mut Watch,
    timeout: Duration,
    interrupted: fn() -> bool,
) -> anyhow::Result<(Outcome, Vec<PathBuf>)> {
    let prepared = match perform::prepare(stimulus, ctx) {
        Ok(p) => p,
        Err(why) => return Ok((Outcome::Error(why), Vec::new())),
    };
    if let Err(why) = prepared.set_up() {
        let left = prepared.clean_up();
        return Ok((Outcome::Error(why), left));
    }
    let started = WallTime::now();
    let deadline = Instant::now() + timeout;
    let worker = match child::spawn(&prepared.stimulus) {
        Ok(worker) => worker,
        Err(e) => {
            let left = prepared.clean_up();
            return Ok((Outcome::Error(format!("fork: {e}")), left));
        }
    };
    let pid = worker.pid();
    watch.drill_pids.insert(pid);
    let expected: Vec<Action> = rule
        .actions()
        .iter()
        .copied()
        .filter(|a| matches!(a, Action::Kill | Action::KillGroup))
        .collect();
    let mut fired = None;
    loop {
        watch.pump()?;
        if let Some((time, alert)) = watch.alert(rule.name(), pid) {
            let taken: Vec<&ActionTaken> = watch
                .actions
                .iter()
                .filter(|a| a.rule == rule.name() && a.trigger_seq == alert.trigger_seq)
                .collect();
            fired = Some((*time, alert.trigger_seq));
            if expected
                .iter()
                .all(|e| taken.iter().any(|t| satisfies(t, *e)))
            {
                break;
            }
        }
        if Instant::now() >= deadline || interrupted() || watch.agent_stopped {
            break;
        }
        std::thread::sleep(POLL);
    }
    let (_, failure) = worker.finish();
    let left = prepared.clean_up();
    let outcome = match fired {
        Some((time, trigger_seq)) => {
            let taken: Vec<&ActionTaken> = watch
                .actions
                .iter()
                .filter(|a| a.rule == rule.name() && a.trigger_seq == trigger_seq)
                .collect();
            let mut problems: Vec<String> = expected
                .iter()
                .filter(|e| !taken.iter().any(|t| satisfies(t, **e)))
                .map(|e| {
                    format!(
                        "{}: no action record within {} s",
                        e.as_str(),
                        timeout.as_secs()
                    )
                })
                .collect();
            problems.extend(
                taken
                    .iter()
                    .filter(|t| !t.ok)
                    .map(|t| format!("{} failed: {}", t.action, t.detail)),
            );
            Outcome::Fired {
                latency_ms: time.0.saturating_sub(started.0) / 1_000_000,
                actions: taken.iter().filter(|t| t.ok).map(|t| summary(t)).collect(),
                problems,
            }
        }
        None => match failure {
            Some(f) => Outcome::Error(prepared.failure_text(f)),
            None => Outcome::NoAlert { hint: None },
        },
    };
    Ok((outcome, left))
}

/// Whether a journaled action carries out `expected`.
fn satisfies(taken: &ActionTaken, expected: Action) -> bool {
    expected.taken() == Some(taken.action) || taken.action == ActionKind::KernelKill
}

/// A successful action in the report.
fn summary(taken: &ActionTaken) -> String {
    match taken.action {
        ActionKind::Kill => "killed".into(),
        ActionKind::KernelKill => "killed in kernel".into(),
        ActionKind::KillGroup => "group killed".into(),
        ActionKind::Rollback | ActionKind::Deny => taken.action.as_str().to_owned(),
    }
}
