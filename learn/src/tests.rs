//! The learner, the proposal and the differ through the crate's API: a proposal compiles, stays silent on
//! the window it was learned from, and fires on each kind of departure; the differ counts exactly.

use auditloop_model::{Event, EventBody, Exec, File, FileOp, Net, NetOp, Process, WallTime};
use auditloop_rules::RuleSet;

use crate::{Differ, Learner, Options, Proposal, RuleStatus, propose};

fn at(day: u64) -> WallTime {
    WallTime(1_800_000_000_000_000_000 + day * 86_400_000_000_000)
}

fn proc(exe: &str, parent: &str, uid: u32) -> Process {
    Process {
        pid: 500,
        tid: 500,
        ppid: 400,
        uid,
        comm: exe
            .rsplit('/')
            .next()
            .unwrap_or(exe)
            .chars()
            .take(15)
            .collect(),
        exe: exe.into(),
        parent_exe: parent.into(),
        ..Process::default()
    }
}

fn ev(seq: u64, day: u64, process: Process, body: EventBody) -> Event {
    Event {
        seq,
        time: at(day),
        mono_ns: seq,
        process,
        event: body,
    }
}

fn exec(seq: u64, day: u64, parent: &str, program: &str, uid: u32) -> Event {
    let body = EventBody::Exec(Exec {
        filename: program.into(),
        argv: vec![program.into()],
        success: true,
        ret: Some(0),
        ..Exec::default()
    });
    ev(seq, day, proc(program, parent, uid), body)
}

fn file(seq: u64, day: u64, writer: &str, op: FileOp, path: &str) -> Event {
    let body = EventBody::File(File {
        op,
        path: path.into(),
        success: true,
        ..File::default()
    });
    ev(seq, day, proc(writer, "/usr/lib/systemd/systemd", 0), body)
}

fn rename(seq: u64, day: u64, writer: &str, from: &str, to: &str) -> Event {
    let body = EventBody::File(File {
        op: FileOp::Rename,
        path: from.into(),
        target: to.into(),
        success: true,
        ..File::default()
    });
    ev(seq, day, proc(writer, "/usr/lib/systemd/systemd", 0), body)
}

fn net(seq: u64, day: u64, exe: &str, op: NetOp, address: &str, port: u16) -> Event {
    let body = EventBody::Net(Net {
        op,
        family: "inet".into(),
        address: address.into(),
        port,
        success: true,
        ..Net::default()
    });
    ev(seq, day, proc(exe, "/usr/lib/systemd/systemd", 33), body)
}

const WEBD: &str = "/usr/sbin/webd";

/// A normal week: a server with its children, listener and upstream; a config writer; a shadow reader.
fn week() -> Vec<Event> {
    let mut out = Vec::new();
    let mut seq = 0;
    let mut push = |e: Event| out.push(e);
    for day in 0..7 {
        seq += 10;
        push(net(seq, day, WEBD, NetOp::Listen, "0.0.0.0", 8080));
        push(net(seq + 1, day, WEBD, NetOp::Accept, "10.0.0.9", 40000));
        push(exec(seq + 2, day, WEBD, "/usr/bin/date", 33));
        push(exec(seq + 3, day, WEBD, "/usr/bin/gzip", 33));
        push(net(seq + 4, day, WEBD, NetOp::Connect, "10.0.0.5", 5432));
        push(file(
            seq + 5,
            day,
            "/usr/bin/deployer",
            FileOp::Open,
            "/etc/webd.conf",
        ));
        push(rename(
            seq + 6,
            day,
            "/usr/bin/deployer",
            "/etc/webd.conf.new",
            "/etc/webd.conf",
        ));
        push(file(
            seq + 7,
            day,
            "/usr/sbin/unix_chkpwd",
            FileOp::Read,
            "/etc/shadow",
        ));
        push(exec(
            seq + 8,
            day,
            "/usr/bin/bash",
            &format!("/usr/bin/tool{day}"),
            1000,
        ));
        push(file(
            seq + 9,
            day,
            "/usr/bin/vim",
            FileOp::Open,
            "/home/u/notes.txt",
        ));
    }
    out
}

fn learn(events: &[Event]) -> Proposal {
    let options = Options::default();
    let mut learner = Learner::new(options.clone());
    for e in events {
        learner.observe(e);
    }
    propose(&learner.finish(), &options)
}

fn fired(set: &RuleSet, events: &[Event]) -> Vec<(u64, String)> {
    let mut state = set.new_state();
    let mut out = Vec::new();
    for e in events {
        for rule in set.fire(&mut state, e) {
            out.push((e.seq, rule.name().to_owned()));
        }
    }
    out
}

#[test]
fn a_proposal_compiles_and_the_window_raises_nothing() {
    let events = week();
    let proposal = learn(&events);
    let set = proposal
        .compile("learned.yaml")
        .unwrap_or_else(|e| panic!("{e}\n{}", proposal.yaml));
    assert!(set.rules().len() >= 6, "{}", proposal.yaml);
    assert_eq!(
        fired(&set, &events),
        Vec::<(u64, String)>::new(),
        "{}",
        proposal.yaml
    );
    // Support and first/last seen are comments; lists are editable.
    assert!(
        proposal.yaml.contains("\"/usr/bin/date\"  # 7 times, "),
        "{}",
        proposal.yaml
    );
    assert!(
        proposal
            .yaml
            .contains("- list: learned_exec_under_webd_programs")
    );
    // The interactive shell is left out, with the reason.
    let bash = proposal
        .skipped
        .iter()
        .find(|s| s.subject == "/usr/bin/bash");
    assert!(
        bash.is_some_and(|s| s.why.contains("interactive shell")),
        "{:?}",
        proposal.skipped
    );
    // Every rule is alert-only.
    for rule in set.rules() {
        assert_eq!(
            rule.actions(),
            &[auditloop_rules::Action::Alert],
            "{}",
            rule.name()
        );
    }
}

#[test]
fn departures_fire_the_rule_that_names_them() {
    let events = week();
    let set = learn(&events).compile("learned.yaml").unwrap();
    let mut cases: Vec<(Event, &str)> = vec![
        (
            exec(1000, 8, WEBD, "/usr/bin/sh", 33),
            "learned_exec_under_webd",
        ),
        (
            exec(1001, 8, WEBD, "/usr/bin/date", 0),
            "learned_exec_under_webd",
        ),
        (
            net(1002, 8, "/usr/bin/nc", NetOp::Listen, "0.0.0.0", 4444),
            "learned_new_listener",
        ),
        (
            net(1003, 8, WEBD, NetOp::Listen, "0.0.0.0", 9090),
            "learned_listen_port_webd",
        ),
        (
            net(1004, 8, WEBD, NetOp::Connect, "203.0.113.7", 443),
            "learned_server_destination_webd",
        ),
        (
            file(1005, 8, "/usr/bin/sh", FileOp::Open, "/etc/webd.conf"),
            "learned_config_writer_webd_conf",
        ),
        (
            rename(1006, 8, "/usr/bin/mv", "/tmp/x", "/etc/webd.conf"),
            "learned_config_writer_webd_conf",
        ),
        (
            file(1007, 8, "/usr/bin/sh", FileOp::Open, "/etc/cron.d/evil"),
            "learned_new_config_write",
        ),
        (
            file(1008, 8, "/usr/bin/cat", FileOp::Read, "/etc/shadow"),
            "learned_sensitive_reader_shadow",
        ),
    ];
    let mut as_user = file(
        1009,
        8,
        "/usr/sbin/unix_chkpwd",
        FileOp::Read,
        "/etc/shadow",
    );
    as_user.process.uid = 1000;
    cases.push((as_user, "learned_sensitive_reader_shadow"));
    for (event, rule) in cases {
        let got = fired(&set, std::slice::from_ref(&event));
        assert_eq!(
            got.iter().map(|(_, r)| r.as_str()).collect::<Vec<_>>(),
            vec![rule],
            "{event:?}"
        );
    }
    // A known writer of a config path, a file outside the config paths: quiet.
    let quiet = [
        file(1100, 9, "/usr/bin/deployer", FileOp::Open, "/etc/webd.conf"),
        file(1101, 9, "/usr/bin/sh", FileOp::Open, "/home/u/other.txt"),
        exec(1102, 9, "/usr/bin/bash", "/usr/bin/brand-new", 1000),
    ];
    assert!(fired(&set, &quiet).is_empty());
}

#[test]
fn an_unknown_writer_is_not_judged_and_is_said_so() {
    let mut events = week();
    events.push(file(5000, 3, "", FileOp::Open, "/etc/webd.conf"));
    let proposal = learn(&events);
    let set = proposal.compile("learned.yaml").unwrap();
    assert!(fired(&set, &events).is_empty(), "{}", proposal.yaml);
    assert!(proposal.yaml.contains("proc.exe exists"));
}

#[test]
fn hostile_values_stay_data() {
    // Values a program controls (its path, a file name) must not break out of YAML or a condition.
    let evil = "/tmp/a\"b'c\n- rule: pwned\n  condition: evt.kind = exec #";
    let mut events = week();
    for day in 0..3 {
        events.push(file(6000 + day, day, evil, FileOp::Open, "/etc/webd.conf"));
        events.push(exec(6100 + day, day, WEBD, evil, 33));
    }
    let proposal = learn(&events);
    let set = proposal
        .compile("learned.yaml")
        .unwrap_or_else(|e| panic!("{e}\n{}", proposal.yaml));
    assert!(set.rules().iter().all(|r| r.name().starts_with("learned_")));
    assert!(fired(&set, &events).is_empty(), "{}", proposal.yaml);
}

#[test]
fn an_empty_window_proposes_rules_that_still_compile() {
    let proposal = learn(&[]);
    let set = proposal
        .compile("learned.yaml")
        .unwrap_or_else(|e| panic!("{e}\n{}", proposal.yaml));
    // With nothing normal, any listener and any config write is new.
    let e = net(1, 0, "/usr/bin/nc", NetOp::Listen, "0.0.0.0", 4444);
    assert_eq!(fired(&set, &[e]).len(), 1);
}

#[test]
fn a_fleet_baseline_is_the_union_of_its_hosts() {
    let week = week();
    let (a, b) = week.split_at(week.len() / 2);
    let options = Options::default();
    let mut one = Learner::new(options.clone());
    a.iter().for_each(|e| one.observe(e));
    let mut two = Learner::new(options.clone());
    b.iter().for_each(|e| two.observe(e));
    let mut merged = one.finish();
    merged.merge(&two.finish());
    let mut whole = Learner::new(options.clone());
    week.iter().for_each(|e| whole.observe(e));
    assert_eq!(merged, whole.finish());
}

const OLD: &str = r#"
- rule: shells
  condition: evt.kind = exec and exec.filename = /usr/bin/sh
  output: shell
- rule: dates
  condition: evt.kind = exec and exec.filename = /usr/bin/date
  output: date
- rule: gone
  condition: evt.kind = exec and exec.filename = /usr/bin/gzip
  output: gzip
"#;

const NEW: &str = r#"
- rule: shells
  condition: evt.kind = exec and exec.filename in (/usr/bin/sh, /usr/bin/date)
  output: shell
- rule: dates
  condition: evt.kind = exec and exec.filename = /usr/bin/date and user.uid = 0
  output: date
- rule: fresh
  condition: evt.kind = net and net.op = listen
  output: "listen %net.port"
"#;

#[test]
fn a_diff_counts_added_and_removed_alerts_exactly() {
    let old = RuleSet::parse("old.yaml", OLD).unwrap();
    let new = RuleSet::parse("new.yaml", NEW).unwrap();
    let mut events = week();
    events.push(exec(900, 7, WEBD, "/usr/bin/date", 0));
    events.push(exec(901, 7, WEBD, "/usr/bin/sh", 0));
    let mut differ = Differ::new(&old, &new, 2);
    for e in &events {
        differ.observe("", e);
    }
    let report = differ.finish();
    let row = |name: &str| report.rules.iter().find(|r| r.rule == name).unwrap();
    // By hand: 7 daily dates + 1 root date = 8 dates; 7 gzips; 7 listens; 1 sh.
    // shells: old fires on the sh (1), new on the sh and the 8 dates: +8, 1 unchanged.
    assert_eq!(
        (
            row("shells").added,
            row("shells").removed,
            row("shells").unchanged
        ),
        (8, 0, 1)
    );
    // dates: old fires on 8 dates, new only on the root one: -7, 1 unchanged.
    assert_eq!(
        (
            row("dates").added,
            row("dates").removed,
            row("dates").unchanged
        ),
        (0, 7, 1)
    );
    assert_eq!(
        (row("gone").status, row("gone").removed),
        (RuleStatus::Removed, 7)
    );
    assert_eq!(
        (row("fresh").status, row("fresh").added),
        (RuleStatus::Added, 7)
    );
    assert_eq!(
        (report.added, report.removed, report.unchanged),
        (15, 14, 2)
    );
    assert_eq!(row("fresh").added_examples.len(), 2);
    assert_eq!(row("fresh").added_examples[0].output, "listen 8080");
    assert_eq!(report.rules[0].rule, "shells", "most added first");
    let text = report.text();
    assert!(text.contains("      +8       -0  shells"), "{text}");
    // Identical sets: nothing changes.
    let mut same = Differ::new(&old, &old, 2);
    events.iter().for_each(|e| same.observe("", e));
    let same = same.finish();
    assert_eq!((same.added, same.removed, same.rules.len()), (0, 0, 0));
}
