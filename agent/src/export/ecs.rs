//! Elastic Common Schema (ECS 8.x) documents from auditloop events, for shipping to Elasticsearch or any
//! ECS-aware pipeline.
//!
//! [`to_ecs`] is a pure function of one event. It writes real ECS fields where ECS has them (only those
//! that have data, categorisation values from ECS's allowed lists) and it never drops information: every
//! document also carries the event's body verbatim under `auditloop.<kind>` (the model's serde form) and
//! the monotonic time under `auditloop.mono_ns`, so a consumer can always fall back to the model.
//!
//! Choices where ECS leaves room:
//! - `fork`: the document describes the new process, as ECS process-start documents do: `process.pid` is
//!   the child (which inherits name, executable and ids), `process.parent.*` the forking process. The
//!   forker's own ancestry is not repeated (it is on the forker's own events).
//! - `exec`: a successful exec describes the new image (`process.executable` is the resolved `exe`, else
//!   the filename as passed; `process.args` the new argv). A failed or unconfirmed exec leaves the process
//!   as it was; the attempted filename and argv are in `auditloop.exec`.
//! - `exit`: `process.exit_code` when the process exited by itself; a fatal signal goes to
//!   `labels.exit_signal` (ECS has no field for it).
//! - `event.action` is the kind name, except for `file` and `net`, where it is the op (`rename`, `connect`).
//! - `loss` and `agent_stop` carry counters (`event.kind: metric`); `agent_start` describes the agent
//!   (`event.kind: state`). Neither kind has ECS categories.
//! - `setid` is `iam` + `process`/`change`; `config_change` is `creation` or `deletion` rather than
//!   `change` when the file is new or gone; its trigger is `event.reason`. `config_loaded` is
//!   `configuration`/`info`; `journal_recovered` is `file`/`change` of the cut segment.
//!
//! - Login identity: the audit login uid is `user.audit.id`/`user.audit.name` (as Auditbeat writes it),
//!   the audit session and terminal are labels, the process group and session leaders are
//!   `process.group_leader.pid`/`process.session_leader.pid`, and a process under sshd gets
//!   `process.entry_meta` (`type: sshd`, `source.ip`). An exec's working directory is
//!   `process.working_directory`, its parent's name and start come from its compact ancestry (the whole
//!   chain is in `auditloop.exec.ancestors`).
//!
//! File, net and process field choices are documented on `ecs_fields::put_file`, `ecs_fields::put_net`,
//! `ecs_fields::put_identity` and `ecs_fields::put_process`.

// The helpers live beside this file (not in a directory of their own) and are private to it.
#[path = "ecs_fields.rs"]
mod ecs_fields;

use auditloop_model::{Event, EventBody};
use serde_json::Value;

use ecs_fields::{
    Doc, Values, config_change_types, file_types, net_types, outcome, outcome_of_ret,
    put_config_change, put_config_loaded, put_exec, put_exit, put_file, put_fork, put_identity,
    put_journal_recovered, put_net, put_process, put_vendor,
};

/// The ECS version the documents follow (`ecs.version`).
pub const ECS_VERSION: &str = "8.11.0";

/// `event.module` of every document.
pub const MODULE: &str = "auditloop";

/// `event.dataset` of every document.
pub const DATASET: &str = "auditloop.events";

/// One ECS document for an event, as JSON. `host` is the host name/id to put in `host.name`.
///
/// Fields are nested objects (`{"process": {"pid": 1}}`), which Elasticsearch indexes the same as dotted
/// names.
pub fn to_ecs(event: &Event, host: &str) -> Value {
    let mut doc = Doc::default();
    let timestamp = event.time.to_string();
    doc.put("@timestamp", timestamp.as_str());
    doc.put("ecs.version", ECS_VERSION);
    doc.put_text("host.name", host);
    doc.put("event.sequence", event.seq);
    doc.put("event.module", MODULE);
    doc.put("event.dataset", DATASET);
    let (p, body) = (&event.process, &event.event);
    put_identity(&mut doc, p);
    // A fork document describes the child (see `put_fork`); every other one the event's process.
    if !matches!(body, EventBody::Fork(_)) {
        put_process(&mut doc, p);
    }
    let kind = event.kind().as_str();
    let (ecs_kind, action) = match body {
        EventBody::Loss(_) | EventBody::AgentStop(_) => ("metric", kind),
        EventBody::AgentStart(_) => ("state", kind),
        EventBody::File(f) => ("event", f.op.as_str()),
        EventBody::Net(n) => ("event", n.op.as_str()),
        EventBody::IoUring(u) => ("event", u.op.as_str()),
        EventBody::Exec(_)
        | EventBody::Fork(_)
        | EventBody::Exit(_)
        | EventBody::SetId(_)
        | EventBody::Ptrace(_)
        | EventBody::Kill(_)
        | EventBody::SetName(_)
        | EventBody::MemfdCreate(_)
        | EventBody::Syscall(_)
        | EventBody::ConfigChange(_)
        | EventBody::ConfigLoaded(_)
        | EventBody::JournalRecovered(_)
        | EventBody::Alert(_)
        | EventBody::Action(_)
        | EventBody::RulesLoaded(_)
        | EventBody::RulesRejected(_)
        | EventBody::Tamper(_)
        | EventBody::Hold(_)
        | EventBody::IoUringSetup(_) => ("event", kind),
    };
    // Categories, types and outcome; each arm also writes the kind's own ECS fields.
    let (category, types, result): (Values, Values, Option<&str>) = match body {
        EventBody::Exec(e) => {
            put_exec(&mut doc, &p.exe, e);
            (&["process"], &["start"], Some(outcome(e.ret, e.success)))
        }
        EventBody::Fork(f) => {
            put_fork(&mut doc, p, f);
            doc.put("process.start", timestamp.as_str());
            // The kernel reports a fork once the child exists.
            (&["process"], &["start"], Some("success"))
        }
        EventBody::Exit(x) => {
            put_exit(&mut doc, x);
            doc.put("process.end", timestamp.as_str());
            (&["process"], &["end"], None)
        }
        EventBody::Loss(_) | EventBody::AgentStop(_) => (&[], &[], None),
        EventBody::AgentStart(a) => {
            doc.put_text("agent.version", &a.version);
            (&[], &[], None)
        }
        EventBody::File(f) => {
            put_file(&mut doc, f);
            (&["file"], file_types(f), Some(outcome(f.ret, f.success)))
        }
        EventBody::SetId(s) => (
            &["iam", "process"],
            &["change"],
            Some(outcome(s.ret, s.success)),
        ),
        EventBody::Ptrace(t) => (&["process"], &["access"], Some(outcome(t.ret, t.success))),
        EventBody::Kill(k) => (&["process"], &["info"], Some(outcome(k.ret, k.success))),
        EventBody::SetName(s) => (&["process"], &["change"], Some(outcome_of_ret(s.ret))),
        EventBody::MemfdCreate(m) => (&["process"], &["info"], Some(outcome_of_ret(m.ret))),
        EventBody::Net(n) => {
            put_net(&mut doc, n);
            (&["network"], net_types(n), Some(outcome(n.ret, n.success)))
        }
        EventBody::Syscall(s) => (&["process"], &["info"], Some(outcome_of_ret(s.ret))),
        EventBody::Tamper(t) => {
            doc.put_text("event.reason", &t.detail);
            (&["intrusion_detection"], &["info"], None)
        }
        EventBody::IoUring(u) => {
            if !u.path.is_empty() {
                doc.put_path(&u.path);
            }
            let category: Values = if u.family.is_empty() {
                &["file"]
            } else {
                &["network"]
            };
            (
                category,
                &["info"],
                u.ret.map(|_| outcome(u.ret, u.success)),
            )
        }
        EventBody::IoUringSetup(_) => (&["process"], &["info"], None),
        EventBody::ConfigChange(c) => {
            put_config_change(&mut doc, c);
            (&["configuration", "file"], config_change_types(c), None)
        }
        EventBody::ConfigLoaded(c) => {
            put_config_loaded(&mut doc, c);
            (&["configuration"], &["info"], None)
        }
        EventBody::JournalRecovered(j) => {
            put_journal_recovered(&mut doc, j);
            (&["file"], &["change"], None)
        }
        // The agent's findings and rule bookkeeping have no ECS categories; they get the generic fields
        // and `auditloop.<kind>`.
        EventBody::Alert(_)
        | EventBody::Action(_)
        | EventBody::Hold(_)
        | EventBody::RulesLoaded(_)
        | EventBody::RulesRejected(_) => (&[], &[], None),
    };
    doc.put("event.kind", ecs_kind);
    if !category.is_empty() {
        doc.put("event.category", category.to_vec());
        doc.put("event.type", types.to_vec());
    }
    doc.put_text("event.action", action);
    if let Some(result) = result {
        doc.put("event.outcome", result);
    }
    put_vendor(&mut doc, event);
    doc.into_value()
}

#[cfg(test)]
mod tests {
    use auditloop_model::{
        AgentStart, Ancestor, ChangeTrigger, ConfigChange, ConfigLoaded, Exec, Exit, File, FileOp,
        Fork, JournalRecovered, Loss, LossStage, Net, NetOp, NetProtocol, Process, SetId, WallTime,
    };
    use serde_json::json;

    use super::*;

    const TIME: &str = "2023-11-14T22:13:20.000000000Z";

    fn process() -> Process {
        Process {
            pid: 100,
            tid: 101,
            ppid: 1,
            uid: 1000,
            gid: 1000,
            euid: 0,
            comm: "bash".into(),
            exe: "/usr/bin/bash".into(),
            cgroup_id: 77,
            container_id: Some("ab".repeat(32)),
            parent_exe: "/usr/lib/systemd/systemd".into(),
            parent_argv: vec!["/sbin/init".into(), "splash".into()],
            ..Process::default()
        }
    }

    fn ecs_of(process: Process, event: EventBody) -> Value {
        let time = WallTime(1_700_000_000_000_000_000);
        let event = Event {
            seq: 9,
            time,
            mono_ns: 5,
            process,
            event,
        };
        to_ecs(&event, "web-1")
    }

    fn ecs(body: EventBody) -> Value {
        ecs_of(process(), body)
    }

    /// Asserts each dotted ECS name in `expected` has its value there; `null` means the field is absent.
    pub(super) fn assert_fields(doc: &Value, expected: Value) {
        let Value::Object(expected) = expected else {
            panic!("not an object: {expected}")
        };
        for (name, want) in expected {
            let got = doc.pointer(&format!("/{}", name.replace('.', "/")));
            assert_eq!(got.unwrap_or(&Value::Null), &want, "{name} in {doc:#}");
        }
    }

    #[test]
    fn exec_success_is_process_start_with_envelope() {
        let mut p = process();
        p.exe = "/usr/bin/curl".into();
        let argv = vec!["curl".into(), "-s".into(), "http://x".into()];
        let exec = Exec {
            filename: "curl".into(),
            argv,
            ret: Some(0),
            success: true,
            ..Exec::default()
        };
        assert_fields(
            &ecs_of(p, EventBody::Exec(exec)),
            json!({
                "@timestamp": TIME, "ecs.version": "8.11.0", "host.name": "web-1",
                "event.sequence": 9, "event.module": "auditloop",
                "event.dataset": "auditloop.events",
                "event.kind": "event", "event.category": ["process"], "event.type": ["start"],
                "event.action": "exec", "event.outcome": "success",
                "process.pid": 100, "process.thread.id": 101, "process.parent.pid": 1,
                "process.name": "bash", "process.executable": "/usr/bin/curl",
                "process.args": ["curl", "-s", "http://x"], "process.args_count": 3,
                "process.command_line": "curl -s http://x",
                "process.parent.executable": "/usr/lib/systemd/systemd",
                "process.parent.args": ["/sbin/init", "splash"], "process.parent.args_count": 2,
                "user.id": "1000", "user.effective.id": "0", "group.id": "1000",
                "container.id": "ab".repeat(32), "labels.cgroup_id": "77",
                "auditloop.exec.filename": "curl", "auditloop.exec.success": true,
                "auditloop.mono_ns": 5,
            }),
        );
    }

    #[test]
    fn failed_or_unconfirmed_exec_keeps_the_old_image() {
        let failed = Exec {
            filename: "/tmp/x".into(),
            argv: vec!["x".into()],
            ret: Some(-13),
            ..Exec::default()
        };
        assert_fields(
            &ecs(EventBody::Exec(failed)),
            json!({
                "event.outcome": "failure", "process.executable": "/usr/bin/bash",
                "process.args": null, "auditloop.exec.filename": "/tmp/x",
                "auditloop.exec.argv": ["x"],
            }),
        );
        let lost = ecs(EventBody::Exec(Exec::default()));
        assert_fields(&lost, json!({"event.outcome": "unknown"}));
    }

    #[test]
    fn fork_describes_the_child() {
        let fork = Fork {
            child_pid: 200,
            ..Fork::default()
        };
        assert_fields(
            &ecs(EventBody::Fork(fork)),
            json!({
                "event.category": ["process"], "event.type": ["start"], "event.action": "fork",
                "process.pid": 200, "process.name": "bash", "process.parent.pid": 100,
                "process.parent.thread.id": 101, "process.parent.name": "bash",
                "process.parent.executable": "/usr/bin/bash", "process.parent.args": null,
                "process.start": TIME, "user.id": "1000", "auditloop.fork.child_pid": 200,
            }),
        );
    }

    #[test]
    fn exit_is_process_end() {
        let exited = Exit {
            code: Some(3),
            signal: None,
        };
        assert_fields(
            &ecs(EventBody::Exit(exited)),
            json!({
                "event.type": ["end"], "process.exit_code": 3, "process.end": TIME,
                "event.outcome": null, "labels.exit_signal": null,
            }),
        );
        let killed = Exit {
            code: None,
            signal: Some(9),
        };
        let killed = ecs(EventBody::Exit(killed));
        let want =
            json!({"process.exit_code": null, "labels.exit_signal": "9", "process.end": TIME});
        assert_fields(&killed, want);
    }

    #[test]
    fn file_and_net_ops_take_their_op_as_action() {
        let open = File {
            op: FileOp::Open,
            path: "/etc/cron.d/job".into(),
            flags: 0o1101, // O_WRONLY | O_CREAT | O_TRUNC
            mode: 0o644,
            ret: Some(3),
            success: true,
            ..File::default()
        };
        assert_fields(
            &ecs(EventBody::File(open)),
            json!({
                "event.category": ["file"], "event.type": ["creation"], "event.action": "open",
                "event.outcome": "success", "file.path": "/etc/cron.d/job", "file.name": "job",
                "file.directory": "/etc/cron.d", "file.mode": "0644",
                "auditloop.file.flags": 0o1101,
            }),
        );
        let connect = Net {
            op: NetOp::Connect,
            family: "inet".into(),
            address: "10.0.0.5".into(),
            port: 443,
            ret: Some(-115),
            success: true,
            ..Net::default()
        };
        assert_fields(
            &ecs(EventBody::Net(connect)),
            json!({
                "event.category": ["network"], "event.type": ["connection", "start"],
                "event.action": "connect", "event.outcome": "success", "destination.ip": "10.0.0.5",
                "destination.port": 443, "network.type": "ipv4", "auditloop.net.ret": -115,
            }),
        );
    }

    #[test]
    fn both_ends_of_a_connection_go_to_source_and_destination() {
        let ends = |op: NetOp| Net {
            op,
            family: "inet".into(),
            address: "192.0.2.9".into(),
            port: 22,
            ret: Some(0),
            success: true,
            protocol: NetProtocol::Tcp,
            local_address: "10.0.0.1".into(),
            local_port: 40000,
            remote_address: "192.0.2.9".into(),
            remote_port: 22,
            ..Net::default()
        };
        assert_fields(
            &ecs(EventBody::Net(ends(NetOp::Connect))),
            json!({
                "source.ip": "10.0.0.1", "source.port": 40000, "destination.ip": "192.0.2.9",
                "destination.port": 22, "network.transport": "tcp", "network.direction": "egress",
            }),
        );
        assert_fields(
            &ecs(EventBody::Net(ends(NetOp::Accept))),
            json!({
                "source.ip": "192.0.2.9", "source.port": 22, "destination.ip": "10.0.0.1",
                "destination.port": 40000, "network.direction": "ingress",
            }),
        );
        let unix = Net {
            op: NetOp::Connect,
            family: "unix".into(),
            address: "docker.sock".into(),
            protocol: NetProtocol::Unix,
            remote_address: "docker.sock".into(),
            path: "/run/docker.sock".into(),
            success: true,
            ..Net::default()
        };
        assert_fields(
            &ecs(EventBody::Net(unix)),
            json!({
                "destination.address": "docker.sock", "destination.ip": null, "source": null,
                "labels.unix_socket_path": "/run/docker.sock", "network": null,
            }),
        );
    }

    #[test]
    fn login_identity_leaders_and_lineage() {
        let mut p = process();
        p.start = Some(WallTime(1_699_999_999_000_000_000));
        p.loginuid = Some(1000);
        p.loginname = "alice".into();
        p.sessionid = Some(4);
        p.tty = "pts/1".into();
        p.pgid = Some(100);
        p.sid = Some(90);
        p.ssh_client_address = "198.51.100.7".into();
        p.ssh_client_port = Some(50022);
        let exec = Exec {
            filename: "/usr/bin/id".into(),
            argv: vec!["id".into()],
            ret: Some(0),
            success: true,
            cwd: "/home/alice".into(),
            ancestors: vec![Ancestor {
                pid: 1,
                start: Some(WallTime(1_600_000_000_000_000_000)),
                exe: "/usr/sbin/sshd".into(),
                comm: "sshd".into(),
                ..Ancestor::default()
            }],
            ..Exec::default()
        };
        assert_fields(
            &ecs_of(p.clone(), EventBody::Exec(exec)),
            json!({
                "user.id": "1000", "user.effective.id": "0", "user.audit.id": "1000",
                "user.audit.name": "alice", "labels.audit_session_id": "4", "labels.tty": "pts/1",
                "process.start": "2023-11-14T22:13:19.000000000Z",
                "process.working_directory": "/home/alice",
                "process.parent.name": "sshd", "process.parent.start": "2020-09-13T12:26:40.000000000Z",
                "process.group_leader.pid": 100, "process.group_leader.same_as_process": true,
                "process.session_leader.pid": 90, "process.session_leader.same_as_process": false,
                "process.entry_meta.type": "sshd", "process.entry_meta.source.ip": "198.51.100.7",
                "labels.ssh_client_port": "50022",
            }),
        );
        // A process without a login has none of it.
        assert_fields(
            &ecs(EventBody::Exit(Exit::default())),
            json!({
                "user.audit": null, "labels.tty": null, "process.entry_meta": null,
                "process.group_leader": null, "process.working_directory": null,
            }),
        );
    }

    #[test]
    fn config_change_carries_hash_and_diff() {
        let change = ConfigChange {
            path: "/etc/ssh/sshd_config".into(),
            trigger: ChangeTrigger::CloseWrite,
            old_sha256: Some("aa".repeat(32)),
            new_sha256: Some("bb".repeat(32)),
            size: 3300,
            mode: 0o100_600,
            diff: Some("-PermitRootLogin no\n+PermitRootLogin yes\n".into()),
            ..ConfigChange::default()
        };
        assert_fields(
            &ecs(EventBody::ConfigChange(change)),
            json!({
                "event.kind": "event", "event.category": ["configuration", "file"],
                "event.type": ["change"], "event.action": "config_change",
                "event.reason": "close_write", "event.outcome": null,
                "file.path": "/etc/ssh/sshd_config", "file.name": "sshd_config",
                "file.hash.sha256": "bb".repeat(32), "file.size": 3300, "file.mode": "0600",
                "file.type": "file", "file.uid": "0",
                "auditloop.config_change.old_sha256": "aa".repeat(32),
                "auditloop.config_change.diff": "-PermitRootLogin no\n+PermitRootLogin yes\n",
            }),
        );
        let gone = ConfigChange {
            path: "/etc/sudoers.d/x".into(),
            old_sha256: Some("aa".repeat(32)),
            ..ConfigChange::default()
        };
        let gone = ecs(EventBody::ConfigChange(gone));
        let want = json!({"event.type": ["deletion"], "file.hash": null, "file.size": null});
        assert_fields(&gone, want);
        let new = ConfigChange {
            new_sha256: Some("cc".repeat(32)),
            ..ConfigChange::default()
        };
        let new = ecs(EventBody::ConfigChange(new));
        assert_fields(&new, json!({"event.type": ["creation"]}));
    }

    #[test]
    fn loss_and_agent_events_have_no_categories() {
        let loss = Loss {
            stage: LossStage::Decode,
            record: "fork".into(),
            count: 4,
            total: 10,
        };
        assert_fields(
            &ecs(EventBody::Loss(loss)),
            json!({
                "event.kind": "metric", "event.action": "loss", "event.category": null,
                "event.type": null, "event.outcome": null, "auditloop.loss.count": 4,
                "auditloop.loss.total": 10, "auditloop.loss.stage": "decode",
            }),
        );
        let start = AgentStart {
            version: "0.3.0".into(),
            ..AgentStart::default()
        };
        let start = ecs(EventBody::AgentStart(start));
        let want =
            json!({"event.kind": "state", "event.action": "agent_start", "agent.version": "0.3.0"});
        assert_fields(&start, want);
    }

    #[test]
    fn setid_is_an_iam_change() {
        let setid = SetId {
            syscall: "setresuid".into(),
            ids: vec![0, 0, u32::MAX],
            ret: Some(-1),
            success: false,
        };
        assert_fields(
            &ecs(EventBody::SetId(setid)),
            json!({
                "event.category": ["iam", "process"], "event.type": ["change"],
                "event.action": "setid", "event.outcome": "failure",
                "auditloop.setid.syscall": "setresuid", "auditloop.setid.ids": [0, 0, u32::MAX],
            }),
        );
    }

    #[test]
    fn agent_config_and_journal_events() {
        let loaded = ConfigLoaded {
            path: "/etc/auditloop.yaml".into(),
            sha256: Some("dd".repeat(32)),
            reason: "sighup".into(),
        };
        assert_fields(
            &ecs(EventBody::ConfigLoaded(loaded)),
            json!({
                "event.kind": "event", "event.category": ["configuration"], "event.type": ["info"],
                "event.action": "config_loaded", "event.reason": "sighup",
                "file.path": "/etc/auditloop.yaml", "file.hash.sha256": "dd".repeat(32),
            }),
        );
        let recovered = JournalRecovered {
            segment: "/var/lib/auditloop/journal/00000001.seg".into(),
            bytes_cut: 17,
            reason: "bad checksum".into(),
            ..JournalRecovered::default()
        };
        assert_fields(
            &ecs(EventBody::JournalRecovered(recovered)),
            json!({
                "event.category": ["file"], "event.type": ["change"],
                "event.reason": "bad checksum", "file.name": "00000001.seg",
                "auditloop.journal_recovered.bytes_cut": 17,
            }),
        );
    }

    #[test]
    fn empty_fields_are_left_out() {
        let event = Event {
            seq: 0,
            time: WallTime(0),
            mono_ns: 0,
            process: Process::default(),
            event: EventBody::Loss(Loss::default()),
        };
        assert_fields(
            &to_ecs(&event, ""),
            json!({
                "host": null, "process.name": null, "process.executable": null,
                "process.parent": null, "container": null, "labels": null, "process.pid": 0,
                "user.id": "0",
            }),
        );
    }
}
