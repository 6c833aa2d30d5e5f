//! `auditloop status`: the running agent's health from its status file.

use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use crate::cli::StatusArgs;
use crate::config::Config;
use crate::status::{Health, Report, is_agent_process, judge, path_in};
use crate::telemetry::now_ms;

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct Output<'a> {
    status: Health,
    problems: &'a [String],
    agent: Option<&'a Report>,
}

/// Exit status when the status cannot be told (unreadable config or status file).
const UNKNOWN: u8 = 3;

/// Runs the command; a status that cannot be told exits 3 (like a monitoring plugin's UNKNOWN), never
/// with the code of a state it did not see.
pub fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    match report(args) {
        Ok(code) => Ok(code),
        Err(err) => {
            eprintln!("auditloop: status unknown: {err:#}");
            Ok(ExitCode::from(UNKNOWN))
        }
    }
}

fn report(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let state_dir = match &args.state_dir {
        Some(dir) => dir.clone(),
        None => Config::load(&args.config)?.state_dir,
    };
    let path = path_in(&state_dir);
    let report: Option<Report> = match std::fs::read_to_string(&path) {
        Ok(text) => Some(
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not a status file", path.display()))?,
        ),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => {
            return Err(anyhow::Error::new(err).context(format!("reading {}", path.display())));
        }
    };
    let alive = report.as_ref().is_some_and(|r| is_agent_process(r.pid));
    let (health, problems) = judge(report.as_ref(), alive, now_ms());
    if args.json {
        let out = Output {
            status: health,
            problems: &problems,
            agent: report.as_ref(),
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", human(health, &problems, report.as_ref()));
    }
    Ok(ExitCode::from(health.exit_code()))
}

/// The human-readable report.
fn human(health: Health, problems: &[String], report: Option<&Report>) -> String {
    let mut out = String::new();
    let word = match health {
        Health::Healthy => "healthy",
        Health::Degraded => "DEGRADED",
        Health::NotRunning => "NOT RUNNING",
    };
    out.push_str(&format!("auditloop: {word}\n"));
    for p in problems {
        out.push_str(&format!("  ! {p}\n"));
    }
    let Some(r) = report.filter(|_| health != Health::NotRunning) else {
        return out;
    };
    let t = &r.telemetry;
    let now = now_ms();
    let line = |out: &mut String, k: &str, v: String| out.push_str(&format!("  {k:<12} {v}\n"));
    line(
        &mut out,
        "pid",
        format!(
            "{} (version {}, up {} s)",
            r.pid,
            r.version,
            now.saturating_sub(r.started_ms) / 1000
        ),
    );
    line(
        &mut out,
        "capture",
        format!(
            "{} programs, tier {}, ring buffer {} bytes (peak backlog {} bytes)\n  kernel {}: {}",
            t.rare.tracepoints,
            r.tier,
            t.rare.ring_buffer_bytes,
            t.ring_backlog_peak_bytes,
            t.rare.kernel,
            t.rare.features
        ),
    );
    line(
        &mut out,
        "events",
        format!("{} this run, {:.1}/s", t.events, r.events_per_second),
    );
    let lost: u64 = t.rare.losses.values().sum();
    line(
        &mut out,
        "losses",
        if lost == 0 {
            "none".into()
        } else {
            format!("{lost} ({:?})", t.rare.losses)
        },
    );
    line(
        &mut out,
        "journal",
        format!(
            "{} bytes, seq {}, last checkpoint {} s ago{}",
            t.journal_bytes,
            t.last_seq,
            now.saturating_sub(t.last_checkpoint_ms) / 1000,
            if t.journal_impaired { ", IMPAIRED" } else { "" }
        ),
    );
    match &t.rare.ship {
        Some(s) => line(
            &mut out,
            "shipping",
            format!(
                "{}{} as {}: acked {} (lag {}), last ack {}, {} retries",
                s.collector,
                if s.collectors.len() > 1 {
                    format!(
                        " (collector {} of {}, {} switches)",
                        s.collectors
                            .iter()
                            .position(|u| *u == s.collector)
                            .map_or(0, |i| i + 1),
                        s.collectors.len(),
                        s.collector_switches
                    )
                } else {
                    String::new()
                },
                s.host_id,
                s.acked_seq,
                t.last_seq.saturating_sub(s.acked_seq),
                if s.last_ack_ms == 0 {
                    "none this run".into()
                } else {
                    format!("{} s ago", now.saturating_sub(s.last_ack_ms) / 1000)
                },
                s.retries
            ),
        ),
        None => line(&mut out, "shipping", "off".into()),
    }
    match &r.webhook {
        Some(hook) => line(
            &mut out,
            "webhook",
            format!(
                "{}: {} delivered, {} failed{}",
                hook.url,
                hook.delivered,
                hook.failed,
                match &hook.last_error {
                    Some(why) if hook.failed > 0 => format!(
                        " (the last {} s ago: {why})",
                        now.saturating_sub(hook.last_failed_ms) / 1000
                    ),
                    _ => String::new(),
                }
            ),
        ),
        None => line(&mut out, "webhook", "off".into()),
    }
    let rules = &t.rare.rules;
    line(
        &mut out,
        "rules",
        format!(
            "{} from {} ({} in the kernel), last reload {}",
            rules.rules,
            rules.path,
            rules.kernel_rules,
            rules.last_reload.as_deref().unwrap_or("none")
        ),
    );
    let tamper: u64 = t.rare.tamper.values().sum();
    line(
        &mut out,
        "tamper",
        if tamper == 0 {
            "none".into()
        } else {
            format!("{tamper} ({:?})", t.rare.tamper)
        },
    );
    if let Some(m) = &r.metrics_listen {
        line(&mut out, "metrics", format!("http://{m}/metrics"));
    }
    out
}
