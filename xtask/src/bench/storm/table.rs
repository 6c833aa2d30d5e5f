//! The storm report as a Markdown table, one row per rate.

use super::{StormReport, accounts_for_generator};

/// Prints the storm's table (Markdown) and its conclusions.
pub(super) fn print(report: &StormReport) {
    println!(
        "\n## Storm: creat+close from {} threads on tmpfs, fresh agent per rate\n",
        report.threads
    );
    println!("{}\n", report.machine.describe());
    println!(
        "| target /s | achieved /s | captured /s | G | J | G−J | L | U | J w/o ret | other losses | enter: runs+miss−G (idle) | close: runs+miss−G (idle) | misses | agent CPU s | events per CPU-s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for s in &report.steps {
        let other: u64 = s
            .losses
            .iter()
            .filter(|(k, _)| !accounts_for_generator(k))
            .map(|(_, v)| v)
            .sum();
        let target = if s.target_rate == 0 {
            "max".to_string()
        } else {
            s.target_rate.to_string()
        };
        println!(
            "| {target} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {other} | {} ({:.0}) | {} ({:.0}) | {} | {:.2} | {:.0} |",
            s.achieved_rate,
            s.captured_rate,
            s.generated,
            s.journaled,
            s.generated.saturating_sub(s.journaled),
            s.accounted,
            s.unaccounted,
            s.journaled_without_ret,
            s.enter.residual,
            s.enter.idle_runs_scaled,
            s.close.residual,
            s.close.idle_runs_scaled,
            s.enter.burst.recursion_misses
                + s.exit.burst.recursion_misses
                + s.close.burst.recursion_misses,
            s.agent_cpu_s,
            s.events_per_cpu_second,
        );
    }
    let show = |r: Option<f64>| r.map_or("none".to_string(), |r| format!("{r:.0}/s"));
    println!(
        "\nLargest rate with no unaccounted loss: {}; with no loss at all: {}.",
        show(report.max_rate_no_unaccounted),
        show(report.max_rate_no_loss)
    );
    if report.steps.iter().any(|s| !s.drained) {
        println!("Some rates ended before the agent went quiet (60 s): their CPU figure is low.");
    }
}
