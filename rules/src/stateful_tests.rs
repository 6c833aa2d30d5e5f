//! Tests of threshold and sequence rules through the public API: when they fire, per-key separation,
//! resets, the key bound, the kind index, and their load errors with exact positions.

use auditloop_model::{Event, EventKind};

use crate::tests::{errors, exec, file, rules};
use crate::{ErrorKind, MAX_KEYS, RuleKind, RuleSet, RuleState};

/// `ev` at `ms` milliseconds on the monotonic clock.
fn at(mut ev: Event, ms: u64) -> Event {
    ev.mono_ns = ms * 1_000_000;
    ev
}

fn fired(set: &RuleSet, state: &mut RuleState, ev: &Event) -> Vec<String> {
    set.fire(state, ev)
        .iter()
        .map(|r| r.name().to_string())
        .collect()
}

const THRESHOLD: &str = "\
- rule: plain
  condition: evt.kind = file and file.path = /etc/hosts
  output: o
- rule: shadow_burst
  desc: many failed reads of /etc/shadow by one user
  condition: evt.kind = file and file.op = read and file.path = /etc/shadow
  threshold:
    count: 3
    window: 10s
    by: [user.uid]
  output: \"%user.uid read %file.path 3 times\"
";

fn shadow_read(uid: u32, ms: u64) -> Event {
    let mut ev = at(file("read", "/etc/shadow", 0), ms);
    ev.process.uid = uid;
    ev
}

#[test]
fn threshold_fires_at_the_nth_event_in_the_window_then_resets() {
    let set = rules(THRESHOLD);
    assert_eq!(set.rules()[1].kind(), RuleKind::Threshold);
    assert_eq!(set.rules()[0].kind(), RuleKind::Stateless);
    let mut state = set.new_state();
    let mut results = Vec::new();
    for ms in [0, 1_000, 2_000, 3_000, 4_000, 5_000, 6_000] {
        results.push(set.fire(&mut state, &shadow_read(1000, ms)).len());
    }
    // Fires on the 3rd, then counts again from zero: the 6th fires, not the 4th or 5th.
    assert_eq!(results, [0, 0, 1, 0, 0, 1, 0]);
    // The stateless path never reports a threshold rule.
    assert_eq!(set.matches(&shadow_read(1000, 0)).count(), 0);
    // Stateless rules fire through `fire` too, in file order.
    let hosts = file("open", "/etc/hosts", 0);
    assert_eq!(fired(&set, &mut state, &hosts), ["plain"]);
}

#[test]
fn threshold_ignores_events_spread_beyond_the_window() {
    let set = rules(THRESHOLD);
    let mut state = set.new_state();
    for ms in [0, 6_000, 12_000, 18_000, 24_000] {
        assert!(
            set.fire(&mut state, &shadow_read(1000, ms)).is_empty(),
            "{ms}"
        );
    }
    // The window is inclusive: three events with the first and last exactly 10s apart fire.
    let mut state = set.new_state();
    let hits: Vec<usize> = [0, 5_000, 10_000]
        .iter()
        .map(|&ms| set.fire(&mut state, &shadow_read(1000, ms)).len())
        .collect();
    assert_eq!(hits, [0, 0, 1]);
}

#[test]
fn threshold_counts_each_key_separately() {
    let set = rules(THRESHOLD);
    let mut state = set.new_state();
    let order = [(1000, 0), (0, 1), (1000, 2), (0, 3), (0, 4), (1000, 5)];
    let hits: Vec<Vec<String>> = order
        .iter()
        .map(|&(uid, ms)| fired(&set, &mut state, &shadow_read(uid, ms)))
        .collect();
    let none: Vec<String> = Vec::new();
    assert_eq!(
        hits,
        [
            none.clone(),
            none.clone(),
            none.clone(),
            none.clone(),
            vec!["shadow_burst".to_string()],
            vec!["shadow_burst".to_string()],
        ]
    );
    // Both keys fired and were reset.
    assert_eq!(state.tracked_keys(1), 0);
}

const SEQUENCE: &str = "\
- macro: tmp_exec
  condition: evt.kind = exec and exec.filename startswith /tmp/
- rule: write_then_exec_tmp
  desc: a file written in /tmp and then executed by a child
  sequence:
    within: 30s
    by: [proc.ppid]
    steps:
      - condition: evt.kind = file and file.op = open and file.path startswith /tmp/
        by: [proc.pid]
      - condition: tmp_exec
  output: \"%proc.name executed %exec.filename shortly after a write in /tmp\"
  actions: [alert, kill]
";

/// A write of `/tmp/x` by process `pid`.
fn tmp_write(pid: u32, ms: u64) -> Event {
    let mut ev = at(file("open", "/tmp/x", 0o644), ms);
    ev.process.pid = pid;
    ev
}

/// An exec of `/tmp/x` by a child of `ppid`.
fn tmp_exec(ppid: u32, ms: u64) -> Event {
    let mut ev = at(exec("/tmp/x", &["x"]), ms);
    ev.process.pid = ppid + 1;
    ev.process.ppid = ppid;
    ev
}

#[test]
fn sequence_fires_in_order_within_the_limit_linking_parent_and_child() {
    let set = rules(SEQUENCE);
    let rule = &set.rules()[0];
    assert_eq!(rule.kind(), RuleKind::Sequence);
    assert_eq!(rule.exec_time_only(), None);
    let mut state = set.new_state();
    assert!(set.fire(&mut state, &tmp_write(500, 0)).is_empty());
    // Another parent's child does not complete pid 500's sequence.
    assert!(set.fire(&mut state, &tmp_exec(501, 1_000)).is_empty());
    assert_eq!(
        fired(&set, &mut state, &tmp_exec(500, 29_000)),
        ["write_then_exec_tmp"]
    );
    // Fired: the key starts over.
    assert!(set.fire(&mut state, &tmp_exec(500, 29_500)).is_empty());
    assert_eq!(state.tracked_keys(0), 0);
    // The stateless path skips sequence rules; `Rule::matches` tells whether an event fits a step.
    assert_eq!(set.matches(&tmp_exec(500, 0)).count(), 0);
    assert!(rule.matches(&tmp_exec(500, 0)) && rule.matches(&tmp_write(1, 0)));
    assert!(!rule.matches(&exec("/bin/ls", &["ls"])));
}

#[test]
fn sequence_does_not_fire_out_of_order_or_too_late() {
    let set = rules(SEQUENCE);
    let mut state = set.new_state();
    assert!(set.fire(&mut state, &tmp_exec(500, 0)).is_empty());
    assert!(set.fire(&mut state, &tmp_write(500, 1_000)).is_empty());
    // The write above starts a sequence; an exec 30.001s later is too late.
    assert!(set.fire(&mut state, &tmp_exec(500, 31_001)).is_empty());
    // A new write restarts it, and an exec in time completes it.
    assert!(set.fire(&mut state, &tmp_write(500, 40_000)).is_empty());
    assert_eq!(set.fire(&mut state, &tmp_exec(500, 70_000)).len(), 1);
}

#[test]
fn sequence_condition_guards_every_step_and_three_steps_go_in_order() {
    let set = rules(
        "- rule: three
  condition: user.uid = 0
  sequence:
    within: 1m
    steps:
      - condition: evt.kind = file and file.op = open
      - condition: evt.kind = file and file.op = chmod
      - condition: evt.kind = exec
  output: o
",
    );
    let root = |mut ev: Event| {
        ev.process.uid = 0;
        ev
    };
    let mut state = set.new_state();
    let steps = [
        root(file("open", "/a", 0)),
        root(exec("/a", &["a"])),   // step 3 before step 2: no progress
        file("chmod", "/a", 0o755), // uid 1000: the guard fails
        root(file("chmod", "/a", 0o755)),
        root(exec("/a", &["a"])),
    ];
    let hits: Vec<usize> = steps
        .iter()
        .map(|ev| set.fire(&mut state, ev).len())
        .collect();
    assert_eq!(hits, [0, 0, 0, 0, 1]);
}

#[test]
fn stateful_rules_keep_at_most_max_keys_keys() {
    let set = rules(SEQUENCE);
    let mut state = RuleState::new(set.rules(), 2);
    for pid in [1, 2, 3] {
        assert!(set.fire(&mut state, &tmp_write(pid, 0)).is_empty());
    }
    assert_eq!(state.tracked_keys(0), 2);
    // Key 1 was the oldest touched and was evicted; 2 and 3 complete.
    assert!(set.fire(&mut state, &tmp_exec(1, 1)).is_empty());
    assert_eq!(set.fire(&mut state, &tmp_exec(3, 2)).len(), 1);
    assert_eq!(set.fire(&mut state, &tmp_exec(2, 3)).len(), 1);

    // The default bound.
    let set = rules(THRESHOLD);
    let mut state = set.new_state();
    for uid in 0..(MAX_KEYS as u32 + 10) {
        set.fire(&mut state, &shadow_read(uid, 0));
    }
    assert_eq!(state.tracked_keys(1), MAX_KEYS);
    // A touched key survives eviction.
    let mut state = RuleState::new(set.rules(), 2);
    set.fire(&mut state, &shadow_read(1, 0));
    set.fire(&mut state, &shadow_read(2, 0));
    set.fire(&mut state, &shadow_read(1, 1));
    set.fire(&mut state, &shadow_read(3, 2)); // evicts uid 2
    assert_eq!(set.fire(&mut state, &shadow_read(1, 3)).len(), 1);
}

#[test]
fn state_of_another_set_starts_afresh_and_is_send() {
    fn check<T: Send>() {}
    check::<RuleState>();
    let seq = rules(SEQUENCE);
    let thr = rules(THRESHOLD);
    let mut state = thr.new_state();
    set_fire_all(&thr, &mut state, &[shadow_read(1, 0), shadow_read(1, 1)]);
    // Used with another set (a reload): nothing carried over, no panic.
    assert!(seq.fire(&mut state, &tmp_exec(500, 0)).is_empty());
    assert!(thr.fire(&mut state, &shadow_read(1, 2)).is_empty());
}

fn set_fire_all(set: &RuleSet, state: &mut RuleState, events: &[Event]) {
    for ev in events {
        set.fire(state, ev);
    }
}

#[test]
fn kind_index_covers_every_step_kind() {
    let set = rules(
        "- rule: exec_only
  condition: evt.kind = exec
  output: o
- rule: file_then_exec
  sequence:
    within: 10s
    steps:
      - condition: evt.kind = file
      - condition: evt.kind = exec
  output: o
- rule: net_then_any
  sequence:
    within: 10s
    steps:
      - condition: evt.kind = net
      - condition: proc.name = bash
  output: o
- rule: guarded
  condition: evt.kind in (file, net)
  sequence:
    within: 10s
    steps:
      - condition: proc.name = a
      - condition: evt.kind in (net, exec)
  output: o
",
    );
    let names = |ev: &Event| {
        let mut state = RuleState::new(set.rules(), 4);
        // Each rule's first step is enough to enter the state: count how many rules track a key.
        set.fire(&mut state, ev);
        (0..set.rules().len())
            .filter(|&i| state.tracked_keys(i) > 0)
            .map(|i| set.rules()[i].name())
            .collect::<Vec<_>>()
    };
    let mut a = file("open", "/x", 0);
    a.process.comm = "a".into();
    assert_eq!(names(&a), ["file_then_exec", "guarded"]);
    assert_eq!(
        names(&crate::tests::net("connect", "1.1.1.1", 1)),
        ["net_then_any"]
    );
    // The index itself: a rule is a candidate for every kind one of its steps can match (the guard
    // narrows it); a step without a kind makes it a candidate for every kind.
    assert_eq!(set.by_kind[EventKind::Exec as usize], [0, 1, 2]); // `guarded` cannot pass its guard
    assert_eq!(set.by_kind[EventKind::File as usize], [1, 2, 3]);
    assert_eq!(set.by_kind[EventKind::Net as usize], [2, 3]);
    // A kind no rule names: only the rule that does not restrict kinds.
    assert_eq!(set.by_kind[EventKind::Fork as usize], [2]);
    // The index itself: a rule is a candidate for every kind one of its steps can match.
    let mut state = set.new_state();
    set.fire(&mut state, &file("open", "/x", 0));
    let ev = exec("/bin/bash", &["bash"]);
    assert_eq!(
        fired(&set, &mut state, &ev),
        ["exec_only", "file_then_exec"]
    );
    let mut state = set.new_state();
    set.fire(&mut state, &crate::tests::net("connect", "1.1.1.1", 1));
    let mut fork = crate::tests::event(auditloop_model::EventBody::Fork(
        auditloop_model::Fork::default(),
    ));
    fork.process.comm = "bash".into();
    assert_eq!(fired(&set, &mut state, &fork), ["net_then_any"]);
}

fn first(text: &str) -> String {
    errors(text).0[0].to_string()
}

#[test]
fn error_unknown_keys_inside_threshold_and_sequence() {
    let text = "- rule: r\n  condition: evt.kind = exec\n  threshold:\n    count: 3\n    windw: 10s\n  output: o\n";
    let e = errors(text);
    assert_eq!(e.0.len(), 2, "{e}");
    assert_eq!(
        e.0[0].to_string(),
        "rules.yaml:3:3: missing key `window`\n      threshold:\n      ^"
    );
    assert_eq!(
        e.0[1].to_string(),
        "rules.yaml:5:5: unknown key `windw`\n        windw: 10s\n        ^^^^^\nhint: did you mean `window`?"
    );
    let text = "- rule: r\n  sequence:\n    within: 1s\n    steps:\n      - condition: evt.kind = exec\n        bye: [proc.pid]\n      - condition: evt.kind = exec\n  output: o\n";
    assert_eq!(
        first(text),
        "rules.yaml:6:9: unknown key `bye`\n            bye: [proc.pid]\n            ^^^\nhint: did you mean `by`?"
    );
}

#[test]
fn error_bad_duration_and_count() {
    let text = "- rule: r\n  condition: evt.kind = exec\n  threshold:\n    count: 0\n    window: 10x\n  output: o\n";
    let e = errors(text);
    assert_eq!(e.0.len(), 2, "{e}");
    assert_eq!(
        e.0[0].to_string(),
        "rules.yaml:4:12: `count` must be at least 1\n        count: 0\n               ^\nhint: a number from 1 to 10000"
    );
    assert_eq!(
        e.0[1].to_string(),
        "rules.yaml:5:13: bad duration `10x` for `window`\n        window: 10x\n                ^^^\nhint: a whole number and a unit: ms, s, m or h (e.g. 500ms, 10s, 5m)"
    );
    assert!(e.0.iter().all(|e| e.kind == ErrorKind::Schema));
}

#[test]
fn error_sequence_shape() {
    let text = "- rule: r\n  sequence:\n    within: 1s\n    steps:\n      - condition: evt.kind = exec\n  output: o\n";
    assert_eq!(
        first(text),
        "rules.yaml:4:5: a sequence needs at least 2 steps, found 1\n        steps:\n        ^^^^^\n\
         hint: for a single event use the rule's `condition` (with `threshold` to count it)"
    );
    let text = "- rule: r\n  condition: evt.kind = exec\n  threshold: {count: 2, window: 1s}\n  sequence:\n    within: 1s\n  output: o\n";
    assert_eq!(
        first(text),
        "rules.yaml:4:3: a rule takes `threshold` or `sequence`, not both\n      sequence:\n      ^^^^^^^^\nhint: split it into two rules"
    );
    // A threshold still needs a condition.
    let text = "- rule: r\n  threshold: {count: 2, window: 1s}\n  output: o\n";
    assert_eq!(errors(text).0[0].message, "missing key `condition`");
}

#[test]
fn error_unknown_field_in_by_and_in_a_step_condition() {
    let text = "- rule: r\n  condition: evt.kind = exec\n  threshold:\n    count: 2\n    window: 1s\n    by: [user.uid, proc.pdi]\n  output: o\n";
    assert_eq!(
        first(text),
        "rules.yaml:6:20: unknown field `proc.pdi`\n        by: [user.uid, proc.pdi]\n                       ^^^^^^^^\nhint: did you mean `proc.pid`?"
    );
    let text = "- rule: r\n  sequence:\n    within: 1s\n    by:\n      - proc.ppid\n      - proc.nmae\n    steps:\n      - condition: evt.kind = exec\n      - condition: evt.kind = exec and proc.nmae = x\n  output: o\n";
    let e = errors(text);
    let shown: Vec<String> =
        e.0.iter()
            .map(|e| format!("{} {}", e.location(), e.message))
            .collect();
    assert_eq!(
        shown,
        [
            "rules.yaml:6:9 unknown field `proc.nmae`",
            "rules.yaml:9:40 unknown field `proc.nmae`",
        ]
    );
    assert_eq!(e.0[1].hint.as_deref(), Some("did you mean `proc.name`?"));
    assert_eq!(e.0[1].width, 9);
}
