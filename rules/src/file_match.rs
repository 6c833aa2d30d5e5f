//! Recognizes rules that can be decided when a file operation starts, from its path, operation and user,
//! so a kernel that has BPF LSM can refuse the operation before it happens (see [`FileMatch`]).

use crate::ast::CmpOp;
use crate::eval::{Cond, Test};
use crate::exec_match::conjunction_groups;
use auditloop_model::{EventKind, FileOp};

/// The operations a kernel file rule can refuse: the hooks of BPF LSM that see them.
pub const KERNEL_FILE_OPS: [FileOp; 6] = [
    FileOp::Open,
    FileOp::Unlink,
    FileOp::Rename,
    FileOp::Chmod,
    FileOp::Chown,
    FileOp::Truncate,
];

/// The restricted conjunctive form of a file-time rule.
///
/// The rule matches exactly the `file` events for which **all** of these hold, where an empty list means
/// "no constraint" (for `ops`: every operation of [`KERNEL_FILE_OPS`]):
/// - `paths` / `prefixes`: `file.path` equals one of `paths` **or** starts with one of `prefixes`
///   (`=`, `in (…)`, `startswith`, alone or joined by `or`); at least one is required;
/// - `ops`: `file.op` is one of them (`=`, `in`), each one of [`KERNEL_FILE_OPS`];
/// - `uids`: `user.uid` is one of them (`=`, `in`).
///
/// The condition must be a conjunction of `evt.kind = file` and at most one group per constraint; anything
/// else makes [`Rule::file_time_only`](crate::Rule::file_time_only) return `None`. Lists are sorted and
/// deduplicated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileMatch {
    /// Exact paths (any of).
    pub paths: Vec<String>,
    /// Path prefixes (any of).
    pub prefixes: Vec<String>,
    /// Operations (any of); empty = every operation of [`KERNEL_FILE_OPS`].
    pub ops: Vec<FileOp>,
    /// Real uids (any of).
    pub uids: Vec<u32>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Path,
    Op,
    Uid,
}

fn op_named(name: &str) -> Option<FileOp> {
    KERNEL_FILE_OPS.into_iter().find(|op| op.as_str() == name)
}

fn uid(n: i128) -> Option<u32> {
    u32::try_from(n).ok()
}

/// Adds one atom of a group to `m`; `None` when it is outside the form.
fn add(m: &mut FileMatch, slot: Slot, test: &Test) -> Option<()> {
    match (slot, test) {
        (Slot::Path, Test::StrEq(s)) => m.paths.push(s.clone()),
        (Slot::Path, Test::StrIn(set)) => m.paths.extend(set.iter().cloned()),
        (Slot::Path, Test::StartsWith(p)) => m.prefixes.push(p.clone()),
        (Slot::Op, Test::StrEq(s)) => m.ops.push(op_named(s)?),
        (Slot::Op, Test::StrIn(set)) => {
            for s in set {
                m.ops.push(op_named(s)?);
            }
        }
        (Slot::Uid, Test::NumCmp(CmpOp::Eq, n)) => m.uids.push(uid(*n)?),
        (Slot::Uid, Test::NumIn(ns)) => {
            for n in ns {
                m.uids.push(uid(*n)?);
            }
        }
        _ => return None,
    }
    Some(())
}

/// The [`FileMatch`] of a compiled condition, when it has the restricted form.
pub(crate) fn file_match(cond: &Cond) -> Option<FileMatch> {
    let mut m = FileMatch::default();
    let slot_of = |name: &str| {
        Some(match name {
            "file.path" => Slot::Path,
            "file.op" => Slot::Op,
            "user.uid" => Slot::Uid,
            _ => return None,
        })
    };
    conjunction_groups(cond, EventKind::File, slot_of, |slot, test| {
        add(&mut m, slot, test)
    })?;
    if m.paths.is_empty() && m.prefixes.is_empty() {
        return None;
    }
    m.paths.sort();
    m.paths.dedup();
    m.prefixes.sort();
    m.prefixes.dedup();
    m.ops.sort_by_key(|op| op.as_str());
    m.ops.dedup();
    m.uids.sort_unstable();
    m.uids.dedup();
    Some(m)
}
