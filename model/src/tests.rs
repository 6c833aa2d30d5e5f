//! Round trips of the model through JSON, and kind names.

use crate::{
    ActionTaken, AgentStart, AgentStop, Alert, ConfigChange, ConfigLoaded, EVENT_KIND_COUNT, Event,
    EventBody, EventKind, Exec, Exit, File, Fork, JournalRecovered, Kill, Loss, MemfdCreate, Net,
    Process, Ptrace, RawSyscall, RulesLoaded, RulesRejected, SetId, SetName, WallTime,
};

fn sample() -> Event {
    Event {
        seq: 3,
        time: WallTime(1_700_000_000_123_456_789),
        mono_ns: 42,
        process: Process {
            pid: 1,
            tid: 1,
            ppid: 0,
            uid: 0,
            gid: 0,
            comm: "true".into(),
            ..Process::default()
        },
        event: EventBody::Exec(Exec {
            filename: "/bin/true".into(),
            argv: vec!["true".into(), "x".into()],
            ret: Some(0),
            success: true,
            dirfd: -100,
            ..Exec::default()
        }),
    }
}

/// A default body of `kind` (exhaustive: a new kind must be added here, and is then tested below).
fn body_of(kind: EventKind) -> EventBody {
    match kind {
        EventKind::Exec => EventBody::Exec(Exec::default()),
        EventKind::Fork => EventBody::Fork(Fork::default()),
        EventKind::Exit => EventBody::Exit(Exit::default()),
        EventKind::Loss => EventBody::Loss(Loss::default()),
        EventKind::AgentStart => EventBody::AgentStart(AgentStart::default()),
        EventKind::AgentStop => EventBody::AgentStop(AgentStop::default()),
        EventKind::File => EventBody::File(File::default()),
        EventKind::SetId => EventBody::SetId(SetId::default()),
        EventKind::Ptrace => EventBody::Ptrace(Ptrace::default()),
        EventKind::Kill => EventBody::Kill(Kill::default()),
        EventKind::SetName => EventBody::SetName(SetName::default()),
        EventKind::MemfdCreate => EventBody::MemfdCreate(MemfdCreate::default()),
        EventKind::Net => EventBody::Net(Net::default()),
        EventKind::Syscall => EventBody::Syscall(RawSyscall::default()),
        EventKind::ConfigChange => EventBody::ConfigChange(ConfigChange::default()),
        EventKind::ConfigLoaded => EventBody::ConfigLoaded(ConfigLoaded::default()),
        EventKind::JournalRecovered => EventBody::JournalRecovered(JournalRecovered::default()),
        EventKind::Alert => EventBody::Alert(Alert::default()),
        EventKind::Action => EventBody::Action(ActionTaken::default()),
        EventKind::RulesLoaded => EventBody::RulesLoaded(RulesLoaded::default()),
        EventKind::RulesRejected => EventBody::RulesRejected(RulesRejected::default()),
        EventKind::IoUring => EventBody::IoUring(crate::IoUring::default()),
        EventKind::IoUringSetup => EventBody::IoUringSetup(crate::IoUringSetup::default()),
        EventKind::Tamper => EventBody::Tamper(crate::Tamper::default()),
        EventKind::Hold => EventBody::Hold(crate::Hold::default()),
    }
}

#[test]
fn kind_names_are_the_serialized_tags() {
    let mut names = Vec::new();
    for kind in EventKind::all() {
        let body = body_of(kind);
        assert_eq!(body.kind(), kind);
        let value = serde_json::to_value(&body).unwrap();
        let tag = value
            .as_object()
            .and_then(|o| o.keys().next().cloned())
            .unwrap();
        assert_eq!(
            tag,
            kind.as_str(),
            "the kind's name and the JSON key must agree"
        );
        assert_eq!(EventKind::parse(&tag), Some(kind));
        assert_eq!(serde_json::to_value(kind).unwrap(), tag.as_str());
        names.push(tag);
    }
    assert_eq!(names.len(), EVENT_KIND_COUNT);
    assert!(names.contains(&"setid".to_owned()) && names.contains(&"config_change".to_owned()));
}

#[test]
fn json_round_trip_and_shape() {
    let ev = sample();
    let text = serde_json::to_string(&ev).unwrap();
    assert!(
        text.contains(r#""time":"2023-11-14T22:13:20.123456789Z""#),
        "{text}"
    );
    assert!(
        text.contains(r#""event":{"exec":{"filename":"/bin/true""#),
        "{text}"
    );
    let back: Event = serde_json::from_str(&text).unwrap();
    assert_eq!(back, ev);
    assert_eq!(back.kind(), EventKind::Exec);
}

#[test]
fn context_fields_round_trip_and_the_lineage_stays_in_memory() {
    use std::sync::Arc;

    use crate::{Ancestor, Lineage, NetOp, NetProtocol};
    let parent = Ancestor {
        pid: 7,
        start: Some(WallTime(5)),
        exe: "/usr/sbin/nginx".into(),
        comm: "nginx".into(),
        argv: vec!["nginx: worker".into()],
        unknown: false,
    };
    let mut ev = sample();
    ev.process.start = Some(WallTime(9));
    ev.process.loginuid = Some(1000);
    ev.process.loginname = "alice".into();
    ev.process.sessionid = Some(3);
    ev.process.tty = "pts/1".into();
    ev.process.ssh_client_address = "192.0.2.4".into();
    ev.process.ssh_client_port = Some(50022);
    let EventBody::Exec(exec) = &mut ev.event else {
        unreachable!()
    };
    exec.cwd = "/srv".into();
    exec.ancestors = vec![Ancestor {
        argv: Vec::new(),
        ..parent.clone()
    }];
    let journaled = ev.clone();
    ev.process.lineage = Lineage {
        ancestors: Arc::from(vec![Arc::new(parent)]),
        cwd: Some(Arc::from("/srv")),
    };
    let text = serde_json::to_string(&ev).unwrap();
    assert!(
        !text.contains("nginx: worker"),
        "lineage is not serialized: {text}"
    );
    assert!(text.contains(r#""loginuid":1000"#), "{text}");
    let back: Event = serde_json::from_str(&text).unwrap();
    assert_eq!(back, journaled, "everything but the lineage round-trips");
    let bytes = bincode::serde::encode_to_vec(&ev, bincode::config::standard()).unwrap();
    let (back, _): (Event, usize) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
    assert_eq!(back, journaled);

    let net = Net {
        op: NetOp::Accept,
        protocol: NetProtocol::Tcp,
        local_address: "127.0.0.1".into(),
        local_port: 8080,
        remote_address: "127.0.0.1".into(),
        remote_port: 40000,
        ..Net::default()
    };
    let value = serde_json::to_value(EventBody::Net(net)).unwrap();
    assert_eq!(value["net"]["protocol"], "tcp");
    assert_eq!(value["net"]["local_port"], 8080);
}
