//! `cargo xtask bench overhead`: what tracing costs the traced, side by side with the same workloads.
//!
//! Configurations, interleaved round by round (none, floor, auditloop, auditd, none, …):
//! - `none`: no tracer;
//! - `floor`: bpftrace with empty programs on exactly the tracepoints the agent attaches (read from a
//!   running agent's links at the start: `tp_name` in `/proc/<pid>/fdinfo`);
//! - `auditloop`: the release agent, `rules/default.yaml`, journal in a temporary state directory, shipping
//!   to a local collector, `--output none`;
//! - `auditd`: auditd recording the agent's exec, write-open, file-change and connect syscalls.
//!
//! Each tracer is started once per configuration and round, kept running across the round's three
//! workloads, and stopped (process reaped, its BPF programs unloaded or its audit rules deleted) before the
//! next configuration starts. Workloads: an exec loop (`/bin/true`), an open/write/close loop on tmpfs in
//! this process, and a build-like run (6 gcc compiles, `tar czf /usr/include`). After each workload the
//! bench waits until the tracer has gone quiet, so its CPU figure includes the backlog it left.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

mod table;

use super::agent::{self, Agent, Sink};
use super::audit::{self, AuditGuard, Auditd};
use super::floor::Floor;
use super::report::{self, Machine};
use super::scratch::Scratch;
use super::{bpf, interrupt, proc, workloads};

/// Options of `cargo xtask bench overhead`.
#[derive(Clone, Debug, clap::Args)]
pub struct OverheadArgs {
    /// Rounds (each runs every configuration once).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Execs of `/bin/true` per round.
    #[arg(long, default_value_t = 1000)]
    pub execs: usize,
    /// open/write/close iterations per round.
    #[arg(long, default_value_t = 50_000)]
    pub file_ops: usize,
}

/// The configurations, in the order each round runs them.
const CONFIGS: [Config; 4] = [
    Config::None,
    Config::Floor,
    Config::Auditloop,
    Config::Auditd,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Config {
    None,
    Floor,
    Auditloop,
    Auditd,
}

impl Config {
    fn name(self) -> &'static str {
        match self {
            Config::None => "none",
            Config::Floor => "floor",
            Config::Auditloop => "auditloop",
            Config::Auditd => "auditd",
        }
    }
}

/// The workloads, in the order a round runs them.
const WORKLOADS: [Workload; 3] = [Workload::Exec, Workload::File, Workload::Build];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Workload {
    Exec,
    File,
    Build,
}

/// One workload's figures in one round.
#[derive(Clone, Debug, Serialize)]
struct Sample {
    config: Config,
    round: usize,
    workload: Workload,
    /// Wall time of the whole workload.
    wall_s: f64,
    /// Time per operation (exec, file iteration) in µs; the wall time for the build-like workload.
    per_op: f64,
    /// CPU seconds of the tracer's processes (agent; auditd + kauditd; bpftrace) over the workload and the
    /// backlog it left.
    tracer_cpu_s: f64,
    /// Events the tracer recorded for the workload's time span: journaled events (agent), `SYSCALL`
    /// records (auditd). Everything on the machine in that span, not only the workload's.
    events: u64,
    /// Of those, the events of this process and its descendants (the workload's own).
    own_events: u64,
    /// Events lost while the workload ran or the tracer drained it: the counts of the agent's `loss`
    /// events; the kernel audit `lost` counter for auditd.
    lost: u64,
    /// All audit records (auditd only): SYSCALL, EXECVE, PATH, CWD, PROCTITLE, …
    records: u64,
    /// Whether the tracer went quiet within the wait after the workload.
    drained: bool,
}

/// One configuration's run in one round.
#[derive(Clone, Debug, Serialize)]
struct Run {
    config: Config,
    round: usize,
    /// Peak RSS of the agent (auditloop) or auditd, KiB.
    peak_rss_kib: Option<u64>,
    /// Loss events the agent journaled (sum of their counts).
    agent_losses: u64,
    /// Records the kernel's audit lost (auditd).
    audit_lost: u64,
    /// Tracepoint programs loaded by other processes when the configuration started (other agents or
    /// tracers on a shared machine: every configuration pays for them).
    foreign_programs: usize,
    /// Seconds to start the tracer (until capture ran).
    start_s: f64,
    /// Seconds to stop it (until its programs were unloaded).
    stop_s: f64,
}

#[derive(Serialize)]
struct OverheadReport {
    machine: Machine,
    rounds: usize,
    execs: usize,
    file_ops: usize,
    /// The tracepoints the agent attached (and `floor` attaches), `category:name`.
    tracepoints: Vec<String>,
    samples: Vec<Sample>,
    runs: Vec<Run>,
    seconds: f64,
}

/// What a round needs.
struct Bench {
    args: OverheadArgs,
    // Dropped in this order: the collector, then the audit state restored, then the directories removed.
    sink: Sink,
    audit: AuditGuard,
    scratch: Scratch,
    tracepoints: Vec<String>,
    sources: Vec<PathBuf>,
    kauditd: Option<u32>,
}

/// A started tracer.
enum Tracer {
    None,
    Floor(Floor),
    Agent(Agent),
    Auditd(Auditd),
}

impl Tracer {
    fn start(config: Config, ctx: &mut Bench) -> anyhow::Result<Tracer> {
        Ok(match config {
            Config::None => Tracer::None,
            Config::Floor => Tracer::Floor(Floor::start(
                &ctx.tracepoints,
                &ctx.scratch.work.join("floor.bt"),
            )?),
            Config::Auditloop => Tracer::Agent(Agent::start(&mut ctx.sink)?),
            Config::Auditd => {
                let dir = ctx.scratch.work.join("auditd");
                if dir.exists() {
                    std::fs::remove_dir_all(&dir)
                        .with_context(|| format!("removing {}", dir.display()))?;
                }
                Tracer::Auditd(Auditd::start(&dir)?)
            }
        })
    }

    fn pids(&self, kauditd: Option<u32>) -> Vec<u32> {
        match self {
            Tracer::None => Vec::new(),
            Tracer::Floor(f) => vec![f.pid],
            Tracer::Agent(a) => vec![a.pid],
            Tracer::Auditd(d) => std::iter::once(d.pid).chain(kauditd).collect(),
        }
    }
}

/// Runs the bench and prints its tables; writes `target/bench/overhead.json`.
pub fn overhead(args: &OverheadArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    super::prepare(&["auditd", "bpftrace", "bpftool", "gcc"])?;
    let load_before = proc::load_average();
    let scratch = Scratch::create("overhead")?;
    let mut sink = Sink::start(&scratch.work)?;
    let audit = AuditGuard::take()?;
    let tracepoints = discover_tracepoints(&mut sink)?;
    eprintln!(
        "xtask: the agent attaches {} tracepoints; floor attaches empty programs to the same",
        tracepoints.len()
    );
    let sources = workloads::prepare_build(&scratch.tmpfs.join("build"))?;
    let mut ctx = Bench {
        args: args.clone(),
        sink,
        audit,
        scratch,
        tracepoints,
        sources,
        kauditd: proc::find_by_comm("kauditd")?,
    };
    let mut samples = Vec::new();
    let mut runs = Vec::new();
    for round in 1..=args.rounds {
        for config in CONFIGS {
            interrupt::check()?;
            eprintln!("xtask: round {round}/{}: {}", args.rounds, config.name());
            let (s, run) = run_config(config, round, &mut ctx)?;
            samples.extend(s);
            runs.push(run);
        }
    }
    let report = OverheadReport {
        machine: Machine::now(load_before),
        rounds: args.rounds,
        execs: args.execs,
        file_ops: args.file_ops,
        tracepoints: ctx.tracepoints.clone(),
        samples,
        runs,
        seconds: started.elapsed().as_secs_f64(),
    };
    table::print(&report);
    report::write_json("overhead.json", &report)?;
    Ok(())
}

/// Starts the agent once and reads the tracepoints it attached.
fn discover_tracepoints(sink: &mut Sink) -> anyhow::Result<Vec<String>> {
    let mut agent = Agent::start(sink)?;
    let mut names: Vec<String> = agent.links.iter().map(|l| l.tp_name.clone()).collect();
    agent.stop()?;
    agent.remove_state()?;
    names.sort();
    names.dedup();
    names
        .iter()
        .map(|n| Ok(format!("{}:{n}", bpf::tracepoint_category(n)?)))
        .collect()
}

/// Runs the three workloads under `config`.
fn run_config(config: Config, round: usize, ctx: &mut Bench) -> anyhow::Result<(Vec<Sample>, Run)> {
    let foreign_programs = bpf::tracepoint_programs()?;
    let t = Instant::now();
    let mut tracer = Tracer::start(config, ctx)?;
    let start_s = t.elapsed().as_secs_f64();
    let pids = tracer.pids(ctx.kauditd);
    let quiet = |pids: &[u32]| pids.is_empty() || proc::wait_quiet(pids, Duration::from_secs(10));
    quiet(&pids);
    let audit_lost0 = audit::lost()?;
    let mut samples = Vec::new();
    let mut windows = Vec::new();
    let file = ctx.scratch.tmpfs.join("loop.dat");
    let build_dir = ctx.scratch.tmpfs.join("build");
    for workload in WORKLOADS {
        interrupt::check()?;
        let cpu0 = proc::cpu_sum(&pids);
        let log0 = match &tracer {
            Tracer::Auditd(d) => d.log_len(),
            _ => 0,
        };
        let lost0 = audit::lost()?;
        let mono0 = proc::monotonic_ns();
        let (wall, ops) = match workload {
            Workload::Exec => (workloads::exec_loop(ctx.args.execs)?, ctx.args.execs),
            Workload::File => (
                workloads::file_loop(&file, ctx.args.file_ops)?,
                ctx.args.file_ops,
            ),
            Workload::Build => (workloads::build_like(&ctx.sources, &build_dir)?, 1),
        };
        let mono1 = proc::monotonic_ns();
        let drained = quiet(&pids);
        let mono2 = proc::monotonic_ns();
        let tracer_cpu_s = proc::cpu_sum(&pids) - cpu0;
        let log = match &tracer {
            Tracer::Auditd(d) => d.count(log0, d.log_len())?,
            _ => audit::LogCount::default(),
        };
        windows.push((mono0, mono1, mono2));
        let wall_s = wall.as_secs_f64();
        samples.push(Sample {
            config,
            round,
            workload,
            wall_s,
            per_op: if ops > 1 {
                wall_s * 1e6 / ops as f64
            } else {
                wall_s
            },
            tracer_cpu_s,
            events: log.syscalls,
            own_events: log.own_syscalls,
            records: log.records,
            lost: audit::lost()?.saturating_sub(lost0),
            drained,
        });
    }
    let peak_rss_kib = match &tracer {
        Tracer::Agent(a) => a.peak_rss_kib(),
        Tracer::Auditd(d) => proc::peak_rss_kib(d.pid),
        _ => None,
    };
    let audit_lost = audit::lost()?.saturating_sub(audit_lost0);
    let t = Instant::now();
    let mut agent_losses = 0;
    match &mut tracer {
        Tracer::None => {}
        Tracer::Floor(f) => f.stop()?,
        Tracer::Agent(a) => {
            a.stop()?;
            let events = a.export()?;
            let family = agent::family(&events);
            for (sample, &(from, to, drained)) in samples.iter_mut().zip(&windows) {
                let host: Vec<&serde_json::Value> = events
                    .iter()
                    .filter(|e| !agent::AGENT_KINDS.contains(&agent::kind(e)))
                    .filter(|e| (from..=to).contains(&agent::mono_ns(e)))
                    .collect();
                sample.events = host.len() as u64;
                sample.own_events = host
                    .iter()
                    .filter(|e| family.contains(&agent::pid(e)))
                    .count() as u64;
                sample.lost = events
                    .iter()
                    .filter(|e| agent::kind(e) == "loss")
                    .filter(|e| (from..drained).contains(&agent::mono_ns(e)))
                    .filter_map(|e| {
                        e.pointer("/event/loss/count")
                            .and_then(serde_json::Value::as_u64)
                    })
                    .sum();
            }
            agent_losses = events
                .iter()
                .filter(|e| agent::kind(e) == "loss")
                .filter_map(|e| {
                    e.pointer("/event/loss/count")
                        .and_then(serde_json::Value::as_u64)
                })
                .sum();
            a.remove_state()?;
        }
        Tracer::Auditd(d) => {
            d.stop()?;
            ctx.audit.baseline()?;
        }
    }
    let stop_s = t.elapsed().as_secs_f64();
    Ok((
        samples,
        Run {
            config,
            round,
            peak_rss_kib,
            agent_losses,
            audit_lost,
            foreign_programs,
            start_s,
            stop_s,
        },
    ))
}
