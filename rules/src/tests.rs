//! Tests of the whole rules stage through its public API: operators, precedence, lists and macros, absent
//! fields, output rendering, error messages with exact positions, and a representative rules file.

use std::collections::HashSet;

use auditloop_model::{
    ChangeTrigger, ConfigChange, Event, EventBody, EventKind, Exec, File, FileOp, Fork, Net,
    Process, SetId, WallTime,
};

use crate::{Action, ExecMatch, FileMatch, RuleErrors, RuleSet, Severity};

pub(super) fn process() -> Process {
    Process {
        pid: 100,
        tid: 101,
        ppid: 1,
        uid: 1000,
        gid: 1000,
        comm: "bash".into(),
        euid: 1000,
        exe: "/usr/bin/bash".into(),
        cgroup_id: 7,
        container_id: None,
        parent_exe: "/usr/sbin/nginx".into(),
        parent_argv: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
        ..Process::default()
    }
}

pub(super) fn event(body: EventBody) -> Event {
    Event {
        seq: 42,
        time: WallTime(1_700_000_000_000_000_000),
        mono_ns: 1,
        process: process(),
        event: body,
    }
}

pub(super) fn exec(filename: &str, argv: &[&str]) -> Event {
    let mut ev = event(EventBody::Exec(Exec {
        filename: filename.into(),
        argv: argv.iter().map(|a| a.to_string()).collect(),
        success: true,
        ret: Some(0),
        ..Exec::default()
    }));
    ev.process.exe = filename.into();
    ev.process.comm = filename.rsplit('/').next().unwrap_or(filename).into();
    ev
}

pub(super) fn file(op: &str, path: &str, mode: u32) -> Event {
    event(EventBody::File(File {
        op: op.parse().unwrap(),
        path: path.into(),
        mode,
        success: true,
        ..File::default()
    }))
}

pub(super) fn net(op: &str, address: &str, port: u16) -> Event {
    let body = Net {
        op: op.parse().unwrap(),
        family: "inet".into(),
        address: address.into(),
        port,
        success: true,
        ..Net::default()
    };
    event(EventBody::Net(body))
}

pub(super) fn rules(text: &str) -> RuleSet {
    match RuleSet::parse("rules.yaml", text) {
        Ok(set) => set,
        Err(e) => panic!("{e}"),
    }
}

/// Whether `cond` holds for `ev`, with the helper macros `t` (true for exec) and `f` (false for exec).
pub(super) fn holds(cond: &str, ev: &Event) -> bool {
    let text = format!(
        "- macro: t\n  condition: evt.kind = exec\n- macro: f\n  condition: evt.kind = fork\n\
         - rule: r\n  condition: '{}'\n  output: o\n",
        cond.replace('\'', "''")
    );
    rules(&text).matches(ev).count() == 1
}

pub(super) fn errors(text: &str) -> RuleErrors {
    match RuleSet::parse("rules.yaml", text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e,
    }
}

pub(super) fn first_error(text: &str) -> String {
    errors(text).0[0].to_string()
}

#[test]
fn precedence_not_and_or() {
    let ev = exec("/bin/ls", &["ls"]);
    assert!(holds("not f or f and f", &ev)); // (not f) or (f and f)
    assert!(holds("f and t or t", &ev)); // (f and t) or t
    assert!(!holds("not t or f and t", &ev));
    assert!(!holds("not (f or t)", &ev));
    assert!(holds("not not t", &ev));
}

#[test]
fn every_operator() {
    let ev = exec("/usr/bin/curl", &["curl", "-s", "http://Example.com/x"]);
    let cases = [
        ("proc.name = curl", true),
        ("proc.name != curl", false),
        ("proc.pid < 101", true),
        ("proc.pid <= 100", true),
        ("proc.pid > 100", false),
        ("proc.pid >= 100", true),
        ("user.uid = 1000", true),
        ("user.uid in (0, 1000)", true),
        ("user.uid in (0, 1)", false),
        ("proc.name in (wget, curl)", true),
        ("proc.cmdline contains http://", true),
        ("proc.cmdline contains EXAMPLE", false),
        ("proc.cmdline icontains EXAMPLE", true),
        ("exec.filename startswith /usr/", true),
        ("exec.filename endswith /curl", true),
        ("exec.filename glob '/usr/*/curl'", true),
        ("exec.filename glob '/*/curl'", false),
        ("exec.filename glob '/usr/**'", true),
        ("proc.args regex '^-s http'", true),
        ("proc.args regex '^http'", false),
        ("exec.success = true", true),
        ("exec.from_memfd = true", false),
        ("exec.from_memfd != true", true),
        ("exec.argc = 3", true),
        ("proc.cgroup_id & 0x3", true),
        ("proc.cgroup_id & 8", false),
        ("proc.exe exists", true),
        ("evt.kind in (exec, fork)", true),
        ("evt.seq = 42", true),
        ("evt.time startswith '2023-11-14T22:13:20'", true),
        ("proc.name = \"curl\"", true),
        ("proc.pcmdline = 'nginx -g daemon off;'", true),
        ("proc.pexe = /usr/sbin/nginx and proc.pname = nginx", true),
    ];
    for (cond, expected) in cases {
        assert_eq!(holds(cond, &ev), expected, "{cond}");
    }
    let f = file("chmod", "/usr/local/bin/tool", 0o4755);
    assert!(holds("file.mode & 0o4000", &f));
    assert!(holds(
        "file.name = tool and file.directory = /usr/local/bin",
        &f
    ));
    assert!(!holds("file.mode & 0o2000", &file("chmod", "/x", 0o755)));
}

#[test]
fn absent_fields_compare_false() {
    let ev = exec("/bin/ls", &["ls"]);
    assert!(!holds("file.path = /etc/passwd", &ev));
    assert!(!holds("file.path != /etc/passwd", &ev));
    assert!(holds("not (file.path = /etc/passwd)", &ev));
    assert!(!holds("file.path exists", &ev));
    assert!(!holds("container.id exists", &ev));
    assert!(!holds("proc.aname[2] = node", &ev));
    assert!(holds("not proc.aname[2] exists", &ev));
    assert!(holds("proc.aname[1] = nginx", &ev));
    let mut orphan = ev.clone();
    orphan.process.parent_exe.clear();
    assert!(!holds("proc.pname exists", &orphan));
    let fork = event(EventBody::Fork(Fork::default()));
    assert!(!holds("proc.args exists", &fork));
    assert!(holds("proc.cmdline = /usr/bin/bash", &fork));
}

#[test]
fn lists_and_macros_nest() {
    let set = rules(
        "- list: shells\n  items: [bash, sh]\n- list: all_shells\n  items: [shells, zsh]\n\
         - list: uids\n  items: [0, 1000]\n\
         - macro: is_exec\n  condition: evt.kind = exec\n\
         - macro: shell_exec\n  condition: is_exec and proc.name in (all_shells)\n\
         - rule: r\n  condition: shell_exec and user.uid in (uids) and proc.name in ('shells', zsh, shells)\n  output: o\n",
    );
    assert_eq!(set.matches(&exec("/bin/sh", &["sh"])).count(), 1);
    assert_eq!(set.matches(&exec("/bin/zsh", &["zsh"])).count(), 1);
    assert_eq!(set.matches(&exec("/bin/ls", &["ls"])).count(), 0);
}

#[test]
fn output_rendering() {
    let set = rules(
        "- rule: r\n  condition: evt.kind = exec\n  \
         output: \"shell %proc.name (pid %proc.pid) by %proc.aname[1]: %proc.cmdline, 100%% %file.path. %\"\n",
    );
    let ev = exec("/bin/sh", &["sh", "-c", "id"]);
    let rule = set.matches(&ev).next().unwrap();
    assert_eq!(
        rule.render_output(&ev),
        "shell sh (pid 100) by nginx: sh -c id, 100% <NA>. %"
    );
    let e =
        errors("- rule: r\n  condition: evt.kind = exec\n  output: \"%proc.name %proc.nmae.\"\n");
    assert_eq!(
        (e.0[0].location(), e.0[0].width),
        ("rules.yaml:3:24".to_string(), 9)
    );
    assert_eq!(e.0[0].hint.as_deref(), Some("did you mean `proc.name`?"));
}

#[test]
fn defaults_and_metadata() {
    let set = rules(
        "- rule: a\n  condition: evt.kind = exec\n  output: o\n\
         - rule: b\n  desc: d\n  condition: evt.kind = exec\n  output: o\n  severity: CRITICAL\n  \
         tags: [T1059, x]\n  enabled: false\n  actions: [kill_group, rollback]\n",
    );
    let [a, b] = set.rules() else { panic!() };
    assert_eq!(
        (a.severity(), a.actions(), a.enabled()),
        (Severity::Warning, &[Action::Alert][..], true)
    );
    assert_eq!(
        (b.name(), b.desc(), b.severity()),
        ("b", "d", Severity::Critical)
    );
    assert_eq!(b.actions(), &[Action::KillGroup, Action::Rollback]);
    assert_eq!(b.tags(), &["T1059".to_string(), "x".to_string()]);
    assert_eq!((b.location().line, b.location().col), (4, 9));
    let ev = exec("/bin/ls", &["ls"]);
    assert_eq!(
        set.matches(&ev).map(|r| r.name()).collect::<Vec<_>>(),
        vec!["a"]
    );
    assert!(b.matches(&ev));
}

#[test]
fn exec_time_only_forms() {
    let m = |cond: &str| {
        let text = format!(
            "- list: shells\n  items: [bash, sh]\n- macro: is_exec\n  condition: evt.kind = exec\n\
             - rule: r\n  condition: '{cond}'\n  output: o\n"
        );
        rules(&text).rules()[0].exec_time_only()
    };
    assert_eq!(
        m(
            "is_exec and (exec.filename startswith /tmp/ or exec.filename in (/dev/shm/x, /a)) \
           and proc.name in (shells) and user.uid = 0 and proc.pname = nginx"
        ),
        Some(ExecMatch {
            filenames: vec!["/a".into(), "/dev/shm/x".into()],
            filename_prefixes: vec!["/tmp/".into()],
            comms: vec!["bash".into(), "sh".into()],
            uids: vec![0],
            parent_comms: vec!["nginx".into()],
            sha256s: Vec::new(),
        })
    );
    let sha = "ab".repeat(32);
    assert_eq!(
        m(&format!("is_exec and exec.sha256 = {sha}")),
        Some(ExecMatch {
            sha256s: vec![sha.clone()],
            ..ExecMatch::default()
        })
    );
    assert_eq!(
        m("evt.kind = exec and proc.exe = /usr/bin/nc"),
        Some(ExecMatch {
            filenames: vec!["/usr/bin/nc".into()],
            ..ExecMatch::default()
        })
    );
    assert_eq!(m("exec.filename = /x"), None); // no evt.kind = exec
    assert_eq!(m("is_exec and not exec.filename = /x"), None);
    assert_eq!(m("is_exec and exec.filename contains x"), None);
    assert_eq!(m("is_exec and (exec.filename = /x or proc.name = y)"), None);
    assert_eq!(
        m("is_exec and exec.filename = /x and exec.filename = /y"),
        None
    );
    assert_eq!(m("is_exec and user.uid > 0"), None);
    assert_eq!(m("is_exec or exec.filename = /x"), None);
}

#[test]
fn file_time_only_forms() {
    let m = |cond: &str| {
        let text = format!(
            "- macro: is_file\n  condition: evt.kind = file\n\
             - rule: r\n  condition: '{cond}'\n  output: o\n  actions: [deny]\n"
        );
        rules(&text).rules()[0].file_time_only()
    };
    assert_eq!(
        m(
            "is_file and (file.path startswith /etc/ssh/ or file.path in (/etc/hosts, /a)) \
           and file.op in (open, unlink) and user.uid = 1000"
        ),
        Some(FileMatch {
            paths: vec!["/a".into(), "/etc/hosts".into()],
            prefixes: vec!["/etc/ssh/".into()],
            ops: vec![FileOp::Open, FileOp::Unlink],
            uids: vec![1000],
        })
    );
    assert_eq!(
        m("evt.kind = file and file.path = /etc/passwd"),
        Some(FileMatch {
            paths: vec!["/etc/passwd".into()],
            ..FileMatch::default()
        })
    );
    // Outside the form: no kind, no path, an op no LSM hook refuses, negations, other fields.
    assert_eq!(m("file.path = /x"), None);
    assert_eq!(m("is_file and file.op = unlink"), None);
    assert_eq!(m("is_file and file.path = /x and file.op = mkdir"), None);
    assert_eq!(m("is_file and not file.path = /x"), None);
    assert_eq!(m("is_file and file.path = /x and proc.name = vi"), None);
    assert_eq!(m("is_file and (file.path = /x or file.op = open)"), None);
    assert_eq!(m("is_file and file.path contains x"), None);
}

#[test]
fn rule_set_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<RuleSet>();
}

/// A representative rules file: one rule per kind of detection the agent ships.
const REPRESENTATIVE: &str = r#"
- list: package_managers
  items: [dpkg, apt, apt-get, rpm, yum, dnf]
- list: shadow_readers
  items: [passwd, chage, unix_chkpwd, sshd, login]
- list: shell_binaries
  items: [bash, sh, zsh, dash]
- macro: spawned_by_server
  condition: proc.pname in (nginx, httpd, sshd) or proc.aname[2] = node

- rule: write_below_etc
  desc: A file below /etc was written by something other than a package manager
  condition: evt.kind = file and file.op = open and file.path startswith /etc/ and not proc.name in (package_managers)
  output: "%proc.name (pid %proc.pid) wrote %file.path"
  severity: error
  tags: [T1543]
- rule: shadow_read
  condition: evt.kind = file and file.op = read and file.path = /etc/shadow and not proc.name in (shadow_readers)
  output: "%proc.name read %file.path"
  severity: critical
- rule: exec_from_tmp_or_memfd
  condition: evt.kind = exec and (exec.filename glob '/tmp/**' or exec.filename startswith /dev/shm/ or exec.from_memfd = true)
  output: "exec of %exec.filename by %proc.pname"
  actions: [alert, kill]
- rule: setuid_binary_created
  condition: evt.kind = file and file.op = chmod and file.mode & 0o4000
  output: "setuid bit set on %file.path (mode %file.mode)"
  severity: critical
- rule: sshd_config_changed
  condition: evt.kind = config_change and change.path = /etc/ssh/sshd_config
  output: "sshd_config changed (%change.trigger): %change.diff"
  actions: [alert, rollback]
- rule: shell_from_server
  desc: A shell was spawned by a server process
  condition: evt.kind = exec and proc.name in (shell_binaries) and spawned_by_server
  output: "shell %proc.name (pid %proc.pid) spawned by %proc.pname: %proc.cmdline"
  severity: warning
  tags: [T1059]
- rule: reverse_shell
  condition: evt.kind = net and net.op = connect and proc.name in (shell_binaries) and net.family in (inet, inet6)
  output: "%proc.name connected to %net.address:%net.port"
  severity: critical
  actions: [kill_group]
- rule: setuid_to_root
  condition: evt.kind = setid and setid.ids startswith "0" and user.uid != 0
  output: "%proc.name called %setid.syscall(%setid.ids)"
  enabled: false
"#;

#[test]
fn representative_rules_file_loads_and_matches() {
    let set = rules(REPRESENTATIVE);
    assert_eq!(set.rules().len(), 8);
    let names = |ev: &Event| {
        set.matches(ev)
            .map(|r| r.name().to_string())
            .collect::<Vec<_>>()
    };

    let mut ev = file("open", "/etc/hosts", 0o644);
    assert_eq!(names(&ev), vec!["write_below_etc"]);
    ev.process.comm = "dpkg".into();
    assert!(names(&ev).is_empty());
    assert_eq!(names(&file("read", "/etc/shadow", 0)), vec!["shadow_read"]);
    assert_eq!(
        names(&file("chmod", "/opt/x", 0o4755)),
        vec!["setuid_binary_created"]
    );
    assert!(names(&file("chmod", "/opt/x", 0o755)).is_empty());

    let mut memfd = exec("/memfd:x", &["x"]);
    memfd.process.parent_exe = "/usr/sbin/cron".into();
    if let EventBody::Exec(e) = &mut memfd.event {
        e.from_memfd = true;
    }
    assert_eq!(names(&memfd), vec!["exec_from_tmp_or_memfd"]);
    let tmp = exec("/tmp/a/b/payload", &["payload"]);
    assert_eq!(names(&tmp), vec!["exec_from_tmp_or_memfd"]);
    let rule = set
        .rules()
        .iter()
        .find(|r| r.name() == "exec_from_tmp_or_memfd")
        .unwrap();
    assert_eq!(rule.actions(), &[Action::Alert, Action::Kill]);
    assert_eq!(rule.exec_time_only(), None);

    let shell = exec("/bin/sh", &["sh", "-i"]);
    assert_eq!(names(&shell), vec!["shell_from_server"]);
    let rule = set
        .rules()
        .iter()
        .find(|r| r.name() == "shell_from_server")
        .unwrap();
    assert_eq!(
        rule.render_output(&shell),
        "shell sh (pid 100) spawned by nginx: sh -i"
    );

    let connect = net("connect", "203.0.113.9", 4444);
    assert_eq!(names(&connect), vec!["reverse_shell"]);
    let rule = set
        .rules()
        .iter()
        .find(|r| r.name() == "reverse_shell")
        .unwrap();
    assert_eq!(
        rule.render_output(&connect),
        "bash connected to 203.0.113.9:4444"
    );

    let change = event(EventBody::ConfigChange(ConfigChange {
        path: "/etc/ssh/sshd_config".into(),
        trigger: ChangeTrigger::CloseWrite,
        diff: Some("-PermitRootLogin no\n+PermitRootLogin yes".into()),
        ..ConfigChange::default()
    }));
    assert_eq!(names(&change), vec!["sshd_config_changed"]);

    let setid = event(EventBody::SetId(SetId {
        syscall: "setuid".into(),
        ids: vec![0],
        ..SetId::default()
    }));
    assert!(names(&setid).is_empty(), "disabled rule must not match");
    let rule = set
        .rules()
        .iter()
        .find(|r| r.name() == "setuid_to_root")
        .unwrap();
    assert!(rule.matches(&setid));
    assert_eq!(rule.render_output(&setid), "bash called setuid(0)");
}

#[test]
fn kind_index_keeps_file_order_and_unrestricted_rules() {
    let text = "\
- rule: any_kind
  desc: d
  condition: proc.pid = 100
  output: o
- rule: exec_only
  desc: d
  condition: evt.kind = exec and proc.pid = 100
  output: o
- rule: file_or_exec
  desc: d
  condition: (evt.kind = file and file.op = open) or (evt.kind in (exec) and proc.pid > 0)
  output: o
- rule: not_exec
  desc: d
  condition: not evt.kind = exec and proc.pid = 100
  output: o
";
    let set = RuleSet::parse("idx.yaml", text).unwrap();
    let names = |ev: &Event| {
        set.matches(ev)
            .map(|r| r.name().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&exec("/bin/true", &["true"])),
        ["any_kind", "exec_only", "file_or_exec"]
    );
    assert_eq!(
        names(&file("open", "/x", 0)),
        ["any_kind", "file_or_exec", "not_exec"]
    );
    assert_eq!(
        names(&net("connect", "1.2.3.4", 1)),
        ["any_kind", "not_exec"]
    );
}

/// A host where `/bin` is a link to `usr/bin` (usrmerge), and `/srv/app` to `/data/app`.
fn usrmerge(path: &str) -> Option<String> {
    for (link, target) in [("/bin", "/usr/bin"), ("/srv/app", "/data/app")] {
        if path == link {
            return Some(target.into());
        }
        if let Some(rest) = path.strip_prefix(link).filter(|r| r.starts_with('/')) {
            return Some(format!("{target}{rest}"));
        }
    }
    Some(path.into())
}

#[test]
fn path_literals_match_as_their_canonical_path() {
    let text = "
- rule: sleep_run
  condition: evt.kind = exec and exec.filename = /bin/sleep
  output: x
  actions: [kill]
- rule: bin_dir
  condition: evt.kind = exec and exec.filename startswith /bin/
  output: x
- rule: app_write
  condition: evt.kind = file and file.path in (/srv/app/config, /etc/hosts)
  output: x
- rule: not_sleep
  condition: evt.kind = exec and exec.filename != /bin/sleep
  output: x
- rule: untouched
  condition: evt.kind = exec and proc.name = sleep and exec.filename endswith /bin/sleep
  output: x
";
    let set = RuleSet::parse_resolving("r.yaml", text, &usrmerge).unwrap();
    let fired =
        |ev: &Event| -> Vec<String> { set.matches(ev).map(|r| r.name().to_owned()).collect() };
    // Events carry canonical paths.
    assert_eq!(
        fired(&exec("/usr/bin/sleep", &["sleep", "1"])),
        ["sleep_run", "bin_dir", "untouched"]
    );
    assert_eq!(
        fired(&exec("/usr/bin/true", &["true"])),
        ["bin_dir", "not_sleep"]
    );
    assert_eq!(fired(&file("open", "/data/app/config", 0)), ["app_write"]);
    assert_eq!(fired(&file("open", "/etc/hosts", 0)), ["app_write"]);
    // The kernel's exec map gets both spellings of the file.
    let m = set.rules()[0].exec_time_only().unwrap();
    assert_eq!(m.filenames, ["/bin/sleep", "/usr/bin/sleep"]);
    assert_eq!(
        set.rules()[1].exec_time_only().unwrap().filename_prefixes,
        ["/usr/bin/"]
    );
    let rewrites: Vec<_> = set
        .path_rewrites()
        .iter()
        .map(|r| format!("{} {} -> {}", r.at, r.literal, r.canonical))
        .collect();
    assert_eq!(
        rewrites,
        [
            "r.yaml:3:50 /bin/sleep -> /usr/bin/sleep",
            "r.yaml:7:59 /bin/ -> /usr/bin/",
            "r.yaml:10:48 /srv/app/config -> /data/app/config",
            "r.yaml:13:51 /bin/sleep -> /usr/bin/sleep",
        ]
    );
    // Without a resolver, literals are matched as written.
    let plain = RuleSet::parse("r.yaml", text).unwrap();
    assert!(plain.path_rewrites().is_empty());
    assert!(!plain.rules()[0].matches(&exec("/usr/bin/sleep", &["sleep"])));
}

#[test]
fn canonical_path_fields_are_registry_fields() {
    for name in crate::check::CANONICAL_PATH_FIELDS {
        assert!(crate::fields::lookup(name).is_some(), "{name}");
    }
}

#[test]
fn acting_kinds_are_those_of_enabled_rules_that_do_more_than_alert() {
    let rule = |name: &str, cond: &str, actions: &str, enabled: bool| {
        format!(
            "- rule: {name}\n  desc: d\n  condition: {cond}\n  output: o\n  severity: notice\n  enabled: {enabled}\n  actions: [{actions}]\n"
        )
    };
    let set = |rules: &[String]| RuleSet::parse("acting.yaml", &rules.concat()).unwrap();
    let alert_only = rule("a", "evt.kind = file", "alert", true);
    let kill_exec = rule(
        "k",
        "evt.kind = exec and proc.name = x",
        "alert, kill",
        true,
    );
    let disabled = rule("d", "evt.kind = net", "kill", false);
    let rollback = rule("r", "evt.kind in (file, config_change)", "rollback", true);
    let any_kind = rule("any", "proc.name = x", "kill", true);
    assert_eq!(
        set(std::slice::from_ref(&alert_only)).acting_kinds(),
        Some(HashSet::new())
    );
    assert_eq!(
        set(&[alert_only.clone(), kill_exec.clone(), disabled, rollback]).acting_kinds(),
        Some(HashSet::from([
            EventKind::Exec,
            EventKind::File,
            EventKind::ConfigChange
        ]))
    );
    assert_eq!(set(&[kill_exec, any_kind]).acting_kinds(), None);
}
