//! The searchable columns of a record ([`SearchColumns`]): what queries filter on without decoding
//! payloads, derived here from each payload. Ingest derives them for every verified record it commits; the
//! SQLite backend derives them again when a schema migration adds columns, so old records are found like new
//! ones.
//!
//! Columns are only an index: the payload bytes stay the record of truth (they are what the hash covers and
//! what queries return). `path` is the file the event is about (exec filename, file path, changed config
//! file, …); `summary` is the text the `q` query parameter searches: comm, exe, paths, argv, cwd, addresses,
//! rule names, the login name, terminal and SSH client address. A network event's ends are kept normalized
//! ([`normalize_address`]); the lineage key ([`LineageKey`]) says what the record tells about a process.

use auditloop_journal::record::SegmentStart;
use auditloop_model::{Event, EventBody, Net, NetOp, NetProtocol};

use crate::store::commit::SearchColumns;
use crate::store::fleet::Finding;
use crate::store::holds::HoldReport;
use crate::store::lineage::{Endpoint, FlowSide, LineageKey, LineageRole, normalize_address};

/// Longest summary kept, in bytes.
pub const SUMMARY_MAX: usize = 512;

/// Columns of an event.
pub fn of_event(event: &Event) -> SearchColumns {
    let p = &event.process;
    let mut summary = Summary::default();
    summary.push(&p.comm);
    summary.push(&p.exe);
    let path = path_of(&event.event);
    if let Some(path) = path {
        summary.push(path);
    }
    match &event.event {
        EventBody::Exec(e) => {
            e.argv.iter().for_each(|a| summary.push(a));
            summary.push(&e.cwd);
        }
        EventBody::File(f) => summary.push(&f.target),
        EventBody::Net(n) => {
            summary.push(&n.address);
            for end in [&n.local_address, &n.remote_address, &n.path] {
                if *end != n.address {
                    summary.push(end);
                }
            }
        }
        EventBody::MemfdCreate(m) => summary.push(&m.name),
        EventBody::SetName(s) => summary.push(&s.name),
        EventBody::Alert(a) => {
            summary.push(&a.rule);
            summary.push(&a.output);
        }
        EventBody::Action(a) => {
            summary.push(a.action.as_str());
            summary.push(&a.rule);
        }
        EventBody::Hold(h) => {
            summary.push(h.state.as_str());
            summary.push(&h.rule);
            summary.push(&h.exe);
        }
        EventBody::Loss(l) => {
            summary.push(l.stage.as_str());
            summary.push(&l.record);
        }
        EventBody::Syscall(s) => summary.push(&s.name),
        EventBody::IoUring(u) => {
            summary.push(u.op.as_str());
            summary.push(&u.target);
            summary.push(&u.address);
        }
        EventBody::Fork(_)
        | EventBody::IoUringSetup(_)
        | EventBody::Exit(_)
        | EventBody::AgentStart(_)
        | EventBody::AgentStop(_)
        | EventBody::SetId(_)
        | EventBody::Ptrace(_)
        | EventBody::Kill(_)
        | EventBody::ConfigChange(_)
        | EventBody::ConfigLoaded(_)
        | EventBody::JournalRecovered(_)
        | EventBody::RulesLoaded(_)
        | EventBody::RulesRejected(_) => {}
        EventBody::Tamper(t) => {
            summary.push(&t.what);
            summary.push(&t.target);
            summary.push(&t.detail);
        }
    }
    summary.push(&p.loginname);
    summary.push(&p.tty);
    summary.push(&p.ssh_client_address);
    let net = if let EventBody::Net(n) = &event.event {
        Some(n)
    } else {
        None
    };
    SearchColumns {
        time_ns: Some(event.time.0),
        pid: Some(p.pid),
        path: path.filter(|p| !p.is_empty()).map(str::to_owned),
        summary: Some(summary.0),
        loginuid: p.loginuid,
        local_address: net.and_then(|n| address(&n.local_address)),
        local_port: net.and_then(|n| port(n.local_port)),
        remote_address: net.and_then(|n| address(&n.remote_address)),
        remote_port: net.and_then(|n| port(n.remote_port)),
        lineage: lineage_key(event),
        finding: finding(&event.event),
    }
}

/// What an `alert` or `action` event tells the fleet-alert list.
pub fn finding(body: &EventBody) -> Option<Finding> {
    match body {
        EventBody::Alert(a) => Some(Finding::Alert {
            rule: a.rule.clone(),
            severity: a.severity,
            tags: a.tags.clone(),
            output: a.output.clone(),
            trigger_seq: a.trigger_seq,
        }),
        EventBody::Action(a) => Some(Finding::Action {
            rule: a.rule.clone(),
            action: a.action.as_str().to_owned(),
            trigger_seq: a.trigger_seq,
            ok: a.ok,
            detail: a.detail.clone(),
        }),
        EventBody::Hold(h) => Some(Finding::Hold(HoldReport {
            hold: h.id,
            rule: h.rule.clone(),
            pid: h.target_pid,
            comm: h.comm.clone(),
            exe: h.exe.clone(),
            state: h.state.as_str().to_owned(),
            stopped_by: h.stopped_by.as_str().to_owned(),
            timeout_ms: h.timeout_ms,
            default: h.default.as_str().to_owned(),
            decided_by: h.decided_by.clone(),
            latency_us: (h.latency_us > 0).then_some(h.latency_us),
            detail: h.detail.clone(),
        })),
        EventBody::Exec(_)
        | EventBody::Fork(_)
        | EventBody::Net(_)
        | EventBody::Exit(_)
        | EventBody::Loss(_)
        | EventBody::AgentStart(_)
        | EventBody::AgentStop(_)
        | EventBody::File(_)
        | EventBody::SetId(_)
        | EventBody::Ptrace(_)
        | EventBody::Kill(_)
        | EventBody::SetName(_)
        | EventBody::MemfdCreate(_)
        | EventBody::Syscall(_)
        | EventBody::ConfigChange(_)
        | EventBody::ConfigLoaded(_)
        | EventBody::JournalRecovered(_)
        | EventBody::RulesRejected(_)
        | EventBody::IoUring(_)
        | EventBody::IoUringSetup(_)
        | EventBody::Tamper(_) => None,
        EventBody::RulesLoaded(r) => Some(Finding::RulesLoaded(r.names.clone())),
    }
}

/// What `event` tells the lineage walk: a successful exec of a process whose start is known, the fork of
/// a new process (not a thread), or a successful TCP connect or accept.
pub fn lineage_key(event: &Event) -> Option<LineageKey> {
    let p = &event.process;
    let start_ns = p.start.map(|t| t.0);
    match &event.event {
        EventBody::Exec(e) => (e.success && start_ns.is_some()).then_some(LineageKey {
            role: LineageRole::Exec,
            pid: p.pid,
            start_ns,
        }),
        EventBody::Fork(f) => (!f.thread && f.child_pid != 0).then_some(LineageKey {
            role: LineageRole::Fork,
            pid: f.child_pid,
            start_ns: Some(event.time.0),
        }),
        EventBody::Net(n) => flow_side(n).map(|side| LineageKey {
            role: LineageRole::Flow(side),
            pid: p.pid,
            start_ns,
        }),
        EventBody::Exit(_)
        | EventBody::Loss(_)
        | EventBody::AgentStart(_)
        | EventBody::AgentStop(_)
        | EventBody::File(_)
        | EventBody::SetId(_)
        | EventBody::Ptrace(_)
        | EventBody::Kill(_)
        | EventBody::SetName(_)
        | EventBody::MemfdCreate(_)
        | EventBody::Syscall(_)
        | EventBody::ConfigChange(_)
        | EventBody::ConfigLoaded(_)
        | EventBody::JournalRecovered(_)
        | EventBody::Hold(_)
        | EventBody::Alert(_)
        | EventBody::Action(_)
        | EventBody::RulesLoaded(_)
        | EventBody::RulesRejected(_)
        | EventBody::IoUring(_)
        | EventBody::IoUringSetup(_)
        | EventBody::Tamper(_) => None,
    }
}

/// The side of a TCP connection `n` is, when it succeeded (its ends may still be unknown: only connections
/// whose both ends are known take part in joins).
pub fn flow_side(n: &Net) -> Option<FlowSide> {
    let side = match n.op {
        NetOp::Connect => FlowSide::Connect,
        NetOp::Accept => FlowSide::Accept,
        NetOp::Bind | NetOp::Listen => return None,
    };
    let tcp = match n.protocol {
        NetProtocol::Tcp => true,
        NetProtocol::Unknown | NetProtocol::Udp | NetProtocol::Unix | NetProtocol::Other => false,
    };
    (tcp && n.success).then_some(side)
}

/// A network event's local and remote ends, when known.
pub fn ends(n: &Net) -> (Option<Endpoint>, Option<Endpoint>) {
    (
        Endpoint::known(&n.local_address, n.local_port),
        Endpoint::known(&n.remote_address, n.remote_port),
    )
}

/// A non-empty address, normalized.
fn address(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| normalize_address(text))
}

/// A known (non-zero) port.
fn port(port: u16) -> Option<u16> {
    (port != 0).then_some(port)
}

/// Columns of a segment start.
pub fn of_segment_start(start: &SegmentStart) -> SearchColumns {
    SearchColumns {
        time_ns: Some(start.created_ns),
        summary: Some(format!(
            "{} generation {} boot {}",
            start.host, start.generation, start.boot_id
        )),
        ..SearchColumns::default()
    }
}

/// The file an event is about.
fn path_of(body: &EventBody) -> Option<&str> {
    match body {
        EventBody::Exec(e) => Some(&e.filename),
        EventBody::File(f) => Some(&f.path),
        EventBody::ConfigChange(c) => Some(&c.path),
        EventBody::ConfigLoaded(c) => Some(&c.path),
        EventBody::RulesLoaded(r) => Some(&r.path),
        EventBody::RulesRejected(r) => Some(&r.path),
        EventBody::Action(a) => a.path.as_deref(),
        EventBody::IoUring(u) => Some(&u.path),
        EventBody::Fork(_)
        | EventBody::Tamper(_)
        | EventBody::Hold(_)
        | EventBody::IoUringSetup(_)
        | EventBody::Exit(_)
        | EventBody::Loss(_)
        | EventBody::AgentStart(_)
        | EventBody::AgentStop(_)
        | EventBody::SetId(_)
        | EventBody::Ptrace(_)
        | EventBody::Kill(_)
        | EventBody::SetName(_)
        | EventBody::MemfdCreate(_)
        | EventBody::Net(_)
        | EventBody::Syscall(_)
        | EventBody::JournalRecovered(_)
        | EventBody::Alert(_) => None,
    }
}

/// Space-separated text, cut at [`SUMMARY_MAX`] bytes on a character boundary.
#[derive(Default)]
struct Summary(String);

impl Summary {
    fn push(&mut self, text: &str) {
        if text.is_empty() || self.0.len() >= SUMMARY_MAX {
            return;
        }
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        let room = SUMMARY_MAX.saturating_sub(self.0.len());
        let mut cut = text.len().min(room);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        self.0.push_str(&text[..cut]);
    }
}

#[cfg(test)]
mod tests {
    use auditloop_model::{
        Event, EventBody, Exec, File, Fork, Net, NetOp, NetProtocol, Process, WallTime,
    };

    use super::{SUMMARY_MAX, Summary, of_event};
    use crate::store::lineage::{FlowSide, LineageKey, LineageRole};

    fn event(body: EventBody) -> Event {
        Event {
            seq: 1,
            time: WallTime(7),
            mono_ns: 0,
            process: Process {
                pid: 42,
                comm: "bash".into(),
                exe: "/usr/bin/bash".into(),
                ..Process::default()
            },
            event: body,
        }
    }

    #[test]
    fn exec_and_file_events_index_their_paths() {
        let exec = of_event(&event(EventBody::Exec(Exec {
            filename: "/bin/ls".into(),
            argv: vec!["ls".into(), "-l".into()],
            ..Exec::default()
        })));
        assert_eq!(exec.path.as_deref(), Some("/bin/ls"));
        assert_eq!(exec.pid, Some(42));
        assert_eq!(exec.time_ns, Some(7));
        assert_eq!(
            exec.summary.as_deref(),
            Some("bash /usr/bin/bash /bin/ls ls -l")
        );
        let file = of_event(&event(EventBody::File(File {
            path: "/etc/passwd".into(),
            ..File::default()
        })));
        assert_eq!(file.path.as_deref(), Some("/etc/passwd"));
    }

    #[test]
    fn summaries_are_cut_on_a_character_boundary() {
        let mut s = Summary::default();
        s.push(&"é".repeat(400));
        s.push("more");
        assert!(s.0.len() <= SUMMARY_MAX);
        assert!(s.0.chars().all(|c| c == 'é'));
    }

    /// A TCP `op` from `local` to `remote` by a process started at 5.
    fn tcp(op: NetOp, local: (&str, u16), remote: (&str, u16)) -> Event {
        let mut e = event(EventBody::Net(Net {
            op,
            protocol: NetProtocol::Tcp,
            success: true,
            address: remote.0.into(),
            port: remote.1,
            local_address: local.0.into(),
            local_port: local.1,
            remote_address: remote.0.into(),
            remote_port: remote.1,
            ..Net::default()
        }));
        e.process.start = Some(WallTime(5));
        e
    }

    #[test]
    fn network_ends_are_normalized_and_searchable() {
        let mut connect = tcp(NetOp::Connect, ("::ffff:10.0.0.1", 40000), ("10.0.0.2", 22));
        connect.process.loginname = "alice".into();
        connect.process.loginuid = Some(1000);
        connect.process.tty = "pts/3".into();
        connect.process.ssh_client_address = "192.0.2.9".into();
        let c = of_event(&connect);
        assert_eq!(c.local_address.as_deref(), Some("10.0.0.1"));
        assert_eq!(
            (c.local_port, c.remote_port, c.loginuid),
            (Some(40000), Some(22), Some(1000))
        );
        assert_eq!(c.remote_address.as_deref(), Some("10.0.0.2"));
        assert_eq!(
            c.summary.as_deref(),
            Some("bash /usr/bin/bash 10.0.0.2 ::ffff:10.0.0.1 alice pts/3 192.0.2.9")
        );
        assert_eq!(
            c.lineage,
            Some(LineageKey {
                role: LineageRole::Flow(FlowSide::Connect),
                pid: 42,
                start_ns: Some(5),
            })
        );
        let a = of_event(&tcp(NetOp::Accept, ("10.0.0.2", 22), ("10.0.0.1", 40000)));
        assert_eq!(
            a.lineage.map(|k| k.role),
            Some(LineageRole::Flow(FlowSide::Accept))
        );
    }

    #[test]
    fn only_successful_tcp_connects_and_accepts_are_flows() {
        // Unknown ends are kept unknown (never joined, see the conformance suite), not made up.
        let unknown_local = of_event(&tcp(NetOp::Connect, ("", 0), ("10.0.0.2", 22)));
        assert_eq!(
            unknown_local.lineage.map(|k| k.role),
            Some(LineageRole::Flow(FlowSide::Connect))
        );
        assert_eq!(
            (unknown_local.local_address, unknown_local.local_port),
            (None, None)
        );
        let zero_port = of_event(&tcp(NetOp::Accept, ("10.0.0.2", 0), ("10.0.0.1", 4)));
        assert_eq!(zero_port.local_port, None);
        assert_eq!(zero_port.local_address.as_deref(), Some("10.0.0.2"));
        let mut failed = tcp(NetOp::Connect, ("10.0.0.1", 4), ("10.0.0.2", 22));
        if let EventBody::Net(n) = &mut failed.event {
            n.success = false;
        }
        assert_eq!(of_event(&failed).lineage, None);
        let mut udp = tcp(NetOp::Connect, ("10.0.0.1", 4), ("10.0.0.2", 53));
        if let EventBody::Net(n) = &mut udp.event {
            n.protocol = NetProtocol::Udp;
        }
        assert_eq!(of_event(&udp).lineage, None);
        assert_eq!(
            of_event(&tcp(NetOp::Listen, ("10.0.0.1", 4), ("", 0))).lineage,
            None
        );
    }

    #[test]
    fn execs_and_forks_name_their_process() {
        let mut exec = event(EventBody::Exec(Exec {
            filename: "/bin/ls".into(),
            success: true,
            cwd: "/srv".into(),
            ..Exec::default()
        }));
        // Without a start time, an exec cannot be told from one by a reused pid.
        assert_eq!(of_event(&exec).lineage, None);
        exec.process.start = Some(WallTime(3));
        let columns = of_event(&exec);
        assert_eq!(
            columns.lineage,
            Some(LineageKey {
                role: LineageRole::Exec,
                pid: 42,
                start_ns: Some(3),
            })
        );
        assert!(columns.summary.unwrap().ends_with("/bin/ls /srv"));
        let fork = of_event(&event(EventBody::Fork(Fork {
            child_pid: 43,
            ..Fork::default()
        })));
        assert_eq!(
            fork.lineage,
            Some(LineageKey {
                role: LineageRole::Fork,
                pid: 43,
                start_ns: Some(7),
            })
        );
        let thread = of_event(&event(EventBody::Fork(Fork {
            child_pid: 44,
            thread: true,
            ..Fork::default()
        })));
        assert_eq!(thread.lineage, None);
    }
}
