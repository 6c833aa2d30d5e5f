//! Where each rule is enforced: loading a rule set for the agent and splitting it into
//! - kernel exec rules, decided in `sys_enter_execve` on provably canonical filenames (SIGKILL, before the
//!   program runs); capture writes these [`KernelExecRule`]s into the kernel's map;
//! - guard rules, decided in userspace while the exec waits in the kernel ([`guard`], fanotify), for every
//!   spelling of the file and by content hash;
//! - userspace rules, evaluated by the actions stage after the event is journaled.

pub mod guard;

use std::collections::HashSet;
use std::path::Path;

use auditloop_model::EventKind;

use auditloop_rules::{Action, Rule, RuleErrors, RuleSet};

pub use guard::{Decision, Decisions, ExecGuard, GuardRule};

/// One kernel exec rule: kill execs of `path` (exact, or every path below it when it ends in `/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelExecRule {
    /// Executable path or directory prefix.
    pub path: String,
    /// Rule index reported back in exec events.
    pub rule: u32,
    /// Only this real uid, or any.
    pub uid: Option<u32>,
}

/// A loaded rule set with its kernel part.
pub struct LoadedRules {
    /// The rules.
    pub rules: RuleSet,
    /// Kernel exec rules (path, rule index, uid).
    pub kernel: Vec<KernelExecRule>,
    /// Rule names by kernel rule index.
    pub kernel_names: Vec<String>,
    /// Rules the exec guard enforces.
    pub guard: Vec<GuardRule>,
    /// Event kinds a rule may act on beyond alerting (`None`: any kind): capture wakes the actions stage
    /// at once for them.
    pub acting: Option<HashSet<EventKind>>,
}

/// Loads the rules at `path` (file or directory); a missing path is an empty rule set.
pub fn load(path: &Path) -> Result<LoadedRules, RuleErrors> {
    let rules = if path.exists() {
        RuleSet::load_resolving(path, &canonical_literal)?
    } else {
        tracing::info!(rules = %path.display(), "no rules file; running without rules");
        RuleSet::parse("(none)", "[]")?
    };
    let (kernel, kernel_names) = kernel_rules(&rules);
    let guard = guard_rules(&rules);
    let acting = rules.acting_kinds();
    Ok(LoadedRules {
        rules,
        kernel,
        kernel_names,
        guard,
        acting,
    })
}

/// The canonical path of a path literal on this host: the longest existing prefix with its symbolic
/// links resolved, and the rest as written (a rule may name a file that does not exist yet).
pub fn canonical_literal(path: &str) -> Option<String> {
    let mut base = Path::new(path);
    let mut rest = Vec::new();
    loop {
        match std::fs::canonicalize(base) {
            Ok(mut found) => {
                found.extend(rest.iter().rev());
                return found.to_str().map(str::to_owned);
            }
            Err(_) => {
                rest.push(base.file_name()?);
                base = base.parent()?;
            }
        }
    }
}

/// Which enforcement path a rule takes.
pub fn path_of(rule: &Rule) -> &'static str {
    if kernel_entries(rule).is_some() {
        "kernel (SIGKILL at sys_enter_execve, before the program runs; other spellings of the file are \
         refused by the exec guard, also before it runs)"
    } else if guard_rule(rule).is_some() {
        "exec guard (fanotify: the exec waits in the kernel and is refused before the program runs)"
    } else if rule
        .actions()
        .iter()
        .any(|a| matches!(a, Action::Kill | Action::KillGroup))
    {
        "userspace (pidfd kill after the event is journaled)"
    } else {
        "userspace"
    }
}

/// The kernel entries of a kill rule whose condition is an exec-time path match the kernel can decide:
/// exact filenames or prefixes, at most one uid, no name constraints (the kernel sees the old name at exec).
fn kernel_entries(rule: &Rule) -> Option<Vec<(String, Option<u32>)>> {
    if !rule.enabled()
        || !rule
            .actions()
            .iter()
            .any(|a| matches!(a, Action::Kill | Action::KillGroup))
    {
        return None;
    }
    let m = rule.exec_time_only()?;
    if !m.comms.is_empty()
        || !m.parent_comms.is_empty()
        || !m.sha256s.is_empty()
        || m.uids.len() > 1
    {
        return None;
    }
    let uid = m.uids.first().copied();
    let mut entries: Vec<(String, Option<u32>)> =
        m.filenames.iter().map(|f| (f.clone(), uid)).collect();
    for prefix in &m.filename_prefixes {
        // The kernel matches prefixes on whole path components.
        if !prefix.ends_with('/') {
            return None;
        }
        entries.push((prefix.clone(), uid));
    }
    (!entries.is_empty() && entries.iter().all(|(p, _)| p.starts_with('/'))).then_some(entries)
}

fn kernel_rules(rules: &RuleSet) -> (Vec<KernelExecRule>, Vec<String>) {
    let mut kernel = Vec::new();
    let mut names = Vec::new();
    for rule in rules.rules() {
        let Some(entries) = kernel_entries(rule) else {
            continue;
        };
        let index = u32::try_from(names.len()).unwrap_or(u32::MAX);
        names.push(rule.name().to_owned());
        kernel.extend(entries.into_iter().map(|(path, uid)| KernelExecRule {
            path,
            rule: index,
            uid,
        }));
    }
    (kernel, names)
}

/// The guard's form of a kill, kill_group or deny rule whose condition is an exec-time match it can decide
/// before the program runs (a task name after the exec is not known then).
fn guard_rule(rule: &Rule) -> Option<GuardRule> {
    let acts = |f: fn(&Action) -> bool| rule.actions().iter().any(f);
    if !rule.enabled() || !acts(|a| matches!(a, Action::Kill | Action::KillGroup | Action::Deny)) {
        return None;
    }
    let m = rule.exec_time_only()?;
    if !m.comms.is_empty() {
        return None;
    }
    Some(GuardRule {
        name: rule.name().to_owned(),
        kill: acts(|a| matches!(a, Action::Kill | Action::KillGroup)),
        filenames: m.filenames,
        prefixes: m.filename_prefixes,
        sha256s: m.sha256s,
        uids: m.uids,
        parent_names: m.parent_comms,
    })
}

fn guard_rules(rules: &RuleSet) -> Vec<GuardRule> {
    rules.rules().iter().filter_map(guard_rule).collect()
}
