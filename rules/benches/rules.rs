//! Rule evaluation throughput on this machine: events per second through the shipped default rules and
//! through 500 generated rules, on a mix of exec, file and network events.
//! Run with `cargo xtask bench rules` (or `cargo bench -p auditloop-rules --bench rules`).
#![expect(clippy::unwrap_used, reason = "a benchmark aborts on any error")]

use std::time::Instant;

use auditloop_model::{self as model, Event, EventBody, Process, WallTime};
use auditloop_rules::RuleSet;

const EVENTS: usize = 300_000;

fn process(comm: &str, exe: &str) -> Process {
    Process {
        pid: 4242,
        tid: 4242,
        ppid: 1,
        uid: 1000,
        comm: comm.into(),
        exe: exe.into(),
        parent_exe: "/usr/sbin/sshd".into(),
        parent_argv: vec!["sshd".into()],
        ..Process::default()
    }
}

fn events() -> Vec<Event> {
    let exec = EventBody::Exec(model::Exec {
        filename: "/usr/bin/curl".into(),
        argv: vec!["curl".into(), "-s".into(), "https://example.invalid".into()],
        ret: Some(0),
        success: true,
        ..model::Exec::default()
    });
    let file = EventBody::File(model::File {
        op: model::FileOp::Open,
        syscall: "openat".into(),
        path: "/home/user/.cache/app/data.bin".into(),
        flags: 0o1101,
        ret: Some(3),
        success: true,
        ..model::File::default()
    });
    let net = EventBody::Net(model::Net {
        op: model::NetOp::Connect,
        family: "inet".into(),
        address: "10.1.2.3".into(),
        port: 443,
        ret: Some(0),
        success: true,
        ..model::Net::default()
    });
    [
        (exec, "curl", "/usr/bin/curl"),
        (file, "app", "/opt/app/bin/app"),
        (net, "python3", "/usr/bin/python3"),
    ]
    .into_iter()
    .map(|(body, comm, exe)| Event {
        seq: 1,
        time: WallTime(1_700_000_000_000_000_000),
        mono_ns: 1,
        process: process(comm, exe),
        event: body,
    })
    .collect()
}

fn generated(n: usize) -> String {
    let mut text = String::new();
    for i in 0..n {
        let condition = match i % 4 {
            0 => format!(
                "evt.kind = exec and exec.filename startswith /opt/tool{i}/ and user.uid != 0"
            ),
            1 => format!(
                "evt.kind = file and file.op in (open, rename) and file.path glob \"/srv/app{i}/**\""
            ),
            2 => format!(
                "evt.kind = net and net.op = connect and net.port = {} and proc.name in (nc, socat, bash)",
                1000 + i
            ),
            _ => format!(
                "evt.kind = exec and proc.pname = svc{i} and proc.cmdline contains \"--flag-{i}\""
            ),
        };
        text.push_str(&format!("- rule: r{i}\n  desc: generated\n  condition: {condition}\n  output: \"%proc.name %evt.kind\"\n"));
    }
    text
}

fn measure(name: &str, set: &RuleSet, events: &[Event]) {
    let started = Instant::now();
    let mut matched = 0usize;
    for i in 0..EVENTS {
        matched += set.matches(&events[i % events.len()]).count();
    }
    let rate = EVENTS as f64 / started.elapsed().as_secs_f64();
    println!(
        "  {name:<28} {:>4} rules  {rate:>12.0} events/s  ({matched} matches)",
        set.rules().len()
    );
}

fn main() {
    let events = events();
    let default = RuleSet::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/default.yaml"
    )))
    .unwrap();
    let many = RuleSet::parse("generated.yaml", &generated(500)).unwrap();
    println!("rule evaluation (one core, exec/file/net mix):");
    measure("default rules", &default, &events);
    measure("500 generated rules", &many, &events);
}
