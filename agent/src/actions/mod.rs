//! Action stage: the rules are evaluated on every journaled event (after the journal, never before), and
//! what a matching rule asks for is carried out: an alert, a kill (pidfd, no pid-reuse race), a rollback of
//! a watched config file from the content store. Every alert and every action becomes an event of its own,
//! journaled and linked to the triggering event's sequence number. Kills of exec-time rules happen in the
//! kernel (`kernel_kill`), before the program runs; this stage only reports them. Holds ([`hold`]) stop a
//! process until a decision: in the kernel at exec (this stage then registers the hold) or here through a
//! pidfd; they are journaled as `hold` events.

pub mod deliveries;
pub mod hold;
pub mod kill;
pub mod overlay;
#[cfg(test)]
mod overlay_tests;
pub mod rollback;
pub mod webhook;

use std::path::Path;

use auditloop_model::{ActionKind, ActionTaken, Alert, Event, EventBody, HoldDecision, HoldState};

use crate::watch::ContentStore;
use auditloop_rules::{Action, HoldSpec, RuleSet, RuleState};

use hold::{DecideError, HoldBook, HoldInfo};

/// Rules plus what actions need.
pub struct ActionStage {
    rules: RuleSet,
    state: RuleState,
    kernel_rule_names: Vec<String>,
    store: Option<ContentStore>,
    webhook: Option<webhook::Webhook>,
    holds: HoldBook,
    overlays: overlay::Overlays,
    /// A hold was requested since [`ActionStage::take_hold_requested`] was last called.
    hold_requested: bool,
}

impl ActionStage {
    /// A stage for `rules`; `kernel_rule_names[i]` names the rule compiled into kernel exec rule `i`.
    /// `content_root` is the config-watch content store (for rollback).
    pub fn new(rules: RuleSet, kernel_rule_names: Vec<String>, content_root: &Path) -> ActionStage {
        let store = match ContentStore::open(content_root) {
            Ok(store) => Some(store),
            Err(err) => {
                tracing::error!("rollback disabled: {err}");
                None
            }
        };
        ActionStage {
            state: rules.new_state(),
            rules,
            kernel_rule_names,
            store,
            webhook: None,
            holds: HoldBook::new(),
            overlays: overlay::Overlays::default(),
            hold_requested: false,
        }
    }

    /// Watches the files of drill overlays through `paths` (shared with capture).
    pub fn with_staged_paths(mut self, paths: crate::watch::StagedPaths) -> ActionStage {
        self.overlays = overlay::Overlays::new(paths);
        self
    }

    /// Stages a drill overlay; what to tell the client and the record to journal.
    pub fn stage_overlay(
        &mut self,
        request: &overlay::OverlayRequest,
    ) -> Result<(overlay::OverlayStaged, EventBody), overlay::OverlayError> {
        self.overlays
            .stage(request, self.store.as_mut(), std::time::Instant::now())
    }

    /// Removes drill overlay `id`; the record to journal.
    pub fn remove_overlay(&mut self, id: u64) -> Result<EventBody, overlay::OverlayError> {
        self.overlays.remove(id)
    }

    /// Removes the drill overlays whose time is up; the records to journal.
    pub fn expire_overlays(&mut self) -> Vec<EventBody> {
        if self.overlays.is_empty() {
            return Vec::new();
        }
        self.overlays.expire(std::time::Instant::now())
    }

    /// Also POSTs every alert to `hook`.
    pub fn with_webhook(mut self, hook: webhook::Webhook) -> ActionStage {
        self.webhook = Some(hook);
        self
    }

    /// Swaps in a new rule set (hot reload).
    pub fn replace(&mut self, rules: RuleSet, kernel_rule_names: Vec<String>) {
        // Threshold and sequence progress belongs to the old rules; the new set starts afresh.
        self.state = rules.new_state();
        self.rules = rules;
        self.kernel_rule_names = kernel_rule_names;
    }

    /// The rules in force.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Evaluates the rules on a journaled event and carries out their actions; returns the alert and action
    /// events to journal next.
    pub fn on_event(&mut self, event: &Event) -> Vec<EventBody> {
        let mut out = Vec::new();
        if matches!(
            event.event,
            EventBody::Alert(_) | EventBody::Action(_) | EventBody::Hold(_)
        ) {
            return out;
        }
        let kernel_held = if let EventBody::Exec(exec) = &event.event {
            exec.held_by_rule
                .and_then(|i| self.kernel_rule_names.get(i as usize).cloned())
        } else {
            None
        };
        if let Some(rule) = &kernel_held {
            let spec = self.hold_spec(rule);
            out.push(self.request_hold(rule, spec, event, true));
        }
        let kernel_killed = if let EventBody::Exec(exec) = &event.event {
            exec.killed_by_rule
                .and_then(|i| self.kernel_rule_names.get(i as usize).cloned())
        } else {
            None
        };
        if let Some(rule) = &kernel_killed {
            out.push(EventBody::Action(ActionTaken {
                action: ActionKind::KernelKill,
                rule: rule.clone(),
                trigger_seq: event.seq,
                target_pid: Some(event.process.pid),
                ok: true,
                detail: "SIGKILL sent in sys_enter_execve; the program never ran".into(),
                ..ActionTaken::default()
            }));
        }
        let guarded = if let EventBody::Exec(exec) = &event.event {
            exec.stopped_by_rule.clone()
        } else {
            None
        };
        if let Some(rule) = &guarded {
            let killed = self
                .rules
                .rules()
                .iter()
                .any(|r| r.name() == rule && r.actions().iter().any(|a| a.kills()));
            out.push(EventBody::Action(ActionTaken {
                action: if killed {
                    ActionKind::Kill
                } else {
                    ActionKind::Deny
                },
                rule: rule.clone(),
                trigger_seq: event.seq,
                target_pid: Some(event.process.pid),
                path: exec_path(event),
                ok: true,
                detail: guard_detail(event, killed),
                ..ActionTaken::default()
            }));
        }
        for rule in self.rules.fire(&mut self.state, event) {
            out.push(alert(self.webhook.as_ref(), rule, event));
            for &action in rule.actions() {
                if action == Action::Hold {
                    if kernel_held.as_deref() != Some(rule.name()) {
                        let spec = rule.hold().unwrap_or_default();
                        let name = rule.name().to_owned();
                        out.push(hold_request(
                            &mut self.holds,
                            &mut self.hold_requested,
                            &name,
                            spec,
                            event,
                            false,
                        ));
                    }
                    continue;
                }
                let Some(kind) = action.taken() else {
                    continue;
                };
                let taken = match kind {
                    ActionKind::Kill | ActionKind::KillGroup | ActionKind::Deny
                        if guarded.as_deref() == Some(rule.name()) =>
                    {
                        continue;
                    }
                    ActionKind::Kill | ActionKind::KillGroup
                        if kernel_killed.as_deref() == Some(rule.name()) =>
                    {
                        continue;
                    }
                    ActionKind::Kill | ActionKind::KillGroup => {
                        kill_action(event, kind == ActionKind::KillGroup)
                    }
                    ActionKind::Rollback => rollback_action(self.store.as_mut(), event),
                    ActionKind::Deny => deny_action(event, rule.name()),
                    // Only the kernel carries this out, at exec; it is reported above.
                    ActionKind::KernelKill => continue,
                };
                out.push(EventBody::Action(ActionTaken {
                    rule: rule.name().to_owned(),
                    trigger_seq: event.seq,
                    ..taken
                }));
            }
        }
        self.overlay_rules(event, &mut out);
        out
    }

    /// Drill overlays' rules on `event`: their alerts, and their rollbacks (the only action they have).
    fn overlay_rules(&mut self, event: &Event, out: &mut Vec<EventBody>) {
        for staged in self.overlays.iter_mut() {
            for rule in staged.rules.fire(&mut staged.state, event) {
                out.push(alert(self.webhook.as_ref(), rule, event));
                if rule.actions().contains(&Action::Rollback) {
                    let taken = rollback_action(self.store.as_mut(), event);
                    out.push(EventBody::Action(ActionTaken {
                        rule: rule.name().to_owned(),
                        trigger_seq: event.seq,
                        ..taken
                    }));
                }
            }
        }
    }
}

impl ActionStage {
    /// The hold settings of `rule` (the defaults when the rule is gone after a reload).
    fn hold_spec(&self, rule: &str) -> HoldSpec {
        self.rules
            .rules()
            .iter()
            .find(|r| r.name() == rule)
            .and_then(|r| r.hold())
            .unwrap_or_default()
    }

    fn request_hold(
        &mut self,
        rule: &str,
        spec: HoldSpec,
        event: &Event,
        by_kernel: bool,
    ) -> EventBody {
        hold_request(
            &mut self.holds,
            &mut self.hold_requested,
            rule,
            spec,
            event,
            by_kernel,
        )
    }

    /// Applies a decision to the waiting hold `id`; returns the outcome to journal.
    pub fn decide_hold(
        &mut self,
        id: u64,
        decision: HoldDecision,
        by: &str,
        comment: &str,
    ) -> Result<auditloop_model::Hold, DecideError> {
        let done = self.holds.decide(id, decision, by, comment)?;
        log_outcome(&done);
        Ok(done)
    }

    /// Applies the defaults of holds whose time is up, closes those whose process is gone; the outcomes
    /// to journal.
    pub fn expire_holds(&mut self) -> Vec<EventBody> {
        self.holds
            .expire(std::time::Instant::now())
            .into_iter()
            .inspect(log_outcome)
            .map(EventBody::Hold)
            .collect()
    }

    /// Applies every waiting hold's default (the agent stops).
    pub fn shutdown_holds(&mut self) -> Vec<EventBody> {
        self.holds
            .shutdown()
            .into_iter()
            .inspect(log_outcome)
            .map(EventBody::Hold)
            .collect()
    }

    /// The waiting holds.
    pub fn list_holds(&self) -> Vec<HoldInfo> {
        self.holds.list(std::time::Instant::now())
    }

    /// The ids of the waiting holds.
    pub fn hold_ids(&self) -> Vec<u64> {
        self.holds.ids()
    }

    /// Whether a hold was requested since the last call (then the shipper is asked to flush).
    pub fn take_hold_requested(&mut self) -> bool {
        std::mem::take(&mut self.hold_requested)
    }
}

/// Places a hold and logs it.
fn hold_request(
    holds: &mut HoldBook,
    requested: &mut bool,
    rule: &str,
    spec: HoldSpec,
    event: &Event,
    by_kernel: bool,
) -> EventBody {
    let held = holds.request(rule, spec, event, by_kernel);
    *requested = true;
    if held.state == HoldState::Requested {
        tracing::warn!(
            id = held.id,
            rule,
            pid = held.target_pid,
            exe = %held.exe,
            timeout_ms = held.timeout_ms,
            default = %held.default,
            "process held: decide with `auditloop holds approve|deny {}`",
            held.id
        );
    } else {
        tracing::warn!(id = held.id, rule, pid = held.target_pid, state = %held.state, "hold not placed: {}", held.detail);
    }
    EventBody::Hold(held)
}

fn log_outcome(done: &auditloop_model::Hold) {
    tracing::info!(
        id = done.id,
        rule = %done.rule,
        pid = done.target_pid,
        state = %done.state,
        decided_by = %done.decided_by,
        latency_us = done.latency_us,
        "hold decided: {}",
        done.detail
    );
}

/// What refused a guarded exec, in words.
fn guard_detail(event: &Event, killed: bool) -> String {
    let lsm = matches!(&event.event, EventBody::Exec(e) if e.stopped_by == "lsm");
    match (lsm, killed) {
        (true, true) => "exec refused in the kernel by BPF LSM (bprm_check_security, EPERM) and the \
                         task killed before the program ran",
        (true, false) => {
            "exec refused in the kernel by BPF LSM (bprm_check_security, EPERM) before the program ran"
        }
        (false, true) => {
            "exec refused by the exec guard (EPERM) and the task killed before the program ran"
        }
        (false, false) => "exec refused by the exec guard (EPERM) before the program ran",
    }
    .into()
}

/// `deny` on an event that no exec refusal covered: a file operation the LSM refused is reported; on a
/// kernel without BPF LSM a file operation falls back to a kill (it has happened); anything else cannot
/// be refused and is only alerted.
fn deny_action(event: &Event, rule: &str) -> ActionTaken {
    if let EventBody::File(file) = &event.event {
        if file.denied_by_rule.as_deref() == Some(rule) {
            return ActionTaken {
                action: ActionKind::Deny,
                target_pid: Some(event.process.pid),
                path: Some(file.path.clone()),
                ok: true,
                detail: if file.kernel_path.is_empty() {
                    format!(
                        "{} refused in the kernel by BPF LSM (EPERM) before it happened",
                        file.op
                    )
                } else {
                    format!(
                        "{} refused in the kernel by BPF LSM (EPERM) before it happened; the kernel's \
                         path: {}",
                        file.op, file.kernel_path
                    )
                },
                ..ActionTaken::default()
            };
        }
        if file.success {
            let killed = kill_action(event, false);
            return ActionTaken {
                detail: format!(
                    "deny needs BPF LSM, which this kernel does not run: fell back to a kill after \
                     the {} happened; {}",
                    file.op, killed.detail
                ),
                ..killed
            };
        }
    }
    ActionTaken {
        action: ActionKind::Deny,
        detail:
            "not enforced: deny is enforced for execs before the program runs and, with BPF LSM, \
                 for file operations; this event is neither"
                .into(),
        ..ActionTaken::default()
    }
}

/// Rolls the file of a `config_change` back to its last known version, with that version's recorded
/// owner and mode.
fn rollback_action(store: Option<&mut ContentStore>, event: &Event) -> ActionTaken {
    let base = ActionTaken {
        action: ActionKind::Rollback,
        ..ActionTaken::default()
    };
    let EventBody::ConfigChange(change) = &event.event else {
        return ActionTaken {
            detail: "rollback applies to config_change events only".into(),
            ..base
        };
    };
    let path = Some(change.path.clone());
    let (Some(store), Some(sha256), Some(mode), Some(uid), Some(gid)) = (
        store,
        &change.old_sha256,
        change.old_mode,
        change.old_uid,
        change.old_gid,
    ) else {
        return ActionTaken {
            path,
            detail: "no known-good content for this file".into(),
            ..base
        };
    };
    let good = rollback::KnownGood {
        sha256,
        mode,
        uid,
        gid,
    };
    match rollback::rollback(store, Path::new(&change.path), &good) {
        Ok(done) => ActionTaken {
            path,
            before_sha256: done.before,
            after_sha256: Some(done.after),
            ok: true,
            detail: "restored atomically".into(),
            ..base
        },
        Err(err) => ActionTaken {
            path,
            detail: err.to_string(),
            ..base
        },
    }
}

fn kill_action(event: &Event, group: bool) -> ActionTaken {
    let pid = event.process.pid;
    let result = kill::kill(pid, event.mono_ns, group);
    ActionTaken {
        action: if group {
            ActionKind::KillGroup
        } else {
            ActionKind::Kill
        },
        target_pid: Some(pid),
        ok: result.is_ok(),
        detail: match result {
            Ok(()) => "SIGKILL sent through a pidfd".into(),
            Err(err) => err.to_string(),
        },
        ..ActionTaken::default()
    }
}

/// The executed file of an exec event.
fn exec_path(event: &Event) -> Option<String> {
    let EventBody::Exec(exec) = &event.event else {
        return None;
    };
    Some(exec.filename.clone())
}

/// The alert `rule` raises on `event`, also queued for the webhook when there is one.
fn alert(
    webhook: Option<&webhook::Webhook>,
    rule: &auditloop_rules::Rule,
    event: &Event,
) -> EventBody {
    let alert = Alert {
        rule: rule.name().to_owned(),
        severity: rule.severity(),
        output: rule.render_output(event),
        tags: rule.tags().to_vec(),
        trigger_seq: event.seq,
    };
    if let Some(hook) = webhook {
        hook.send(serde_json::json!({ "alert": &alert, "event": event }));
    }
    EventBody::Alert(alert)
}
