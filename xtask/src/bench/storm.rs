//! `cargo xtask bench storm`: the highest sustained event rate the agent takes with no unaccounted loss.
//!
//! For each rate, a fresh agent (default rules, shipping to a local collector, `--output none`) and a
//! generator of `creat`+`close` calls on tmpfs from this process. With `kernel.bpf_stats_enabled=1`
//! (restored afterwards), program run counts come from `bpftool prog show -j`; journaled events and losses
//! from `auditloop export`. Checked per rate (G = the generator's successful creats):
//!
//! 1. End to end, per generator syscall: `G = J + L + U`, with J = `file` events of op `open` journaled
//!    for the generator's files, L = losses the journal counts for that path (`loss` events: kernel
//!    `syscall:open` records, `decode`, `journal`, `spool_overflow`), U = unaccounted. The loss counters
//!    are not per process, so what is checked is `G − J ≤ L` (U = max(0, G − J − L)) and `J ≤ G`.
//! 2. Kernel programs, from bpf_prog_info: every generator call ran the enter program or was counted as
//!    skipped: `Δrun_cnt(enter) + Δrecursion_misses(enter) ≥ G`, likewise for the close program. The
//!    programs are shared (the enter program serves every syscall with as many arguments as `creat`, on any
//!    process), so the exact figure is impossible from run counts; the residual `Δrun_cnt + Δmisses − G`
//!    is shown next to the same program's runs over an idle second before the burst (scaled), its expected
//!    value. Skipped runs (recursion misses) are counted by the kernel but not journaled by the agent:
//!    they are reported as unaccounted in check 1 when they make J short.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

mod table;

use super::agent::{self, Agent, Sink};
use super::bpf::{self, BpfStatsOn, ProgStats};
use super::proc;
use super::report::{self, Machine};
use super::scratch::Scratch;
use super::{generator, interrupt};

/// Options of `cargo xtask bench storm`.
#[derive(Clone, Debug, clap::Args)]
pub struct StormArgs {
    /// Total generator rates to try, calls per second (0 = as fast as the threads can).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "5000,10000,20000,30000,40000,80000,0"
    )]
    pub rates: Vec<u64>,
    /// Seconds of load per rate.
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
    /// Generator threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

/// A kernel program's counters over the burst.
#[derive(Clone, Debug, Default, Serialize)]
struct ProgCheck {
    /// Program id and the tracepoints it is attached to.
    prog_id: u32,
    tracepoints: usize,
    burst: ProgStats,
    /// Runs in the idle second before the burst, scaled to the burst's length.
    idle_runs_scaled: f64,
    /// `Δrun_cnt + Δrecursion_misses − G`: the runs the generator does not explain.
    residual: i64,
}

/// One rate's figures.
#[derive(Clone, Debug, Default, Serialize)]
struct Step {
    target_rate: u64,
    achieved_rate: f64,
    seconds: f64,
    /// G: successful creats.
    generated: u64,
    failed_calls: u64,
    /// J: their journaled `file` events.
    journaled: u64,
    /// Of those, how many have no return value (their exit record was lost or missed).
    journaled_without_ret: u64,
    /// Loss counts by `stage/record`, from the journal's `loss` events.
    losses: BTreeMap<String, u64>,
    /// L: the losses that can stand for a generator event.
    accounted: u64,
    /// U: max(0, G − J − L).
    unaccounted: u64,
    enter: ProgCheck,
    exit: ProgCheck,
    close: ProgCheck,
    /// Events per second captured (J over the burst).
    captured_rate: f64,
    /// Agent CPU seconds from the burst's start until it went quiet.
    agent_cpu_s: f64,
    /// All host events journaled from the burst's start on.
    events_total: u64,
    /// events_total / agent_cpu_s.
    events_per_cpu_second: f64,
    /// Tracepoint programs of other processes loaded when the step started (they share the CPUs and the
    /// tracepoints).
    foreign_programs: usize,
    /// Whether the agent went quiet within 60 s of the burst.
    drained: bool,
    /// The agent's `agent_stop` counters.
    agent_stop: serde_json::Value,
}

#[derive(Serialize)]
struct StormReport {
    machine: Machine,
    threads: usize,
    steps: Vec<Step>,
    max_rate_no_unaccounted: Option<f64>,
    max_rate_no_loss: Option<f64>,
}

/// Loss stages/records that may stand for a lost generator event.
fn accounts_for_generator(key: &str) -> bool {
    matches!(key, "kernel_ring_buffer/syscall:open" | "decode/unknown")
        || key.starts_with("journal/")
        || key.starts_with("spool_overflow/")
}

/// Runs the storm and prints its table; writes `target/bench/storm.json`.
pub fn storm(args: &StormArgs) -> anyhow::Result<()> {
    super::prepare(&["bpftool"])?;
    let load_before = proc::load_average();
    let scratch = Scratch::create("storm")?;
    let mut sink = Sink::start(&scratch.work)?;
    let _stats = BpfStatsOn::enable()?;
    let mut steps = Vec::new();
    for (i, &rate) in args.rates.iter().enumerate() {
        interrupt::check()?;
        eprintln!(
            "xtask: storm at {}",
            if rate == 0 {
                "full speed".into()
            } else {
                format!("{rate}/s")
            }
        );
        let dir = scratch.tmpfs.join(format!("step{i}"));
        steps.push(run_step(&mut sink, &dir, rate, args)?);
    }
    let best = |ok: fn(&Step) -> bool| {
        steps
            .iter()
            .filter(|s| ok(s))
            .map(|s| s.achieved_rate)
            .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))))
    };
    let report = StormReport {
        machine: Machine::now(load_before),
        threads: args.threads,
        max_rate_no_unaccounted: best(|s| s.unaccounted == 0 && s.failed_calls == 0),
        max_rate_no_loss: best(|s| s.unaccounted == 0 && s.journaled == s.generated),
        steps,
    };
    table::print(&report);
    report::write_json("storm.json", &report)?;
    Ok(())
}

/// The program attached to tracepoint `tp` and how many tracepoints it serves.
fn program_for(agent: &Agent, tp: &str) -> anyhow::Result<(u32, usize)> {
    let id = agent
        .links
        .iter()
        .find(|l| l.tp_name == tp)
        .map(|l| l.prog_id)
        .ok_or_else(|| anyhow::anyhow!("the agent attached nothing to {tp}"))?;
    Ok((id, agent.links.iter().filter(|l| l.prog_id == id).count()))
}

fn run_step(
    sink: &mut Sink,
    dir: &std::path::Path,
    rate: u64,
    args: &StormArgs,
) -> anyhow::Result<Step> {
    let foreign_programs = bpf::tracepoint_programs()?;
    let mut agent = Agent::start(sink)?;
    proc::wait_quiet(&[agent.pid], Duration::from_secs(15));
    let progs = [
        program_for(&agent, "sys_enter_creat")?,
        program_for(&agent, "sys_exit_creat")?,
        program_for(&agent, "sys_enter_close")?,
    ];
    let idle0 = bpf::prog_stats()?;
    let idle_started = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let idle1 = bpf::prog_stats()?;
    let idle_s = idle_started.elapsed().as_secs_f64();

    let cpu0 = proc::cpu_sum(&[agent.pid]);
    let mono0 = proc::monotonic_ns();
    let s0 = bpf::prog_stats()?;
    let generated = generator::generate(
        dir,
        args.threads,
        rate as f64,
        Duration::from_secs(args.seconds),
    )?;
    let s1 = bpf::prog_stats()?;
    let drained = proc::wait_quiet(&[agent.pid], Duration::from_secs(60));
    let agent_cpu_s = proc::cpu_sum(&[agent.pid]) - cpu0;
    agent.stop()?;
    let events = agent.export()?;
    agent.remove_state()?;

    let g = generated.creats;
    let check = |(id, tracepoints): (u32, usize)| {
        let get = |m: &BTreeMap<u32, ProgStats>| m.get(&id).copied().unwrap_or_default();
        let burst = get(&s1).since(get(&s0));
        let idle = get(&idle1).since(get(&idle0));
        ProgCheck {
            prog_id: id,
            tracepoints,
            burst,
            idle_runs_scaled: idle.run_cnt as f64 * generated.seconds / idle_s,
            residual: (burst.run_cnt + burst.recursion_misses) as i64 - g as i64,
        }
    };
    let prefix = format!("{}/", dir.display());
    let mine: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| agent::kind(e) == "file")
        .filter(|e| e.pointer("/event/file/op").and_then(|v| v.as_str()) == Some("open"))
        .filter(|e| {
            e.pointer("/event/file/path")
                .and_then(|v| v.as_str())
                .is_some_and(|p| p.starts_with(&prefix))
        })
        .collect();
    let journaled = mine.len() as u64;
    let journaled_without_ret = mine
        .iter()
        .filter(|e| {
            e.pointer("/event/file/ret")
                .is_none_or(serde_json::Value::is_null)
        })
        .count() as u64;
    let mut losses = BTreeMap::new();
    for e in events.iter().filter(|e| agent::kind(e) == "loss") {
        let stage = e
            .pointer("/event/loss/stage")
            .and_then(|v| v.as_str())
            .unwrap_or("?");
        let record = e
            .pointer("/event/loss/record")
            .and_then(|v| v.as_str())
            .unwrap_or("?");
        let count = e
            .pointer("/event/loss/count")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        *losses.entry(format!("{stage}/{record}")).or_insert(0) += count;
    }
    let accounted = losses
        .iter()
        .filter(|(k, _)| accounts_for_generator(k))
        .map(|(_, v)| v)
        .sum();
    let events_total = events
        .iter()
        .filter(|e| !agent::AGENT_KINDS.contains(&agent::kind(e)))
        .filter(|e| agent::mono_ns(e) >= mono0)
        .count() as u64;
    let agent_stop = events
        .iter()
        .find(|e| agent::kind(e) == "agent_stop")
        .and_then(|e| e.pointer("/event/agent_stop").cloned())
        .unwrap_or_default();
    Ok(Step {
        target_rate: rate,
        achieved_rate: g as f64 / generated.seconds,
        seconds: generated.seconds,
        generated: g,
        failed_calls: generated.failed,
        journaled,
        journaled_without_ret,
        accounted,
        unaccounted: g.saturating_sub(journaled).saturating_sub(accounted),
        losses,
        enter: check(progs[0]),
        exit: check(progs[1]),
        close: check(progs[2]),
        captured_rate: journaled as f64 / generated.seconds,
        agent_cpu_s,
        events_total,
        events_per_cpu_second: if agent_cpu_s > 0.0 {
            events_total as f64 / agent_cpu_s
        } else {
            0.0
        },
        foreign_programs,
        drained,
        agent_stop,
    })
}
