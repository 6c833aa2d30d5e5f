//! The status file: the running agent writes what it knows of its health to `<state_dir>/status.json`
//! once a second (and `"state": "stopped"` at a clean stop); `auditloop status` reads it, checks that the
//! process it names is alive and is the agent, and judges health. A file that still says `running` when
//! the agent starts again means the previous run ended without a clean stop.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::actions::deliveries::{Deliveries, WebhookStatus};
use crate::telemetry::{Snapshot, now_ms};

/// The status file's name in the state directory.
pub const STATUS_FILE: &str = "status.json";

/// How long after the last update a running agent counts as hung.
pub const STALE_MS: u64 = 5_000;
/// How recent a loss or a tamper event must be to make the agent degraded.
pub const RECENT_MS: u64 = 300_000;
/// How long the oldest unacknowledged record may wait before shipping counts as behind.
pub const SHIP_BEHIND_MS: u64 = 60_000;
/// How old the last checkpoint may be (the heartbeat signs one every 3 s).
pub const CHECKPOINT_STALE_MS: u64 = 10_000;

/// What the status file holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    /// The agent's pid.
    pub pid: u32,
    /// Agent version.
    pub version: String,
    /// `running` or `stopped` (a clean stop).
    pub state: String,
    /// When the run started (Unix ms).
    pub started_ms: u64,
    /// When this report was written (Unix ms).
    pub updated_ms: u64,
    /// Config file.
    pub config: String,
    /// State directory.
    pub state_dir: String,
    /// Capture tier: how rules are enforced: `lsm` (BPF LSM hooks) or `kernel` (tracepoints), with
    /// `+exec_guard` while the fanotify exec guard runs.
    pub tier: String,
    /// Events journaled per second over the last interval.
    pub events_per_second: f64,
    /// The metrics endpoint, when on.
    pub metrics_listen: Option<String>,
    /// Alert deliveries to `alerts.webhook`, when configured.
    #[serde(default)]
    pub webhook: Option<WebhookStatus>,
    /// The counters.
    #[serde(flatten)]
    pub telemetry: Snapshot,
}

/// Writes the report once a second.
#[derive(Debug)]
pub struct StatusWriter {
    path: PathBuf,
    base: Report,
    last: Option<(Instant, u64)>,
    webhook: Option<Deliveries>,
}

/// The status file of `state_dir`.
pub fn path_in(state_dir: &Path) -> PathBuf {
    state_dir.join(STATUS_FILE)
}

impl StatusWriter {
    /// A writer for the agent of this process.
    pub fn new(state_dir: &Path, config: &Path, metrics_listen: Option<String>) -> StatusWriter {
        StatusWriter {
            path: path_in(state_dir),
            base: Report {
                pid: std::process::id(),
                version: env!("CARGO_PKG_VERSION").into(),
                state: "running".into(),
                started_ms: now_ms(),
                config: config.display().to_string(),
                state_dir: state_dir.display().to_string(),
                metrics_listen,
                ..Report::default()
            },
            last: None,
            webhook: None,
        }
    }

    /// Reports the webhook's `deliveries` from now on.
    pub fn with_webhook(&mut self, deliveries: Deliveries) {
        self.webhook = Some(deliveries);
    }

    /// The report a previous run left, if it still says `running`: that run did not stop cleanly.
    pub fn unclean_previous(state_dir: &Path) -> Option<Report> {
        let text = std::fs::read_to_string(path_in(state_dir)).ok()?;
        let report: Report = serde_json::from_str(&text).ok()?;
        (report.state == "running").then_some(report)
    }

    /// Writes `snapshot` (atomically: a temporary file renamed over the old one).
    pub fn write(&mut self, snapshot: Snapshot, stopped: bool) -> std::io::Result<()> {
        let now = Instant::now();
        let rate = match self.last {
            Some((at, events)) if now > at => {
                snapshot.events.saturating_sub(events) as f64 / (now - at).as_secs_f64()
            }
            _ => 0.0,
        };
        self.last = Some((now, snapshot.events));
        let report = Report {
            state: if stopped { "stopped" } else { "running" }.into(),
            // The exec guard may start on a reload: the tier follows it.
            tier: format!(
                "{}{}",
                if snapshot.rare.enforcement == "lsm" {
                    "lsm"
                } else {
                    "kernel"
                },
                if snapshot.rare.exec_guard {
                    "+exec_guard"
                } else {
                    ""
                }
            ),
            updated_ms: now_ms(),
            events_per_second: (rate * 10.0).round() / 10.0,
            webhook: self.webhook.as_ref().map(Deliveries::snapshot),
            telemetry: snapshot,
            ..self.base.clone()
        };
        let tmp = self.path.with_extension("json.tmp");
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            serde_json::to_writer_pretty(&mut file, &report)?;
            file.write_all(b"\n")?;
        }
        std::fs::rename(&tmp, &self.path)
    }
}

/// How the agent is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Running and nothing is wrong.
    Healthy,
    /// Running, with problems.
    Degraded,
    /// Not running.
    NotRunning,
}

impl Health {
    /// The exit status of `auditloop status`.
    pub fn exit_code(self) -> u8 {
        match self {
            Health::Healthy => 0,
            Health::Degraded => 1,
            Health::NotRunning => 2,
        }
    }
}

/// Whether `pid` is alive and runs an `auditloop` binary.
pub fn is_agent_process(pid: u32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| {
        exe.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("auditloop"))
    })
}

/// Judges `report` at `now_ms`: its health and every problem, in words.
pub fn judge(report: Option<&Report>, alive: bool, now_ms: u64) -> (Health, Vec<String>) {
    let Some(r) = report else {
        return (
            Health::NotRunning,
            vec![
                "no status file: the agent is not running (or never ran with this state directory)"
                    .into(),
            ],
        );
    };
    if r.state != "running" {
        return (
            Health::NotRunning,
            vec![format!(
                "the agent stopped cleanly {} ago",
                ago(now_ms, r.updated_ms)
            )],
        );
    }
    if !alive {
        return (
            Health::NotRunning,
            vec![format!(
                "pid {} is gone: the agent ended without a clean stop (last seen {} ago)",
                r.pid,
                ago(now_ms, r.updated_ms)
            )],
        );
    }
    let t = &r.telemetry;
    let mut problems = Vec::new();
    let age = now_ms.saturating_sub(r.updated_ms);
    if age > STALE_MS {
        problems.push(format!(
            "the agent has not updated its status for {} (hung?)",
            ago(now_ms, r.updated_ms)
        ));
    }
    if t.journal_impaired {
        problems.push("the journal cannot be written: events are being counted as lost".into());
    }
    if t.last_checkpoint_ms != 0
        && r.updated_ms.saturating_sub(t.last_checkpoint_ms) > CHECKPOINT_STALE_MS
    {
        problems.push(format!(
            "no checkpoint signed for {}",
            ago(r.updated_ms, t.last_checkpoint_ms)
        ));
    }
    if t.rare.last_loss_ms != 0 && now_ms.saturating_sub(t.rare.last_loss_ms) < RECENT_MS {
        let total: u64 = t.rare.losses.values().sum();
        problems.push(format!(
            "{total} records lost this run, the last {} ago ({})",
            ago(now_ms, t.rare.last_loss_ms),
            t.rare
                .losses
                .iter()
                .map(|(stage, n)| format!("{stage}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(ship) = &t.rare.ship {
        if let Some(err) = &ship.last_error {
            problems.push(format!("shipping to {} is failing: {err}", ship.collector));
        }
        let since = if ship.last_ack_ms == 0 {
            r.started_ms
        } else {
            ship.last_ack_ms
        };
        if t.last_seq > ship.acked_seq && r.updated_ms.saturating_sub(since) > SHIP_BEHIND_MS {
            problems.push(format!(
                "shipping is behind: {} records unacknowledged, last acknowledgement {}",
                t.last_seq - ship.acked_seq,
                if ship.last_ack_ms == 0 {
                    "none this run".to_owned()
                } else {
                    format!("{} ago", ago(now_ms, ship.last_ack_ms))
                }
            ));
        }
    }
    if let Some(hook) = &r.webhook
        && hook.last_failed_ms != 0
        && now_ms.saturating_sub(hook.last_failed_ms) < RECENT_MS
    {
        problems.push(format!(
            "the webhook {} is failing: {} alerts not delivered this run ({} delivered), the last {} ago \
             ({}){}",
            hook.url,
            hook.failed,
            hook.delivered,
            ago(now_ms, hook.last_failed_ms),
            hook.last_error.as_deref().unwrap_or("no reason recorded"),
            if hook.last_delivered_ms > hook.last_failed_ms {
                "; deliveries resumed since"
            } else {
                ""
            }
        ));
    }
    if t.rare.rules.last_reload.as_deref() == Some("rejected") {
        problems.push(format!(
            "the last rules reload was rejected (the previous rules stay in force): {}",
            t.rare.rules.last_errors.as_deref().unwrap_or("")
        ));
    }
    if let Some(tamper) = &t.rare.last_tamper
        && now_ms.saturating_sub(tamper.at_ms) < RECENT_MS
    {
        problems.push(format!(
            "tamper {} ago: {} on {} by pid {} ({}): {}",
            ago(now_ms, tamper.at_ms),
            tamper.what,
            tamper.target,
            tamper.by_pid,
            tamper.by_exe,
            tamper.detail
        ));
    }
    let health = if problems.is_empty() {
        Health::Healthy
    } else {
        Health::Degraded
    };
    (health, problems)
}

/// `then` as a duration before `now` (`12 s`, `3 min`).
fn ago(now: u64, then: u64) -> String {
    let secs = now.saturating_sub(then) / 1000;
    if secs < 120 {
        format!("{secs} s")
    } else if secs < 7200 {
        format!("{} min", secs / 60)
    } else {
        format!("{} h", secs / 3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(now: u64) -> Report {
        Report {
            pid: 1,
            state: "running".into(),
            started_ms: now - 1000,
            updated_ms: now - 500,
            ..Report::default()
        }
    }

    #[test]
    fn health_follows_the_report() {
        let now = 10_000_000;
        assert_eq!(judge(None, false, now).0, Health::NotRunning);
        let r = running(now);
        assert_eq!(judge(Some(&r), true, now), (Health::Healthy, vec![]));
        assert_eq!(judge(Some(&r), false, now).0, Health::NotRunning);
        let mut stopped = r.clone();
        stopped.state = "stopped".into();
        assert_eq!(judge(Some(&stopped), true, now).0, Health::NotRunning);
        let mut hung = r.clone();
        hung.updated_ms = now - 60_000;
        assert_eq!(judge(Some(&hung), true, now).0, Health::Degraded);
        let mut lossy = r.clone();
        lossy.telemetry.rare.last_loss_ms = now - 1000;
        lossy.telemetry.rare.losses.insert("journal".into(), 5);
        let (health, problems) = judge(Some(&lossy), true, now);
        assert_eq!(health, Health::Degraded);
        assert!(problems[0].contains("5 records lost"), "{problems:?}");
        let mut behind = r.clone();
        behind.started_ms = now - 120_000;
        behind.telemetry.last_seq = 50;
        behind.telemetry.rare.ship = Some(crate::telemetry::ShipTelemetry {
            acked_seq: 10,
            ..Default::default()
        });
        let (_, problems) = judge(Some(&behind), true, now);
        assert!(
            problems[0].contains("40 records unacknowledged"),
            "{problems:?}"
        );
        let mut rejected = r.clone();
        rejected.telemetry.rare.rules.last_reload = Some("rejected".into());
        assert_eq!(judge(Some(&rejected), true, now).0, Health::Degraded);
    }

    #[test]
    fn a_failing_webhook_degrades_until_its_last_failure_is_old() {
        let now = 10_000_000;
        let mut r = running(now);
        let hook = Deliveries::new("https://hooks.example".into());
        hook.delivered(Some(1));
        r.webhook = Some(hook.snapshot());
        assert_eq!(judge(Some(&r), true, now), (Health::Healthy, vec![]));
        hook.failed(Some(2), "after 3 attempts: connection refused".into());
        let mut status = hook.snapshot();
        status.last_failed_ms = now - 2_000;
        status.last_delivered_ms = now - 3_000;
        r.webhook = Some(status.clone());
        let (health, problems) = judge(Some(&r), true, now);
        assert_eq!(health, Health::Degraded);
        assert_eq!(
            problems,
            [
                "the webhook https://hooks.example is failing: 1 alerts not delivered this run (1 delivered), \
              the last 2 s ago (after 3 attempts: connection refused)"
            ]
        );
        status.last_failed_ms = now - RECENT_MS - 1;
        r.webhook = Some(status);
        assert_eq!(judge(Some(&r), true, now).0, Health::Healthy);
    }

    #[test]
    fn the_file_round_trips_and_tells_an_unclean_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = StatusWriter::new(dir.path(), Path::new("/etc/x.yaml"), None);
        w.write(Snapshot::default(), false).unwrap();
        let r = StatusWriter::unclean_previous(dir.path()).unwrap();
        assert_eq!((r.pid, r.state.as_str()), (std::process::id(), "running"));
        assert_eq!(r.webhook, None);
        let hook = Deliveries::new("http://127.0.0.1:8080".into());
        hook.delivered(Some(9));
        w.with_webhook(hook);
        w.write(Snapshot::default(), false).unwrap();
        let r = StatusWriter::unclean_previous(dir.path()).unwrap();
        let seen = r.webhook.map(|h| (h.delivered, h.delivered_seqs));
        assert_eq!(seen, Some((1, [9].into())));
        w.write(Snapshot::default(), true).unwrap();
        assert!(StatusWriter::unclean_previous(dir.path()).is_none());
    }
}
