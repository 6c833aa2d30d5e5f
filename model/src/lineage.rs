//! Ancestry: the processes an event's process descends from, as the agent's process table knows them.
//!
//! Two forms: [`Lineage`], the table's full chain (up to `capture.ancestry.depth` ancestors, with argv), which
//! rules read while the event passes and which is never serialized; and the compact chain an exec event
//! carries in `Exec::ancestors` (the first `capture.ancestry.exec_depth` ancestors without argv), which is
//! journaled, so a longer chain is rebuilt from the ancestors' own exec events.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::time::WallTime;

/// One ancestor of a process.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ancestor {
    /// Process id.
    pub pid: u32,
    /// When the process started (its fork, or `/proc/<pid>/stat` for processes running before the
    /// agent); `None` when unknown.
    pub start: Option<WallTime>,
    /// Executable path; empty when unknown.
    pub exe: String,
    /// Task name as last seen; empty when unknown.
    pub comm: String,
    /// argv as last seen, cut to a few hundred bytes; always empty in an exec event's compact chain.
    pub argv: Vec<String>,
    /// Only the pid is known: the process ended before the agent saw it (or was evicted from the table
    /// and is gone from `/proc`), so nothing about it, and none of its own ancestors, is guessed. An
    /// unknown ancestor is always the last one of a chain.
    pub unknown: bool,
}

impl Ancestor {
    /// The name rules match (`proc.aname[N]`, `proc.ancestors`): the executable's basename, else the task
    /// name; `None` for an unknown ancestor or when neither is known.
    pub fn name(&self) -> Option<&str> {
        if self.unknown {
            return None;
        }
        let base = self.exe.rsplit('/').next().unwrap_or_default();
        match (base, self.comm.as_str()) {
            ("", "") => None,
            ("", comm) => Some(comm),
            (base, _) => Some(base),
        }
    }
}

/// What the agent's process table knows of an event's process beyond the fields the event records: the
/// whole ancestry and the current working directory. It lives in memory only (`Process::lineage` is
/// never serialized): rules read it as the event passes; a journaled event has an empty one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lineage {
    /// Ancestors, nearest first (`[0]` is the parent); shared between the processes that descend from
    /// them.
    pub ancestors: Arc<[Arc<Ancestor>]>,
    /// The process's current working directory; `None` when unknown.
    pub cwd: Option<Arc<str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_executable_then_the_task_name() {
        let a = |exe: &str, comm: &str, unknown: bool| Ancestor {
            exe: exe.into(),
            comm: comm.into(),
            unknown,
            ..Ancestor::default()
        };
        assert_eq!(
            a("/usr/sbin/nginx", "nginx: worker", false).name(),
            Some("nginx")
        );
        assert_eq!(a("", "kthreadd", false).name(), Some("kthreadd"));
        assert_eq!(a("", "", false).name(), None);
        assert_eq!(a("/usr/bin/sh", "sh", true).name(), None);
    }
}
