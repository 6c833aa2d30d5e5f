//! The overhead report as Markdown tables: one per workload (medians and min–max over rounds), one per
//! configuration's runs.

use super::{CONFIGS, Config, OverheadReport, Run, Sample, Workload, workloads};
use crate::bench::stats::Spread;

fn samples_of<'a>(
    report: &'a OverheadReport,
    config: Config,
    workload: Workload,
) -> impl Iterator<Item = &'a Sample> + 'a {
    report
        .samples
        .iter()
        .filter(move |s| s.config == config && s.workload == workload)
}

fn spread(
    report: &OverheadReport,
    config: Config,
    workload: Workload,
    f: fn(&Sample) -> f64,
) -> Spread {
    Spread::of(
        &samples_of(report, config, workload)
            .map(f)
            .collect::<Vec<_>>(),
    )
}

/// Prints the report's tables (Markdown).
pub(super) fn print(report: &OverheadReport) {
    println!(
        "\n## Overhead: {} rounds, interleaved (medians, min–max over rounds)\n",
        report.rounds
    );
    println!("{}\n", report.machine.describe());
    let titles = [
        (
            Workload::Exec,
            format!(
                "exec loop: {} × fork+exec of /bin/true, µs per exec",
                report.execs
            ),
        ),
        (
            Workload::File,
            format!(
                "file loop: {} × open/write/close on tmpfs, µs per iteration",
                report.file_ops
            ),
        ),
        (
            Workload::Build,
            format!(
                "build-like: {} gcc -O2 -c + tar czf /usr/include, wall seconds",
                workloads::COMPILES
            ),
        ),
    ];
    for (workload, title) in titles {
        println!("### {title}\n");
        println!(
            "| config | time | vs none | tracer CPU s | own events | all events | lost | audit records |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        let base = spread(report, Config::None, workload, |s| s.per_op).median;
        for config in CONFIGS {
            let time = spread(report, config, workload, |s| s.per_op);
            let ratio = if base > 0.0 { time.median / base } else { 0.0 };
            let cpu = spread(report, config, workload, |s| s.tracer_cpu_s);
            let events = spread(report, config, workload, |s| s.events as f64);
            let own = spread(report, config, workload, |s| s.own_events as f64);
            let lost = spread(report, config, workload, |s| s.lost as f64);
            let records = spread(report, config, workload, |s| s.records as f64);
            let dash = |show: bool, text: String| if show { text } else { "–".into() };
            println!(
                "| {} | {} | ×{ratio:.2} | {} | {} | {} | {} | {} |",
                config.name(),
                time.show(if workload == Workload::Build { 2 } else { 1 }),
                dash(config != Config::None, cpu.show(2)),
                dash(
                    matches!(config, Config::Auditloop | Config::Auditd),
                    own.show(0)
                ),
                dash(
                    matches!(config, Config::Auditloop | Config::Auditd),
                    events.show(0)
                ),
                dash(
                    matches!(config, Config::Auditloop | Config::Auditd),
                    lost.show(0)
                ),
                dash(config == Config::Auditd, records.show(0)),
            );
        }
        println!();
    }
    println!("### per round\n");
    println!(
        "| config | peak RSS MiB | agent losses | audit lost | foreign BPF programs | start s | stop s |"
    );
    println!("|---|---|---|---|---|---|---|");
    for config in CONFIGS {
        let runs: Vec<&Run> = report.runs.iter().filter(|r| r.config == config).collect();
        let of = |f: fn(&Run) -> f64| Spread::of(&runs.iter().map(|r| f(r)).collect::<Vec<_>>());
        let rss = of(|r| r.peak_rss_kib.map_or(f64::NAN, |k| k as f64 / 1024.0));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            config.name(),
            if matches!(config, Config::Auditloop | Config::Auditd) {
                rss.show(1)
            } else {
                "–".into()
            },
            of(|r| r.agent_losses as f64).show(0),
            of(|r| r.audit_lost as f64).show(0),
            of(|r| r.foreign_programs as f64).show(0),
            of(|r| r.start_s).show(1),
            of(|r| r.stop_s).show(1),
        );
    }
    let undrained = report.samples.iter().filter(|s| !s.drained).count();
    if undrained > 0 {
        println!(
            "\n{undrained} workload(s) ended before the tracer went quiet (10 s wait): their CPU is low."
        );
    }
    println!("\n{:.0} s in all.", report.seconds);
}
