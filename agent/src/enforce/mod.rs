//! Where each rule is enforced: loading a rule set for the agent and splitting it into
//! - kernel exec rules, decided in `sys_enter_execve` on provably canonical filenames (SIGKILL, before the
//!   program runs; SIGSTOP for `hold` rules, so the new program waits before its first instruction);
//!   capture writes these [`KernelExecRule`]s into the kernel's map;
//! - guard rules, decided in userspace while the exec waits in the kernel ([`guard`], fanotify), for every
//!   spelling of the file and by content hash;
//! - on the LSM tier, kernel deny rules ([`KernelDenyRule`]): exec rules and file deny rules refused in the
//!   kernel's BPF LSM hooks with `EPERM` (exec kill rules become refusals that also kill);
//! - userspace rules, evaluated by the actions stage after the event is journaled.

pub mod guard;

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::Path;

use auditloop_model::EventKind;

use auditloop_rules::{Action, KERNEL_FILE_OPS, Rule, RuleErrors, RuleSet};

use agent_common::wire::{
    HOOK_CHMOD, HOOK_CHOWN, HOOK_EXEC, HOOK_OPEN, HOOK_RENAME, HOOK_TRUNCATE, HOOK_UNLINK,
};
use auditloop_model::FileOp;

pub use guard::{Decision, Decisions, ExecGuard, GuardRule};

/// One kernel exec rule: kill (or, for a hold, stop) execs of `path` (exact, or every path below it when
/// it ends in `/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelExecRule {
    /// Executable path or directory prefix.
    pub path: String,
    /// Rule index reported back in exec events.
    pub rule: u32,
    /// Only this real uid, or any.
    pub uid: Option<u32>,
    /// SIGSTOP (a hold) instead of SIGKILL.
    pub hold: bool,
}

/// The enforcement tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tier {
    /// BPF LSM hooks.
    Lsm,
    /// Syscall tracepoints (and fanotify).
    Tracepoint,
}

impl Tier {
    /// The name in `agent_start`, status and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Lsm => "lsm",
            Tier::Tracepoint => "tracepoint",
        }
    }
}

/// One kernel deny rule entry for the LSM programs: refuse `hooks` on `path` (exact, or every path below
/// it when it ends in `/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelDenyRule {
    /// Path or directory prefix.
    pub path: String,
    /// Rule index reported back in LSM records.
    pub rule: u32,
    /// Only this real uid, or any.
    pub uid: Option<u32>,
    /// `HOOK_*` bits.
    pub hooks: u32,
    /// Kill the task too (exec kill rules).
    pub kill: bool,
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
    /// Kernel deny rules (LSM tier only).
    pub deny: Vec<KernelDenyRule>,
    /// Rule names by kernel deny rule index.
    pub deny_names: Vec<String>,
    /// The tier the split was made for.
    pub tier: Tier,
    /// Event kinds a rule may act on beyond alerting (`None`: any kind): capture wakes the actions stage
    /// at once for them.
    pub acting: Option<HashSet<EventKind>>,
}

/// Loads the rules at `path` (file or directory) for `tier`; a missing path is an empty rule set.
pub fn load(path: &Path, tier: Tier) -> Result<LoadedRules, RuleErrors> {
    let rules = if path.exists() {
        RuleSet::load_resolving(path, &canonical_literal)?
    } else {
        tracing::info!(rules = %path.display(), "no rules file; running without rules");
        RuleSet::parse("(none)", "[]")?
    };
    let (deny, deny_names) = match tier {
        Tier::Lsm => deny_rules(&rules),
        Tier::Tracepoint => (Vec::new(), Vec::new()),
    };
    let in_lsm = |r: &Rule| deny_names.iter().any(|n| n == r.name());
    let (kernel, kernel_names) = kernel_rules(&rules, &in_lsm);
    let guard = rules
        .rules()
        .iter()
        .filter(|r| !in_lsm(r))
        .filter_map(guard_rule)
        .collect();
    let acting = rules.acting_kinds();
    Ok(LoadedRules {
        rules,
        kernel,
        kernel_names,
        guard,
        deny,
        deny_names,
        tier,
        acting,
    })
}

/// The LSM hook bits of file operations.
fn file_hook(op: FileOp) -> u32 {
    match op {
        FileOp::Open => HOOK_OPEN,
        FileOp::Unlink => HOOK_UNLINK,
        FileOp::Rename => HOOK_RENAME,
        FileOp::Chmod => HOOK_CHMOD,
        FileOp::Chown => HOOK_CHOWN,
        FileOp::Truncate => HOOK_TRUNCATE,
        FileOp::Read
        | FileOp::Link
        | FileOp::Symlink
        | FileOp::Mkdir
        | FileOp::Rmdir
        | FileOp::Utimens
        | FileOp::Mount
        | FileOp::Umount
        | FileOp::Chdir => 0,
    }
}

/// One LSM entry of a rule: path, uid, `HOOK_*` bits, kill.
type LsmEntry = (String, Option<u32>, u32, bool);

/// The LSM entries of a rule: an exec rule with `kill`/`kill_group`/`deny` on paths alone (at most one
/// uid), or a file rule with `deny` in the form of [`auditloop_rules::FileMatch`] (at most one uid).
fn lsm_entries(rule: &Rule) -> Option<Vec<LsmEntry>> {
    let acts = |f: fn(&Action) -> bool| rule.actions().iter().any(f);
    if !rule.enabled() {
        return None;
    }
    let kill = acts(|a| a.kills());
    if (kill || acts(|a| *a == Action::Deny))
        && let Some(m) = rule.exec_time_only()
        && m.comms.is_empty()
        && m.parent_comms.is_empty()
        && m.sha256s.is_empty()
        && m.uids.len() <= 1
    {
        let uid = m.uids.first().copied();
        let paths = m.filenames.iter().chain(&m.filename_prefixes);
        let entries: Vec<_> = paths.map(|p| (p.clone(), uid, HOOK_EXEC, kill)).collect();
        let whole = m.filename_prefixes.iter().all(|p| p.ends_with('/'));
        return (whole && !entries.is_empty() && entries.iter().all(|e| e.0.starts_with('/')))
            .then_some(entries);
    }
    if !acts(|a| *a == Action::Deny) {
        return None;
    }
    let m = rule.file_time_only()?;
    if m.uids.len() > 1 || !m.prefixes.iter().all(|p| p.ends_with('/')) {
        return None;
    }
    let ops = if m.ops.is_empty() {
        KERNEL_FILE_OPS.to_vec()
    } else {
        m.ops.clone()
    };
    let hooks = ops.into_iter().map(file_hook).fold(0, |a, b| a | b);
    let uid = m.uids.first().copied();
    let entries: Vec<_> = m
        .paths
        .iter()
        .chain(&m.prefixes)
        .map(|p| (p.clone(), uid, hooks, false))
        .collect();
    (entries.iter().all(|e| e.0.starts_with('/'))).then_some(entries)
}

fn deny_rules(rules: &RuleSet) -> (Vec<KernelDenyRule>, Vec<String>) {
    let mut deny = Vec::new();
    let mut names = Vec::new();
    for rule in rules.rules() {
        let Some(entries) = lsm_entries(rule) else {
            continue;
        };
        let index = u32::try_from(names.len()).unwrap_or(u32::MAX);
        names.push(rule.name().to_owned());
        deny.extend(
            entries
                .into_iter()
                .map(|(path, uid, hooks, kill)| KernelDenyRule {
                    path,
                    rule: index,
                    uid,
                    hooks,
                    kill,
                }),
        );
    }
    (deny, names)
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

/// Which enforcement path a rule takes on `tier`.
pub fn path_of(rule: &Rule, tier: Tier) -> Cow<'static, str> {
    Cow::Borrowed(match path_of_static(rule, tier) {
        Ok(text) => text,
        Err(owned) => return Cow::Owned(owned),
    })
}

/// [`path_of`]: a fixed text, or one made for this rule.
fn path_of_static(rule: &Rule, tier: Tier) -> Result<&'static str, String> {
    let denies = rule.actions().contains(&Action::Deny);
    if tier == Tier::Lsm && lsm_entries(rule).is_some() {
        return Ok(if rule.exec_time_only().is_some() {
            "kernel (BPF LSM bprm_check_security: the exec fails with EPERM before the program runs, \
             for every path, link and descriptor of the file; a kill rule also kills the task)"
        } else {
            "kernel (BPF LSM file hooks: the operation fails with EPERM before it happens)"
        });
    }
    if denies && rule.file_time_only().is_some() {
        return Ok(
            "userspace: deny needs BPF LSM, which this kernel does not run; falls back to a pidfd \
                kill after the event is journaled (the operation has happened)",
        );
    }
    if denies && rule.exec_time_only().is_none() {
        return Ok("userspace: deny cannot be enforced for this condition; alert only");
    }
    if let Some(hold) = rule.hold() {
        let default = match hold.default {
            auditloop_model::HoldDecision::Approve => "continued (SIGCONT)",
            auditloop_model::HoldDecision::Deny => "killed (SIGKILL)",
        };
        let how = if kernel_entries(rule).is_some() {
            "kernel (SIGSTOP at sys_enter_execve: the new program runs no instruction before the decision)"
        } else {
            "userspace (SIGSTOP through a pidfd after the event is journaled: the process may have run \
             before it stops)"
        };
        return Err(format!(
            "hold: {how}; `auditloop holds approve|deny ID` or the collector decides; after {} \
             without a decision it is {default}. Never init, systemd or the agent",
            humantime::format_duration(std::time::Duration::from_nanos(hold.timeout_ns))
        ));
    }
    Ok(if kernel_entries(rule).is_some() {
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
    })
}

/// The kernel entries of a kill or hold rule whose condition is an exec-time path match the kernel can decide:
/// exact filenames or prefixes, at most one uid, no name constraints (the kernel sees the old name at exec).
fn kernel_entries(rule: &Rule) -> Option<Vec<(String, Option<u32>)>> {
    if !rule.enabled()
        || !rule
            .actions()
            .iter()
            .any(|a| matches!(a, Action::Kill | Action::KillGroup | Action::Hold))
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

fn kernel_rules(
    rules: &RuleSet,
    in_lsm: &dyn Fn(&Rule) -> bool,
) -> (Vec<KernelExecRule>, Vec<String>) {
    let mut kernel = Vec::new();
    let mut names = Vec::new();
    for rule in rules.rules().iter().filter(|r| !in_lsm(r)) {
        let Some(entries) = kernel_entries(rule) else {
            continue;
        };
        let index = u32::try_from(names.len()).unwrap_or(u32::MAX);
        names.push(rule.name().to_owned());
        let hold = rule.hold().is_some();
        kernel.extend(entries.into_iter().map(|(path, uid)| KernelExecRule {
            path,
            rule: index,
            uid,
            hold,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(tier: Tier) -> LoadedRules {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.yaml");
        std::fs::write(
            &path,
            "- rule: kill_nc\n  condition: evt.kind = exec and exec.filename = /usr/bin/nc\n  \
             output: o\n  actions: [kill]\n\
             - rule: deny_tmp\n  condition: evt.kind = exec and exec.filename startswith /tmp/x/\n  \
             output: o\n  actions: [deny]\n\
             - rule: deny_hash\n  condition: evt.kind = exec and exec.sha256 = \
             0000000000000000000000000000000000000000000000000000000000000000\n  output: o\n  \
             actions: [deny]\n\
             - rule: protect\n  condition: evt.kind = file and file.path = /etc/hosts and file.op in \
             (open, unlink)\n  output: o\n  actions: [alert, deny]\n\
             - rule: net_deny\n  condition: evt.kind = net and net.port = 4444\n  output: o\n  \
             actions: [deny]\n",
        )
        .unwrap();
        load(&path, tier).unwrap()
    }

    fn named(l: &LoadedRules, name: &str) -> Rule {
        l.rules
            .rules()
            .iter()
            .find(|r| r.name() == name)
            .unwrap()
            .clone()
    }

    #[test]
    fn lsm_tier_moves_path_rules_into_the_kernel_hooks() {
        let l = loaded(Tier::Lsm);
        assert_eq!(l.deny_names, ["kill_nc", "deny_tmp", "protect"]);
        assert!(
            l.kernel.is_empty(),
            "no SIGKILL at sys_enter on the LSM tier"
        );
        let guard: Vec<_> = l.guard.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(
            guard,
            ["deny_hash"],
            "only what the hooks cannot decide stays with the guard"
        );
        let nc = l.deny.iter().find(|d| d.rule == 0).unwrap();
        assert_eq!((nc.hooks, nc.kill), (HOOK_EXEC, true));
        let protect = l.deny.iter().find(|d| d.rule == 2).unwrap();
        assert_eq!(protect.hooks, HOOK_OPEN | HOOK_UNLINK);
        assert!(!protect.kill);
        let rule = |n: &str| named(&l, n);
        assert!(path_of(&rule("protect"), Tier::Lsm).contains("BPF LSM file hooks"));
        assert!(path_of(&rule("deny_tmp"), Tier::Lsm).contains("bprm_check_security"));
        assert!(path_of(&rule("net_deny"), Tier::Lsm).contains("alert only"));
    }

    #[test]
    fn tracepoint_tier_keeps_kill_in_the_kernel_and_deny_falls_back() {
        let l = loaded(Tier::Tracepoint);
        assert!(l.deny.is_empty() && l.deny_names.is_empty());
        assert_eq!(l.kernel_names, ["kill_nc"]);
        let guard: Vec<_> = l.guard.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(guard, ["kill_nc", "deny_tmp", "deny_hash"]);
        let rule = |n: &str| named(&l, n);
        assert!(path_of(&rule("protect"), Tier::Tracepoint).contains("falls back to a pidfd kill"));
        assert!(path_of(&rule("deny_tmp"), Tier::Tracepoint).contains("exec guard"));
    }
}
