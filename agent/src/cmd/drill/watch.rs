//! Drilling one rule while watching the journal: setup, stimulus, waiting for the rule's alert (and the
//! records of its kills and rollbacks), checking what the actions did, cleanup. An alert counts only when
//! its triggering event came from this rule's stimulus child or one of the child's children.
//!
//! An action's record is not taken on trust: a rollback counts when the drill's stand-in file holds
//! exactly the bytes the drill wrote before the change, a kill of the process that did the triggering
//! operation when its marker (written after a grace period) never appears. With `alerts.webhook`, the
//! alert counts as delivered when the agent's status file records its triggering seq as delivered
//! ([`crate::cmd::drill::delivery`]).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use auditloop_model::{ActionKind, ActionTaken, Alert, EventBody, LossStage, WallTime};
use sha2::{Digest, Sha256};

use crate::actions::overlay::OverlayRequest;
use crate::cmd::drill::child;
use crate::cmd::drill::delivery::StatusFile;
use crate::cmd::drill::follow::Follower;
use crate::cmd::drill::ops::Context;
use crate::cmd::drill::perform;
use crate::cmd::drill::perform::MARKER_GRACE_SECS;
use crate::cmd::drill::plan::Stimulus;
use crate::cmd::drill::report::Outcome;
use crate::cmd::drill::stage::Stage;
use crate::holdctl::{self, ControlReply, ControlRequest};
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
    /// Webhook deliveries the agent counted as dropped since the drill started.
    webhook_dropped: u64,
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
            webhook_dropped: 0,
        }
    }

    /// Webhook deliveries the agent journaled as dropped (`loss`, stage `webhook`) since the drill started.
    pub fn webhook_dropped(&self) -> u64 {
        self.webhook_dropped
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
            if let EventBody::Loss(loss) = &event.event
                && loss.stage == LossStage::Webhook
            {
                self.webhook_dropped += loss.count;
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

/// How the drill reaches the running agent besides its journal.
#[derive(Debug)]
pub struct AgentLink {
    /// The agent's control socket (drill overlays).
    pub socket: PathBuf,
    /// The agent's status file, when `alerts.webhook` is configured: each alert's delivery is checked there.
    pub webhook: Option<StatusFile>,
}

/// Asks the agent on `socket` to stage the overlay of `stage` for a little longer than the drill waits.
fn stage_overlay(socket: &Path, stage: &Stage, timeout: Duration) -> Result<u64, String> {
    let request = ControlRequest::DrillStage(OverlayRequest {
        file: PathBuf::from(&stage.file),
        rules: stage.overlay.clone(),
        ttl_secs: timeout.as_secs() + OVERLAY_SLACK_SECS,
    });
    match holdctl::call(socket, &request) {
        Ok(ControlReply::DrillStaged(staged)) if staged.rules.contains(&stage.rule) => {
            Ok(staged.id)
        }
        Ok(ControlReply::DrillStaged(staged)) => Err(format!(
            "the agent staged rules {} but not {}",
            staged.rules.join(", "),
            stage.rule
        )),
        Ok(ControlReply::Error(why)) => Err(format!("the agent refused the drill overlay: {why}")),
        Ok(other) => Err(format!(
            "unexpected answer to the overlay request: {other:?}"
        )),
        Err(e) => Err(format!(
            "staging the drill overlay: {}",
            crate::ship::error_chain(&e)
        )),
    }
}

/// Removes overlay `id`; why it failed, if it did.
fn remove_overlay(socket: &Path, id: u64) -> Option<String> {
    match holdctl::call(socket, &ControlRequest::DrillRemove { id }) {
        Ok(ControlReply::DrillRemoved) => None,
        Ok(ControlReply::Error(why)) => Some(format!("removing the drill overlay: {why}")),
        Ok(other) => Some(format!(
            "removing the drill overlay: unexpected answer {other:?}"
        )),
        Err(e) => Some(format!(
            "removing the drill overlay: {} (the agent drops it when its time to live passes)",
            crate::ship::error_chain(&e)
        )),
    }
}

/// Seconds an overlay outlives the drill's wait (the drill removes it itself when done).
const OVERLAY_SLACK_SECS: u64 = 30;

/// Drills one rule: setup (and the overlay of a staged rule), stimulus, watching (until the alert, its
/// actions and, with a webhook, its delivery's outcome; or the timeout, or `interrupted()`), checking the
/// actions' effects, cleanup. Returns the outcome and what the cleanup left behind.
pub fn drill(
    rule: &Rule,
    stimulus: &Stimulus,
    ctx: &Context,
    watch: &mut Watch,
    timeout: Duration,
    interrupted: fn() -> bool,
    agent: &mut AgentLink,
) -> anyhow::Result<(Outcome, Vec<PathBuf>)> {
    let socket = agent.socket.as_path();
    let prepared = match perform::prepare(stimulus, ctx) {
        Ok(p) => p,
        Err(why) => return Ok((Outcome::Error(why), Vec::new())),
    };
    if let Err(why) = prepared.set_up() {
        let left = prepared.clean_up();
        return Ok((Outcome::Error(why), left));
    }
    let overlay = match &stimulus.stage {
        Some(stage) => match stage_overlay(socket, stage, timeout) {
            Ok(id) => Some(id),
            Err(why) => {
                let left = prepared.clean_up();
                return Ok((Outcome::Error(why), left));
            }
        },
        None => None,
    };
    let alert_rule = stimulus
        .stage
        .as_ref()
        .map_or(rule.name(), |s| s.rule.as_str());
    let started = WallTime::now();
    let began = Instant::now();
    let deadline = began + timeout;
    let mut worker = match child::spawn(&prepared.stimulus) {
        Ok(worker) => worker,
        Err(e) => {
            let mut left = Vec::new();
            if let Some(id) = overlay {
                let _ = remove_overlay(socket, id);
            }
            left.extend(prepared.clean_up());
            return Ok((Outcome::Error(format!("fork: {e}")), left));
        }
    };
    let pid = worker.pid();
    watch.drill_pids.insert(pid);
    let expected: Vec<Action> = rule
        .actions()
        .iter()
        .copied()
        .filter(|a| matches!(a, Action::Kill | Action::KillGroup | Action::Rollback))
        .collect();
    let mut fired = None;
    loop {
        watch.pump()?;
        if let Some((time, alert)) = watch.alert(alert_rule, pid) {
            let taken: Vec<&ActionTaken> = watch
                .actions
                .iter()
                .filter(|a| a.rule == alert_rule && a.trigger_seq == alert.trigger_seq)
                .collect();
            fired = Some((*time, alert.trigger_seq));
            let settled = agent
                .webhook
                .as_mut()
                .is_none_or(|status| status.outcome(alert.trigger_seq).is_some());
            if settled
                && expected
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
    // A stimulus that writes a marker gets its grace period (and a little more) to be killed first.
    if fired.is_some() && prepared.marker.is_some() {
        worker.wait_for(Duration::from_secs(u64::from(MARKER_GRACE_SECS) + 2));
    }
    let waited = began.elapsed();
    let webhook = match (fired, agent.webhook.as_mut()) {
        (Some((_, seq)), Some(status)) => Some(status.verdict(seq, waited)),
        _ => None,
    };
    let ended = worker.ended();
    let (_, failure) = worker.finish();
    let effects = fired.map(|(_, seq)| {
        let taken: Vec<ActionTaken> = watch
            .actions
            .iter()
            .filter(|a| a.rule == alert_rule && a.trigger_seq == seq)
            .cloned()
            .collect();
        check_effects(&expected, &taken, stimulus.stage.as_ref(), &prepared, ended)
    });
    let removal = overlay.and_then(|id| remove_overlay(socket, id));
    let left = prepared.clean_up();
    let outcome = match (fired, effects) {
        (Some((time, trigger_seq)), Some((verified, mut problems))) => {
            let taken: Vec<&ActionTaken> = watch
                .actions
                .iter()
                .filter(|a| a.rule == alert_rule && a.trigger_seq == trigger_seq)
                .collect();
            let mut missing: Vec<String> = expected
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
            missing.extend(
                taken
                    .iter()
                    .filter(|t| !t.ok)
                    .map(|t| format!("{} failed: {}", t.action, t.detail)),
            );
            missing.append(&mut problems);
            missing.extend(webhook.as_ref().and_then(|w| w.problem()));
            missing.extend(removal);
            Outcome::Fired {
                latency_ms: time.0.saturating_sub(started.0) / 1_000_000,
                actions: taken.iter().filter(|t| t.ok).map(|t| summary(t)).collect(),
                verified,
                webhook: webhook.as_ref().map(|w| w.word()),
                problems: missing,
            }
        }
        _ => match failure {
            Some(f) => Outcome::Error(prepared.failure_text(f)),
            None => Outcome::NoAlert { hint: None },
        },
    };
    Ok((outcome, left))
}

/// What the journaled actions did, checked on the host: (verified, problems).
fn check_effects(
    expected: &[Action],
    taken: &[ActionTaken],
    stage: Option<&Stage>,
    prepared: &perform::Prepared,
    ended: Option<child::Ended>,
) -> (Vec<String>, Vec<String>) {
    let mut verified = Vec::new();
    let mut problems = Vec::new();
    let rolled_back = taken
        .iter()
        .any(|t| t.action == ActionKind::Rollback && t.ok);
    if let (true, Some(stage)) = (rolled_back, stage) {
        let known_sha = hex::encode(Sha256::digest(&stage.known));
        match std::fs::read(&stage.file) {
            Ok(bytes) if bytes == stage.known => verified.push(format!(
                "restored bytes verified: {} holds the {} bytes written before the change (sha256 {known_sha})",
                stage.file,
                bytes.len()
            )),
            Ok(bytes) => problems.push(format!(
                "rollback journaled as done, but {} holds other bytes ({} bytes, sha256 {}) than the {}                  bytes written before the change (sha256 {known_sha})",
                stage.file,
                bytes.len(),
                hex::encode(Sha256::digest(&bytes)),
                stage.known.len()
            )),
            Err(e) => problems.push(format!(
                "rollback journaled as done, but {} cannot be read: {e}",
                stage.file
            )),
        }
    }
    let killed = taken.iter().any(|t| {
        t.ok && matches!(
            t.action,
            ActionKind::Kill | ActionKind::KillGroup | ActionKind::KernelKill
        )
    });
    let kills = expected
        .iter()
        .any(|a| matches!(a, Action::Kill | Action::KillGroup));
    if let (true, true, Some(marker)) = (kills, killed, &prepared.marker) {
        if marker.symlink_metadata().is_ok() {
            problems.push(format!(
                "the stimulus outlived the kill: it wrote its marker {} after {MARKER_GRACE_SECS} s",
                marker.display()
            ));
        } else {
            let how = match ended {
                Some(child::Ended::Signaled(sig)) => format!(" (it died by signal {sig})"),
                _ => String::new(),
            };
            verified.push(format!(
                "killed before its marker was written{how}: {} never appeared",
                marker.display()
            ));
        }
    }
    if let Some(listener) = &prepared.listener {
        let reached = listener.set_nonblocking(true).is_ok() && listener.accept().is_ok();
        if reached {
            verified.push("the connection reached the drill's listener on 127.0.0.1".into());
        }
    }
    (verified, problems)
}

/// Whether a journaled action carries out `expected`.
fn satisfies(taken: &ActionTaken, expected: Action) -> bool {
    expected.taken() == Some(taken.action)
        || (expected.kills() && taken.action == ActionKind::KernelKill)
}

/// A successful action in the report.
fn summary(taken: &ActionTaken) -> String {
    match taken.action {
        ActionKind::Kill => "killed".into(),
        ActionKind::KernelKill => "killed in kernel".into(),
        ActionKind::KillGroup => "group killed".into(),
        ActionKind::Rollback => "rolled back".into(),
        ActionKind::Deny => taken.action.as_str().to_owned(),
    }
}
