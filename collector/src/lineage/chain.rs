//! The ancestry walk on one host: an event's process and its ancestors ([`Chain`]).
//!
//! A process is its host, pid and start time. Its exec event (the latest successful exec of that pid and
//! start, at or before the event, or before the process below it in the chain started) gives its argv and
//! the compact chain of its nearest ancestors (`exec.ancestors`); the last ancestor of that chain is
//! followed through its own exec event, and so on. A process that never ran an exec is followed through the
//! fork that created it (the fork event of its pid at its start time, by its parent). Nothing is guessed: an
//! ancestor the agent marked unknown ends the chain, a process whose start time is unknown cannot be told
//! from a reused pid and ends it, two forks that could have created a process end it, and a process met
//! twice (records that contradict each other) ends it.

use std::collections::{HashSet, VecDeque};

use auditloop_model::{Ancestor, EventBody, Process};
use auditloop_protocol::api::lineage::{AncestryEnd, LineageProcess};

use crate::lineage::read::{Ctx, Found, OfProcess};
use crate::store::{Endpoint, LineageRole, StoreError};

/// How far a fork event's time may be from the start time of the process it created (ns): the agent
/// reports both from the same kernel record, so they are equal; this only absorbs rounding.
const FORK_SLACK_NS: u64 = 1_000_000;

/// One process of a chain.
#[derive(Clone, Debug)]
pub(super) struct Link {
    /// The process as answered.
    pub(super) view: LineageProcess,
    /// Until when the process is looked at: the event's time for the event's process; for an ancestor, the
    /// start of the process below it (when it forked that one); `None` when unknown.
    pub(super) until_ns: Option<u64>,
    /// The SSH client end the process carries, when one of its records was read.
    pub(super) ssh_client: Option<Endpoint>,
}

/// An event's process and its ancestors, nearest first, and why they end there.
#[derive(Clone, Debug)]
pub(super) struct Chain {
    /// The event's process, then its parent, and so on.
    pub(super) links: Vec<Link>,
    /// Why the ancestors end.
    pub(super) end: AncestryEnd,
}

/// Walks the ancestry of `found`'s process on its host.
pub(super) fn walk(ctx: Ctx<'_>, found: &Found) -> Result<Chain, StoreError> {
    let host = found.host.as_str();
    let p = &found.event.process;
    let start = p.start.map(|t| t.0);
    let mut links = vec![Link {
        view: LineageProcess {
            pid: p.pid,
            start_ns: start,
            exe: p.exe.clone(),
            comm: p.comm.clone(),
            ..LineageProcess::default()
        },
        until_ns: Some(found.time_ns()),
        ssh_client: ssh_client(p),
    }];
    let mut own_exec = if let EventBody::Exec(e) = &found.event.event
        && e.success
    {
        Some(found.clone())
    } else {
        None
    };
    let mut seen = HashSet::from([(p.pid, start)]);
    // Ancestors named by a record read, not walked yet, parent first.
    let mut queue: VecDeque<Ancestor> = VecDeque::new();
    let mut at = 0;
    let end = loop {
        let exec = match own_exec.take() {
            Some(exec) => Some(exec),
            None => exec_of(ctx, host, &links[at])?,
        };
        let link = &mut links[at];
        if let Some(exec) = &exec {
            link.view.exec_seq = Some(exec.seq);
            if let EventBody::Exec(e) = &exec.event.event {
                link.view.argv.clone_from(&e.argv);
            }
            if link.view.exe.is_empty() {
                link.view.exe.clone_from(&exec.event.process.exe);
            }
            if link.ssh_client.is_none() {
                link.ssh_client = ssh_client(&exec.event.process);
            }
        }
        if queue.is_empty() {
            let named = exec.as_ref().map(exec_ancestors).unwrap_or_default();
            if link.view.unknown {
                break AncestryEnd::Unknown;
            } else if matches!(link.view.pid, 1 | 2) {
                break AncestryEnd::Root;
            } else if !named.is_empty() {
                queue.extend(named);
            } else if let Some(start) = link.view.start_ns {
                let parent_pid = exec.as_ref().map_or(p.ppid, |e| e.event.process.ppid);
                match fork_parent(ctx, host, link.view.pid, start, parent_pid)? {
                    Some(parent) => queue.push_back(parent),
                    None => break AncestryEnd::NotFound,
                }
            } else {
                break AncestryEnd::NoStart;
            }
        }
        let Some(next) = queue.pop_front() else {
            break AncestryEnd::NotFound;
        };
        if links.len() > ctx.options.max_ancestors {
            break AncestryEnd::Limit;
        }
        let key = (next.pid, next.start.map(|t| t.0));
        if key.1.is_some() && !seen.insert(key) {
            break AncestryEnd::Cycle;
        }
        let until_ns = links[at].view.start_ns;
        links.push(Link {
            view: LineageProcess {
                pid: next.pid,
                start_ns: key.1,
                exe: next.exe,
                comm: next.comm,
                unknown: next.unknown,
                ..LineageProcess::default()
            },
            until_ns,
            ssh_client: None,
        });
        at += 1;
    };
    Ok(Chain { links, end })
}

/// The exec event of `link`'s process: the latest successful one of its pid and start time before it was
/// looked at until.
fn exec_of(ctx: Ctx<'_>, host: &str, link: &Link) -> Result<Option<Found>, StoreError> {
    match (link.view.unknown, link.view.start_ns, link.until_ns) {
        (false, Some(start), Some(until)) => ctx.latest_exec(host, link.view.pid, start, until),
        _ => Ok(None),
    }
}

/// The compact chain an exec event carries.
fn exec_ancestors(exec: &Found) -> Vec<Ancestor> {
    if let EventBody::Exec(e) = &exec.event.event {
        e.ancestors.clone()
    } else {
        Vec::new()
    }
}

/// The parent of process `pid` started at `start_ns`, from the one fork event that created it (made by
/// `parent_pid`, when that is known, i.e. not 0); `None` when there is none, or more than one.
fn fork_parent(
    ctx: Ctx<'_>,
    host: &str,
    pid: u32,
    start_ns: u64,
    parent_pid: u32,
) -> Result<Option<Ancestor>, StoreError> {
    let forks = ctx.process(&OfProcess {
        host,
        pid,
        role: LineageRole::Fork,
        start_ns: (
            start_ns.saturating_sub(FORK_SLACK_NS),
            start_ns.saturating_add(FORK_SLACK_NS),
        ),
        time_ns: (None, None),
        limit: 2,
    })?;
    let [fork] = forks.as_slice() else {
        return Ok(None);
    };
    let parent = &fork.event.process;
    if parent_pid != 0 && parent.pid != parent_pid {
        return Ok(None);
    }
    Ok(Some(Ancestor {
        pid: parent.pid,
        start: parent.start,
        exe: parent.exe.clone(),
        comm: parent.comm.clone(),
        argv: Vec::new(),
        unknown: false,
    }))
}

/// The SSH client end `process` carries, when both its address and port are known.
fn ssh_client(process: &Process) -> Option<Endpoint> {
    process
        .ssh_client_port
        .and_then(|port| Endpoint::known(&process.ssh_client_address, port))
}
