//! `auditloop drill`: tests the loop end to end on a running agent. For each enabled rule it derives a
//! harmless stimulus from the rule's condition ([`plan::derive`]), performs it in a disposable child
//! process, and watches the agent's journal for the rule's `alert` (and the `action` records of its kills).
//!
//! Actions are drilled too, in a sandbox and never on a rule's real target: a rule on `config_change`
//! events (a rollback rule) is pointed at a stand-in file of the drill's own, in a fresh directory, by a
//! drill overlay the agent stages for a bounded time over its root-only control socket
//! ([`crate::actions::overlay`]); the drill then overwrites the stand-in and checks that the rollback
//! restored the exact bytes. A kill rule's stimulus writes a marker after a grace period, which must never
//! appear. Other stimuli: a `chmod` to setuid of the drill's own file, a copy of the shell named like a
//! server that runs a copy named like a shell, a program copy named like a shell that connects to a
//! listener the drill opens on 127.0.0.1, a signal 0 to the agent.
//!
//! The drill never modifies an existing file it did not create, opens other existing files only
//! read-only, creates only files and directories named `auditloop-drill-<nonce>` (and files inside such
//! a directory) and removes them again, and runs every stimulus in a child in its own process group, so a
//! rule's kill (or group kill) never reaches the drill. Rules are drilled one at a time, in file order.
//! Only journal records appended after the drill started count, and an alert counts only when its
//! triggering event came from that rule's stimulus processes. With `alerts.webhook` configured, each
//! alert must also be recorded as delivered in the agent's status file ([`delivery`]).

mod candidates;
mod child;
mod delivery;
mod follow;
mod ops;
mod perform;
pub mod plan;
mod report;
mod sim;
mod stage;
mod uring;
mod watch;
pub mod words;

#[cfg(test)]
mod plan_tests;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use auditloop_model::WallTime;

use crate::cli::DrillArgs;
use crate::config::Config;
use auditloop_rules::{Rule, RuleSet};
use follow::Follower;
use ops::{Context, Op};
use plan::Stimulus;
use report::{Outcome, Row};
use watch::{AgentLink, Watch};

/// Exit status when a drillable rule did not fire end to end.
pub const EXIT_MISSED: u8 = 1;
/// Exit status of a usage error: bad rules, no journal, no running agent, not root.
pub const EXIT_USAGE: u8 = 2;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

fn usage(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("auditloop drill: {message}");
    Ok(ExitCode::from(EXIT_USAGE))
}

/// Runs the drill and prints the report.
pub fn run(args: &DrillArgs) -> anyhow::Result<ExitCode> {
    if let Some(addr) = args.stimulus_connect {
        return connect_stimulus(addr);
    }
    if !nix::unistd::geteuid().is_root() {
        return usage(
            "must run as root: it reads the agent's journal and performs stimuli such as a read of \
             /etc/shadow (try: sudo auditloop drill)",
        );
    }
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(e) => return usage(e),
    };
    let rules_path = args.rules.clone().unwrap_or_else(|| config.rules.clone());
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| config.state_dir.clone());
    let set = match RuleSet::load(&rules_path) {
        Ok(set) => set,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let words = match words::read(&rules_path) {
        Ok(words) => words,
        Err(e) => return usage(e),
    };
    let journal = state_dir.join("journal");
    if !journal.is_dir() {
        return usage(format!(
            "{}: no journal (is `auditloop run` using --state-dir {}?)",
            journal.display(),
            state_dir.display()
        ));
    }
    let Some(agent_pid) = follow::journal_writer(&journal) else {
        return usage(format!(
            "no agent is running on {}: no process holds a segment of {} open for writing \
             (start `auditloop run --state-dir {}` first)",
            state_dir.display(),
            journal.display(),
            state_dir.display()
        ));
    };
    let follower = Follower::at_end(&journal)?;
    for signal in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        let action = nix::sys::signal::SigAction::new(
            nix::sys::signal::SigHandler::Handler(on_signal),
            nix::sys::signal::SaFlags::empty(),
            nix::sys::signal::SigSet::empty(),
        );
        // SAFETY: the handler only stores to an atomic.
        unsafe { nix::sys::signal::sigaction(signal, &action) }?;
    }

    let base = base_context(args.timeout, agent_pid);
    let mut agent = AgentLink {
        socket: crate::holdctl::socket_path(&state_dir),
        webhook: config
            .alerts
            .webhook
            .as_ref()
            .map(|_| delivery::StatusFile::new(crate::status::path_in(&state_dir))),
    };
    let plans: Vec<(&Rule, Context, Result<Stimulus, String>)> = set
        .rules()
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let ctx = Context {
                nonce: format!("{}-{i}", base.nonce),
                ..base.clone()
            };
            let plan = plan::derive(&set, rule, words.get(rule.name()), &ctx);
            (rule, ctx, plan)
        })
        .collect();
    let widths = report::widths(
        plans
            .iter()
            .map(|(rule, _, plan)| (rule.name(), plan.as_ref().map_or("-", |s| s.label.as_str()))),
    );
    if !args.json {
        println!(
            "drilling {} rules from {} against agent pid {agent_pid} ({}), {} s per rule",
            plans.len(),
            rules_path.display(),
            journal.display(),
            args.timeout
        );
        println!("{}", report::line(widths, "RULE", "STIMULUS", "RESULT"));
    }
    let mut watch = Watch::new(follower);
    let timeout = Duration::from_secs(args.timeout);
    let mut rows = Vec::new();
    for (rule, ctx, plan) in plans {
        let row = match plan {
            Err(why) => Row::new(rule.name(), None, Outcome::NotDrillable(why)),
            Ok(_) if interrupted() || watch.agent_stopped() => {
                let why = if watch.agent_stopped() {
                    "the agent stopped (agent_stop journaled)"
                } else {
                    "interrupted before this rule"
                };
                Row::new(rule.name(), None, Outcome::Error(why.into()))
            }
            Ok(stimulus) => {
                let (outcome, left) = watch::drill(
                    rule,
                    &stimulus,
                    &ctx,
                    &mut watch,
                    timeout,
                    interrupted,
                    &mut agent,
                )?;
                let outcome = with_hint(outcome, &stimulus, &config);
                let mut row = Row::new(rule.name(), Some(stimulus.label.clone()), outcome);
                row.left_behind = left.iter().map(|p| p.display().to_string()).collect();
                row
            }
        };
        if !args.json {
            let stimulus = row.stimulus.as_deref().unwrap_or("-");
            let result = row.result_text(args.timeout);
            println!("{}", report::line(widths, &row.rule, stimulus, &result));
        }
        rows.push(row);
    }
    let webhook = webhook_note(&config, &rows, watch.webhook_dropped());
    let drillable = rows.iter().filter(|r| r.drillable()).count();
    let fired = rows.iter().filter(|r| r.result == "fired").count();
    if args.json {
        let report = report::Report {
            rules: rules_path.display().to_string(),
            journal: journal.display().to_string(),
            agent_pid,
            nonce: &base.nonce,
            timeout_secs: args.timeout,
            drillable,
            fired,
            webhook,
            results: &rows,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if let Some(note) = &webhook {
            println!("webhook: {note}");
        }
        println!(
            "{fired} of {drillable} drillable rules fired end to end; {} not drillable",
            rows.len() - drillable
        );
    }
    Ok(if fired == drillable {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_MISSED)
    })
}

/// The drilled alerts' deliveries to `alerts.webhook` in sum (each row has its own), and the deliveries
/// the agent journaled as dropped (`loss`, stage `webhook`) during the drill. Nothing without a webhook.
fn webhook_note(config: &Config, rows: &[Row], dropped: u64) -> Option<String> {
    config.alerts.webhook.as_ref()?;
    let count = |word: &str| rows.iter().filter(|r| r.webhook == Some(word)).count();
    let mut note = format!(
        "{} alerts delivered, {} failed, {} unconfirmed (as the agent's status file records them)",
        count("delivered"),
        count("failed"),
        count("unconfirmed")
    );
    if dropped > 0 {
        note.push_str(&format!(
            "; the agent journaled {dropped} dropped alert deliveries during the drill"
        ));
    }
    Some(note)
}

/// The connection stimulus, run by a program copy of the drill: connects to `addr` (the drill's own
/// listener on 127.0.0.1) and exits.
fn connect_stimulus(addr: std::net::SocketAddr) -> anyhow::Result<ExitCode> {
    if !addr.ip().is_loopback() {
        anyhow::bail!("the drill connects only to 127.0.0.1, not {addr}");
    }
    let stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    drop(stream);
    Ok(ExitCode::SUCCESS)
}

/// The drill process's own facts (the nonce is made unique per rule by the caller).
fn base_context(timeout_secs: u64, agent_pid: u32) -> Context {
    let pid = std::process::id();
    let nanos = WallTime::now().0;
    Context {
        nonce: format!("{pid:x}{:06x}", nanos & 0xff_ffff),
        pid,
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        comm: std::fs::read_to_string("/proc/self/comm")
            .map(|c| c.trim_end().to_owned())
            .unwrap_or_else(|_| "auditloop".into()),
        exe: std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        argv: std::env::args().collect(),
        linger_secs: timeout_secs + 1,
        agent_pid,
        host: ops::Host::real(),
    }
}

/// Adds a hint to a missing alert: read-only opens are only captured for `capture.sensitive_paths`.
fn with_hint(outcome: Outcome, stimulus: &Stimulus, config: &Config) -> Outcome {
    let Outcome::NoAlert { hint: None } = outcome else {
        return outcome;
    };
    let uncaptured = stimulus.ops.iter().find_map(|op| match op {
        Op::Read { path } => (!config
            .capture
            .sensitive_paths
            .iter()
            .any(|s| path.starts_with(s.as_str())))
        .then_some(path),
        _ => None,
    });
    Outcome::NoAlert {
        hint: uncaptured.map(|path| {
            format!(
                "{path} is not in capture.sensitive_paths, so its read-only opens are not recorded"
            )
        }),
    }
}
