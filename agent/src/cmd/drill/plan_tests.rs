//! Stimulus derivation on `rules/default.yaml` and on small rules of each supported pattern.

use crate::cmd::drill::ops::{Context, Host, Op};
use crate::cmd::drill::plan::{Stimulus, derive};
use crate::cmd::drill::words;
use auditloop_rules::RuleSet;

fn ctx() -> Context {
    Context {
        nonce: "n1".into(),
        pid: 4242,
        uid: 0,
        gid: 0,
        comm: "auditloop".into(),
        exe: "/usr/local/bin/auditloop".into(),
        argv: vec!["auditloop".into(), "drill".into()],
        linger_secs: 6,
        agent_pid: 777,
        host: Host {
            is_file: |p| ["/etc/shadow", "/etc/gshadow", "/etc/passwd"].contains(&p),
            is_dir: |p| DIRS.contains(&p),
            exists: |p| p == "/etc/passwd" || p == "/tmp/taken" || DIRS.contains(&p),
        },
    }
}

/// Directories of the fake host.
const DIRS: [&str; 7] = [
    "/",
    "/etc",
    "/etc/cron.d",
    "/tmp",
    "/var/tmp",
    "/dev/shm",
    "/opt/app",
];

/// Every rule of `text` with its derived stimulus or reason.
fn derive_all(text: &str) -> Vec<(String, Result<Stimulus, String>)> {
    let set = RuleSet::parse("t.yaml", text).unwrap();
    let words = words::parse(&[text.to_owned()]).unwrap();
    set.rules()
        .iter()
        .map(|r| {
            let plan = derive(&set, r, words.get(r.name()), &ctx());
            (r.name().to_owned(), plan)
        })
        .collect()
}

fn one(text: &str) -> Result<Stimulus, String> {
    derive_all(text).pop().unwrap().1
}

fn rule(condition: &str, extra: &str) -> String {
    format!("- rule: r\n  desc: d\n  condition: {condition}\n  output: o\n{extra}")
}

#[test]
fn every_default_rule_is_drillable() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../rules/default.yaml"
    ))
    .unwrap();
    let got: Vec<(String, Result<Vec<Op>, String>)> = derive_all(&text)
        .into_iter()
        .map(|(name, plan)| (name, plan.map(|s| s.ops)))
        .collect();
    let op = |name: &str| got.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(
        op("write_below_etc"),
        Ok(vec![Op::Create {
            path: "/etc/auditloop-drill-n1.tmp".into()
        }])
    );
    assert_eq!(
        op("shadow_read"),
        Ok(vec![Op::Read {
            path: "/etc/shadow".into()
        }])
    );
    assert_eq!(
        op("exec_from_tmp"),
        Ok(vec![Op::Exec {
            path: "/tmp/auditloop-drill-n1".into(),
            fork: false
        }])
    );
    assert_eq!(op("fileless_exec"), Ok(vec![Op::MemfdExec { fork: false }]));
    assert_eq!(
        op("setuid_binary_created"),
        Ok(vec![Op::Chmod {
            path: "/tmp/auditloop-drill-n1.tmp".into(),
            mode: 0o4600
        }])
    );
    assert_eq!(
        op("sshd_config_changed"),
        Ok(vec![Op::Change {
            path: "/tmp/auditloop-drill-n1/sshd_config".into()
        }])
    );
    assert_eq!(
        op("shell_spawned_by_server"),
        Ok(vec![Op::ServerShell {
            server: "/tmp/auditloop-drill-n1/nginx".into(),
            shell: "/tmp/auditloop-drill-n1/bash".into()
        }])
    );
    assert_eq!(
        op("reverse_shell_connect"),
        Ok(vec![Op::Connect {
            program: "/tmp/auditloop-drill-n1/bash".into()
        }])
    );
    assert_eq!(op("agent_tampered"), Ok(vec![Op::SignalAgent]));
    let uring = op("io_uring_file_or_net_op");
    assert!(uring.is_ok(), "{uring:?}");
    assert_eq!(got.len(), 10);
}

#[test]
fn exec_paths_outside_temp_go_into_a_fresh_directory_or_are_refused() {
    let prefix = one(&rule(
        "evt.kind = exec and exec.filename startswith /opt/app/",
        "",
    ));
    assert_eq!(
        prefix.unwrap().ops,
        [Op::Exec {
            path: "/opt/app/auditloop-drill-n1/drill".into(),
            fork: false
        }]
    );
    let exact = one(&rule("evt.kind = exec and proc.exe = /usr/bin/nc", ""));
    assert!(exact.unwrap_err().contains("outside /tmp"));
    let in_tmp = one(&rule(
        "evt.kind = exec and proc.exe in (/tmp/x, /dev/shm/y)",
        "",
    ));
    assert_eq!(in_tmp.unwrap().label, "exec /tmp/x");
    let glob = one(&rule(
        "evt.kind = exec and exec.filename glob '/var/tmp/*.sh'",
        "",
    ));
    assert_eq!(glob.unwrap().label, "exec /var/tmp/auditloop-drill-n1.sh");
    let suffix = one(&rule("evt.kind = exec and proc.exe endswith /nc", ""));
    assert_eq!(suffix.unwrap().label, "exec /tmp/auditloop-drill-n1/nc");
}

#[test]
fn kill_rules_linger_so_the_kill_has_a_target() {
    let s = one(&rule(
        "evt.kind = exec and exec.filename startswith /tmp/",
        "  actions: [alert, kill]\n",
    ))
    .unwrap();
    assert!(s.linger);
    let s = one(&rule(
        "evt.kind = exec and exec.filename startswith /tmp/",
        "",
    ))
    .unwrap();
    assert!(!s.linger);
}

#[test]
fn writes_never_target_existing_files() {
    let exact = one(&rule(
        "evt.kind = file and file.op = open and file.path = /etc/passwd",
        "",
    ));
    assert!(exact.unwrap_err().contains("never modifies existing files"));
    let below = one(&rule(
        "evt.kind = file and file.op = open and file.directory = /etc/cron.d",
        "",
    ));
    assert_eq!(
        below.unwrap().label,
        "create+unlink /etc/cron.d/auditloop-drill-n1.tmp"
    );
}

#[test]
fn threshold_count_is_found_by_playing_the_events() {
    let s = one(&rule(
        "evt.kind = file and file.op = read and file.path = /etc/shadow",
        "  threshold: {count: 3, window: 10s, by: [user.uid]}\n",
    ))
    .unwrap();
    assert_eq!(s.ops.len(), 3);
    assert_eq!(s.label, "open O_RDONLY /etc/shadow ×3");
    let execs = one(&rule(
        "evt.kind = exec and exec.filename startswith /tmp/",
        "  threshold: {count: 2, window: 10s}\n",
    ))
    .unwrap();
    assert!(
        execs
            .ops
            .iter()
            .all(|op| matches!(op, Op::Exec { fork: true, .. }))
    );
}

#[test]
fn sequence_steps_run_in_order_with_the_layout_the_keys_need() {
    let same_process = "- rule: r
  desc: d
  sequence:
    within: 10s
    by: [proc.pid]
    steps:
      - condition: evt.kind = file and file.op = read and file.path = /etc/shadow
      - condition: evt.kind = exec and exec.filename startswith /tmp/
  output: o
";
    let s = one(same_process).unwrap();
    assert_eq!(
        s.ops,
        [
            Op::Read {
                path: "/etc/shadow".into()
            },
            Op::Exec {
                path: "/tmp/auditloop-drill-n1".into(),
                fork: false
            }
        ]
    );
    // A parent's write linked to its child's exec: the exec runs in a grandchild.
    let parent_child = same_process.replace("    by: [proc.pid]\n", "    by: [proc.ppid]\n");
    let parent_child = parent_child.replace(
        "      - condition: evt.kind = file",
        "      - by: [proc.pid]\n        condition: evt.kind = file",
    );
    let s = one(&parent_child).unwrap();
    assert!(matches!(s.ops[1], Op::Exec { fork: true, .. }), "{s:?}");
}

#[test]
fn other_kinds_and_disabled_rules_are_not_drillable() {
    let setid = one(&rule("evt.kind = setid and setid.syscall = setuid", ""));
    assert!(setid.unwrap_err().contains("setid events"));
    let change = one(&rule(
        "evt.kind = config_change and change.redacted = true",
        "",
    ));
    assert!(change.unwrap_err().starts_with("config-change rule"));
    let disabled = one(&rule("evt.kind = exec", "  enabled: false\n"));
    assert_eq!(disabled.unwrap_err(), "rule is disabled");
    let deny = one(&rule("evt.kind = exec", "  actions: [deny]\n"));
    assert!(deny.unwrap_err().starts_with("deny action"));
}

#[test]
fn host_facts_skip_candidates_that_cannot_be_performed() {
    let existing = one(&rule(
        "evt.kind = exec and proc.exe in (/tmp/taken, /tmp/free)",
        "",
    ));
    assert_eq!(existing.unwrap().label, "exec /tmp/free");
    let missing = one(&rule(
        "evt.kind = file and file.op = read and file.path = /etc/missing",
        "",
    ));
    assert_eq!(
        missing.unwrap_err(),
        "/etc/missing is not an existing regular file"
    );
    // A directory is never opened: the rule is drilled by creating a file in it instead.
    let dir = one(&rule(
        "evt.kind = file and file.path startswith /etc/cron.d",
        "",
    ));
    assert_eq!(
        dir.unwrap().label,
        "create+unlink /etc/cron.d/auditloop-drill-n1.tmp"
    );
    let no_dir = one(&rule(
        "evt.kind = exec and exec.filename startswith /srv/missing/",
        "",
    ));
    assert_eq!(
        no_dir.unwrap_err(),
        "/srv/missing is not an existing directory"
    );
}

#[test]
fn config_change_rules_are_staged_on_a_stand_in_with_the_path_rewritten() {
    let text = "- macro: watched\n  condition: change.path in (/etc/x, /etc/y)\n".to_owned()
        + &rule(
            "evt.kind = config_change and watched",
            "  actions: [alert, rollback]\n",
        );
    let s = one(&text).unwrap();
    let stage = s.stage.expect("staged");
    assert_eq!(stage.original, "/etc/x");
    assert_eq!(stage.file, "/tmp/auditloop-drill-n1/x");
    assert_eq!(stage.rule, "drill:r");
    assert!(
        stage.overlay.contains("/tmp/auditloop-drill-n1/x"),
        "{}",
        stage.overlay
    );
    assert!(!stage.overlay.contains("/etc/x"), "{}", stage.overlay);
    assert_ne!(stage.known, stage.changed);
    // A directory prefix becomes the fresh directory.
    let dir = one(&rule(
        "evt.kind = config_change and change.path startswith /etc/cron.d/",
        "  actions: [alert, rollback]\n",
    ))
    .unwrap();
    assert_eq!(
        dir.ops,
        [Op::Change {
            path: "/tmp/auditloop-drill-n1/drill".into()
        }]
    );
    // A rollback rule on file events is drilled with an ordinary stimulus (its rollback then fails).
    let on_files = one(&rule(
        "evt.kind = file and file.op = open and file.path startswith /tmp/",
        "  actions: [alert, rollback]\n",
    ))
    .unwrap();
    assert!(on_files.stage.is_none());
}
