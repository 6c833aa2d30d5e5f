//! The `hold` action's settings and its load-time safety check.
//!
//! A hold stops a process until someone decides (or the timeout applies the rule's default). Holding the
//! wrong process freezes the host: init (PID 1), the service manager, or the agent itself (which would then
//! never decide). So a hold rule is refused at load when its condition matches a synthetic event of any of
//! those processes, for every event kind the rule can match. The agent refuses such targets again at run
//! time; this check makes a dangerous rule an error with its `file:line:col` rather than a surprise.

use std::collections::HashSet;

use auditloop_model::{Event, EventBody, EventKind, HoldDecision, Process, WallTime};

use crate::eval::{Cond, required_kinds};

/// The timeout of a hold whose rule names none: 5 minutes.
pub const DEFAULT_HOLD_TIMEOUT_NS: u64 = 5 * 60 * 1_000_000_000;

/// How a rule's `hold` waits: `hold: {timeout: 5m, default: deny}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoldSpec {
    /// How long the process stays stopped without a decision.
    pub timeout_ns: u64,
    /// What the timeout applies.
    pub default: HoldDecision,
}

impl Default for HoldSpec {
    fn default() -> HoldSpec {
        HoldSpec {
            timeout_ns: DEFAULT_HOLD_TIMEOUT_NS,
            default: HoldDecision::Deny,
        }
    }
}

/// One process a hold must never stop, as a rule would see it.
struct Protected {
    what: &'static str,
    pid: u32,
    ppid: u32,
    comm: &'static str,
    exe: &'static str,
    parent_exe: &'static str,
}

/// Init (under its common paths), the service manager and the agent (under its packaged paths).
const PROTECTED: [Protected; 6] = [
    Protected {
        what: "PID 1 (init)",
        pid: 1,
        ppid: 0,
        comm: "init",
        exe: "/sbin/init",
        parent_exe: "",
    },
    Protected {
        what: "PID 1 (systemd)",
        pid: 1,
        ppid: 0,
        comm: "systemd",
        exe: "/usr/lib/systemd/systemd",
        parent_exe: "",
    },
    Protected {
        what: "PID 1 (systemd)",
        pid: 1,
        ppid: 0,
        comm: "systemd",
        exe: "/lib/systemd/systemd",
        parent_exe: "",
    },
    Protected {
        what: "the service manager (systemd)",
        pid: 2,
        ppid: 1,
        comm: "systemd",
        exe: "/usr/lib/systemd/systemd",
        parent_exe: "/usr/lib/systemd/systemd",
    },
    Protected {
        what: "the agent (auditloop)",
        pid: 3,
        ppid: 1,
        comm: "auditloop",
        exe: "/usr/bin/auditloop",
        parent_exe: "/usr/lib/systemd/systemd",
    },
    Protected {
        what: "the agent (auditloop)",
        pid: 3,
        ppid: 1,
        comm: "auditloop",
        exe: "/usr/sbin/auditloop",
        parent_exe: "/usr/lib/systemd/systemd",
    },
];

/// The synthetic events of `who` for `kind`: an exec of its executable for exec, one event with every
/// field at its default otherwise.
fn synthetic(who: &Protected, kind: EventKind) -> Event {
    let mut body = EventBody::empty(kind);
    if let EventBody::Exec(exec) = &mut body {
        exec.filename = who.exe.into();
        exec.argv = vec![who.exe.into()];
        exec.ret = Some(0);
        exec.success = true;
        exec.old_comm = who.comm.into();
    }
    Event {
        seq: 1,
        time: WallTime(0),
        mono_ns: 0,
        process: Process {
            pid: who.pid,
            tid: who.pid,
            ppid: who.ppid,
            comm: who.comm.into(),
            exe: who.exe.into(),
            parent_exe: who.parent_exe.into(),
            ..Process::default()
        },
        event: body,
    }
}

/// Why a hold rule with condition `cond` must not be loaded: the first protected process and event kind it
/// matches; `None` when it matches none.
pub(crate) fn refusal(cond: &Cond) -> Option<String> {
    let kinds: Vec<EventKind> = match required_kinds(cond) {
        Some(set) => {
            let mut kinds: Vec<EventKind> = set
                .into_iter()
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            kinds.sort();
            kinds
        }
        None => EventKind::all().collect(),
    };
    for kind in kinds {
        for who in &PROTECTED {
            if cond.eval(&synthetic(who, kind)) {
                return Some(format!(
                    "this hold could stop {} (its condition matches a {kind} event of {} {}): a held \
                     init, service manager or agent freezes the host",
                    who.what, who.comm, who.exe
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::{Action, RuleSet};
    use auditloop_model::HoldDecision;

    use super::{DEFAULT_HOLD_TIMEOUT_NS, HoldSpec};

    fn rule(condition: &str, extra: &str) -> String {
        format!("- rule: r\n  condition: {condition}\n  output: o\n  actions: [hold]\n{extra}")
    }

    #[test]
    fn settings_default_to_five_minutes_and_deny() {
        let set = RuleSet::parse(
            "t.yaml",
            &rule("evt.kind = exec and exec.filename = /opt/x/run", ""),
        )
        .unwrap();
        let r = &set.rules()[0];
        assert_eq!(r.actions(), &[Action::Hold]);
        assert_eq!(r.hold(), Some(HoldSpec::default()));
        assert_eq!(HoldSpec::default().timeout_ns, DEFAULT_HOLD_TIMEOUT_NS);
        let set = RuleSet::parse(
            "t.yaml",
            &rule(
                "evt.kind = exec and exec.filename = /opt/x/run",
                "  hold: {timeout: 2s, default: approve}\n",
            ),
        )
        .unwrap();
        assert_eq!(
            set.rules()[0].hold(),
            Some(HoldSpec {
                timeout_ns: 2_000_000_000,
                default: HoldDecision::Approve
            })
        );
        // Acting: a hold rule's kinds wake the actions stage at once.
        assert!(set.acting_kinds().is_some_and(|k| !k.is_empty()));
    }

    #[test]
    fn bad_settings_are_errors_at_their_place() {
        let cases = [
            (
                rule("evt.kind = exec and exec.filename = /opt/x", "  hold: {default: maybe}\n"),
                "unknown hold default `maybe`",
            ),
            (
                rule("evt.kind = exec and exec.filename = /opt/x", "  hold: {timeout: soon}\n"),
                "bad duration `soon`",
            ),
            (
                rule("evt.kind = exec and exec.filename = /opt/x", "  hold: {wait: 1s}\n"),
                "unknown key `wait`",
            ),
            (
                "- rule: r\n  condition: evt.kind = exec and exec.filename = /opt/x\n  output: o\n  hold: {timeout: 1s}\n"
                    .to_string(),
                "need `hold` in `actions`",
            ),
            (
                "- rule: r\n  condition: evt.kind = exec and exec.filename = /opt/x\n  output: o\n  actions: [hold, kill]\n"
                    .to_string(),
                "cannot be combined",
            ),
        ];
        for (text, want) in cases {
            let err = RuleSet::parse("t.yaml", &text).unwrap_err().to_string();
            assert!(err.contains(want), "{want}: {err}");
            assert!(err.contains("t.yaml:"), "{err}");
        }
    }

    /// Each hostile condition, and what the refusal names.
    const HOSTILE: [(&str, &str); 9] = [
        ("evt.kind = exec", "PID 1 (init)"),
        ("proc.pid = 1", "PID 1"),
        ("proc.pid < 10", "PID 1"),
        (
            "evt.kind = exec and exec.filename startswith /usr/",
            "PID 1 (systemd)",
        ),
        (
            "evt.kind = exec and exec.filename = /lib/systemd/systemd",
            "PID 1 (systemd)",
        ),
        ("evt.kind = file and proc.name = systemd", "PID 1 (systemd)"),
        ("evt.kind = exec and proc.name = auditloop", "the agent"),
        (
            "evt.kind = net and proc.exe endswith /auditloop",
            "the agent",
        ),
        (
            "evt.kind = exec and proc.pexe = /usr/lib/systemd/systemd",
            "the service manager",
        ),
    ];

    #[test]
    fn hold_rules_that_could_stop_init_systemd_or_the_agent_are_refused() {
        for (condition, who) in HOSTILE {
            let text = format!("- list: l\n  items: [a]\n{}", rule(condition, ""));
            let err = RuleSet::parse("t.yaml", &text).unwrap_err().to_string();
            assert!(err.contains("t.yaml:3:9"), "{condition}: {err}");
            assert!(err.contains("rule `r`"), "{condition}: {err}");
            assert!(err.contains(who), "{condition}: wants {who}: {err}");
        }
    }

    #[test]
    fn narrow_hold_rules_and_hostile_alert_rules_load() {
        for condition in [
            "evt.kind = exec and exec.filename = /opt/x/run",
            "evt.kind = exec and exec.filename startswith /tmp/jobs/",
            "evt.kind = file and file.path startswith /srv/data/ and user.uid = 1000",
            "evt.kind = exec and proc.name = rsync and user.uid != 0",
        ] {
            RuleSet::parse("t.yaml", &rule(condition, ""))
                .unwrap_or_else(|e| panic!("{condition}: {e}"));
        }
        // The check concerns holds only: an alert may match anything.
        RuleSet::parse(
            "t.yaml",
            "- rule: r\n  condition: evt.kind = exec\n  output: o\n",
        )
        .unwrap();
    }
}
