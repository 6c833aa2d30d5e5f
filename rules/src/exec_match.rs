//! Recognizes rules that can be decided at exec time from a few exec facts, so they can later be compiled
//! into BPF maps (see [`ExecMatch`]).

use crate::ast::CmpOp;
use crate::eval::{Cond, Test};
use auditloop_model::EventKind;

/// The restricted conjunctive form of an exec-time rule.
///
/// The rule matches exactly the `exec` events for which **all** of these hold, where an empty list means
/// "no constraint":
/// - `filenames` / `filename_prefixes`: the exec filename equals one of `filenames` **or** starts with
///   one of `filename_prefixes` (from `exec.filename` or `proc.exe` tests: `=`, `in (…)`, `startswith`,
///   alone or joined by `or`);
/// - `comms`: `proc.name` (the name after exec) is one of them (`=`, `in`, or an `or` of those);
/// - `uids`: `user.uid` is one of them (`=`, `in`);
/// - `parent_comms`: `proc.pname` is one of them (`=`, `in`);
/// - `sha256s`: `exec.sha256` (the executed file's content hash) is one of them (`=`, `in`).
///
/// The condition must be a conjunction (`and`, also through macros) of `evt.kind = exec` and at most one
/// group per constraint above; anything else (`not`, `!=`, other fields or operators, an `or` that mixes
/// two fields, two groups on the same field) makes [`Rule::exec_time_only`](crate::Rule::exec_time_only)
/// return `None`. Lists are sorted and deduplicated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecMatch {
    /// Exact filenames (any of).
    pub filenames: Vec<String>,
    /// Filename prefixes (any of).
    pub filename_prefixes: Vec<String>,
    /// Task names after exec (any of).
    pub comms: Vec<String>,
    /// Real uids (any of).
    pub uids: Vec<u32>,
    /// Parent names (any of).
    pub parent_comms: Vec<String>,
    /// SHA-256 hashes (lower-case hex) of the executed file (any of).
    pub sha256s: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Filename,
    Comm,
    Uid,
    Parent,
    Sha256,
}

/// Collects the operands of nested `and` (`and = true`) or `or` (`and = false`) conditions.
fn flatten<'c>(c: &'c Cond, and: bool, out: &mut Vec<&'c Cond>) {
    match (c, and) {
        (Cond::And(v), true) | (Cond::Or(v), false) => v.iter().for_each(|x| flatten(x, and, out)),
        _ => out.push(c),
    }
}

/// Whether `c` is `evt.kind = KIND` (or `evt.kind in (KIND)`).
fn is_kind(c: &Cond, kind: EventKind) -> bool {
    if let Cond::Test(f, Test::StrEq(k)) = c {
        return f.is_kind() && k == kind.as_str();
    }
    if let Cond::Test(f, Test::StrIn(ks)) = c {
        return f.is_kind() && ks.len() == 1 && ks.contains(kind.as_str());
    }
    false
}

/// Walks a condition of the restricted conjunctive form both kernel matchers accept: a conjunction (`and`,
/// also through macros) of `evt.kind = kind` and groups, each an `or` of tests on one field, at most one
/// group per slot. `slot_of` names a field's slot (`None`: outside the form) and `add` takes each test of a
/// group (`None`: outside the form). `None` when the condition is not of that form or lacks the kind test.
pub(crate) fn conjunction_groups<S: Copy + PartialEq>(
    cond: &Cond,
    kind: EventKind,
    slot_of: impl Fn(&str) -> Option<S>,
    mut add: impl FnMut(S, &Test) -> Option<()>,
) -> Option<()> {
    let mut conjuncts = Vec::new();
    flatten(cond, true, &mut conjuncts);
    let (mut saw_kind, mut filled) = (false, Vec::new());
    for c in conjuncts {
        if is_kind(c, kind) {
            saw_kind = true;
            continue;
        }
        let mut atoms = Vec::new();
        flatten(c, false, &mut atoms);
        let mut group_slot = None;
        for atom in atoms {
            let Cond::Test(f, test) = atom else {
                return None;
            };
            let slot = slot_of(f.name)?;
            if *group_slot.get_or_insert(slot) != slot {
                return None;
            }
            add(slot, test)?;
        }
        let slot = group_slot?;
        if filled.contains(&slot) {
            return None;
        }
        filled.push(slot);
    }
    saw_kind.then_some(())
}

/// The [`ExecMatch`] of a compiled condition, when it has the restricted form.
pub(crate) fn exec_match(cond: &Cond) -> Option<ExecMatch> {
    let mut m = ExecMatch::default();
    let slot_of = |name: &str| {
        Some(match name {
            "exec.filename" | "proc.exe" => Slot::Filename,
            "proc.name" => Slot::Comm,
            "user.uid" => Slot::Uid,
            "proc.pname" => Slot::Parent,
            "exec.sha256" => Slot::Sha256,
            _ => return None,
        })
    };
    conjunction_groups(cond, EventKind::Exec, slot_of, |slot, test| {
        let strings = match slot {
            Slot::Filename => &mut m.filenames,
            Slot::Comm => &mut m.comms,
            Slot::Parent => &mut m.parent_comms,
            Slot::Sha256 => &mut m.sha256s,
            Slot::Uid => {
                match test {
                    Test::NumCmp(CmpOp::Eq, n) => m.uids.push(u32::try_from(*n).ok()?),
                    Test::NumIn(ns) => {
                        for n in ns {
                            m.uids.push(u32::try_from(*n).ok()?);
                        }
                    }
                    _ => return None,
                }
                return Some(());
            }
        };
        match test {
            Test::StrEq(s) => strings.push(s.clone()),
            Test::StrIn(set) => strings.extend(set.iter().cloned()),
            Test::StartsWith(p) if slot == Slot::Filename => m.filename_prefixes.push(p.clone()),
            _ => return None,
        }
        Some(())
    })?;
    for list in [
        &mut m.filenames,
        &mut m.filename_prefixes,
        &mut m.comms,
        &mut m.parent_comms,
        &mut m.sha256s,
    ] {
        list.sort();
        list.dedup();
    }
    m.uids.sort_unstable();
    m.uids.dedup();
    Some(m)
}
