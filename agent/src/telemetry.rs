//! What the running agent knows about its own health, counted where it happens: events by kind as they
//! are journaled, losses by stage, rule hits, actions, tamper events, journal size and checkpoints,
//! shipping acknowledgements and retries, the rules in force. [`crate::status`] writes it to the status
//! file once a second and [`crate::metrics`] exposes it to Prometheus.
//!
//! Counting costs one relaxed atomic add per event; everything rarer takes a short lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use auditloop_model::{Event, EventBody, EventKind};
use serde::Serialize;

/// Shared counters; cloning shares them.
#[derive(Clone, Debug, Default)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_kind: [AtomicU64; auditloop_model::EVENT_KIND_COUNT],
    last_seq: AtomicU64,
    journal_bytes: AtomicU64,
    last_checkpoint_ms: AtomicU64,
    impaired: AtomicBool,
    ring_backlog_peak: AtomicU64,
    rare: Mutex<Rare>,
}

/// The counters that change rarely (a lock each).
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct Rare {
    /// Records lost, by stage.
    pub losses: BTreeMap<String, u64>,
    /// When the last loss was journaled (Unix ms; 0: never).
    pub last_loss_ms: u64,
    /// Alerts, by rule.
    pub rule_hits: BTreeMap<String, u64>,
    /// Actions, by `kind/result` (`kill/ok`, `rollback/failed`).
    pub actions: BTreeMap<String, u64>,
    /// Tamper events, by what.
    pub tamper: BTreeMap<String, u64>,
    /// The newest tamper event, in words.
    pub last_tamper: Option<LastTamper>,
    /// Kernel programs attached (from `agent_start`).
    pub tracepoints: u32,
    /// Kernel ring buffer bytes.
    pub ring_buffer_bytes: u32,
    /// Whether the fanotify exec guard runs.
    pub exec_guard: bool,
    /// Enforcement tier (from `agent_start`): `lsm` or `tracepoint`.
    pub enforcement: String,
    /// Kernel release (from `agent_start`).
    pub kernel: String,
    /// What the kernel allows (from `agent_start`), `name=yes|no(reason)` each.
    pub features: String,
    /// Shipping, when configured.
    pub ship: Option<ShipTelemetry>,
    /// The rules in force.
    pub rules: RulesTelemetry,
}

/// The newest tamper event.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct LastTamper {
    /// Its sequence number.
    pub seq: u64,
    /// Unix ms.
    pub at_ms: u64,
    /// `tamper.what`.
    pub what: String,
    /// `tamper.target`.
    pub target: String,
    /// `tamper.detail`.
    pub detail: String,
    /// The process that did it.
    pub by_pid: u32,
    /// Its executable.
    pub by_exe: String,
}

/// Shipping progress.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct ShipTelemetry {
    /// The collector URL in use.
    pub collector: String,
    /// Every configured collector URL, in order (the shipper fails over along them).
    #[serde(default)]
    pub collectors: Vec<String>,
    /// How many times the shipper moved to another collector URL this run.
    #[serde(default)]
    pub collector_switches: u64,
    /// Host id.
    pub host_id: String,
    /// The highest sequence number the collector acknowledged.
    pub acked_seq: u64,
    /// When the last acknowledgement came (Unix ms; 0: none this run).
    pub last_ack_ms: u64,
    /// Batches stored by the collector this run.
    pub batches: u64,
    /// Compressed bytes the collector stored this run.
    pub bytes: u64,
    /// Attempts that failed and are retried.
    pub retries: u64,
    /// The last failure, while it lasts (cleared by the next acknowledgement).
    pub last_error: Option<String>,
}

/// The rule set in force and the last reload.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct RulesTelemetry {
    /// Rules file or directory.
    pub path: String,
    /// Rules loaded.
    pub rules: u32,
    /// Rules enforced in the kernel at exec time.
    pub kernel_rules: u32,
    /// When the rules in force were loaded (Unix ms).
    pub loaded_ms: u64,
    /// The last reload: `ok` or `rejected` (`None`: not reloaded this run).
    pub last_reload: Option<String>,
    /// When (Unix ms).
    pub last_reload_ms: u64,
    /// The errors of a rejected reload.
    pub last_errors: Option<String>,
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Telemetry {
    fn rare(&self) -> std::sync::MutexGuard<'_, Rare> {
        self.inner
            .rare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts an event that entered the journal.
    pub fn journaled(&self, event: &Event) {
        let kind = event.kind() as usize;
        if let Some(counter) = self.inner.by_kind.get(kind) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.last_seq.store(event.seq, Ordering::Relaxed);
        let body = &event.event;
        if let EventBody::Loss(loss) = body {
            let mut rare = self.rare();
            *rare.losses.entry(loss.stage.to_string()).or_default() += loss.count;
            rare.last_loss_ms = now_ms();
        } else if let EventBody::Alert(alert) = body {
            *self.rare().rule_hits.entry(alert.rule.clone()).or_default() += 1;
        } else if let EventBody::Action(action) = body {
            let result = if action.ok { "ok" } else { "failed" };
            let key = format!("{}/{result}", action.action);
            *self.rare().actions.entry(key).or_default() += 1;
        } else if let EventBody::Tamper(t) = body {
            let mut rare = self.rare();
            *rare.tamper.entry(t.what.clone()).or_default() += 1;
            rare.last_tamper = Some(LastTamper {
                seq: event.seq,
                at_ms: now_ms(),
                what: t.what.clone(),
                target: t.target.clone(),
                detail: t.detail.clone(),
                by_pid: event.process.pid,
                by_exe: event.process.exe.clone(),
            });
        } else if let EventBody::AgentStart(start) = body {
            let mut rare = self.rare();
            rare.tracepoints = start.tracepoints;
            rare.ring_buffer_bytes = start.ring_buffer_bytes;
            rare.enforcement = start.tier.clone();
            rare.kernel = start.kernel.clone();
            rare.features = start.features.clone();
        } else if let EventBody::RulesLoaded(loaded) = body {
            let mut rare = self.rare();
            let reload = loaded.reason != "start";
            rare.rules = RulesTelemetry {
                path: loaded.path.clone(),
                rules: loaded.rules,
                kernel_rules: loaded.kernel_rules,
                loaded_ms: now_ms(),
                last_reload: reload.then(|| "ok".into()),
                last_reload_ms: if reload { now_ms() } else { 0 },
                last_errors: None,
            };
        } else if let EventBody::RulesRejected(rejected) = body {
            let mut rare = self.rare();
            rare.rules.last_reload = Some("rejected".into());
            rare.rules.last_reload_ms = now_ms();
            rare.rules.last_errors = Some(rejected.errors.clone());
        }
    }

    /// A checkpoint was signed.
    pub fn checkpointed(&self) {
        self.inner
            .last_checkpoint_ms
            .store(now_ms(), Ordering::Relaxed);
    }

    /// The journal's size on disk and whether it is taking events.
    pub fn journal(&self, bytes: u64, impaired: bool) {
        self.inner.journal_bytes.store(bytes, Ordering::Relaxed);
        self.inner.impaired.store(impaired, Ordering::Relaxed);
    }

    /// The reader caught up after reading `bytes` from the ring buffer (kept: the largest since the last
    /// snapshot).
    pub fn ring_backlog(&self, bytes: u64) {
        self.inner
            .ring_backlog_peak
            .fetch_max(bytes, Ordering::Relaxed);
    }

    /// Whether the exec guard runs.
    pub fn set_exec_guard(&self, running: bool) {
        self.rare().exec_guard = running;
    }

    /// Shipping is configured, to `collectors` (the first in use).
    pub fn ship_configured(&self, collectors: &[String], host_id: &str, acked_seq: u64) {
        self.rare().ship = Some(ShipTelemetry {
            collector: collectors.first().cloned().unwrap_or_default(),
            collectors: collectors.to_vec(),
            host_id: host_id.into(),
            acked_seq,
            ..ShipTelemetry::default()
        });
    }

    /// The collector stored a batch of `bytes` and acknowledged up to `acked_seq`.
    pub fn ship_acked(&self, acked_seq: u64, bytes: u64) {
        if let Some(ship) = self.rare().ship.as_mut() {
            ship.acked_seq = acked_seq;
            ship.last_ack_ms = now_ms();
            ship.batches += 1;
            ship.bytes += bytes;
            ship.last_error = None;
        }
    }

    /// The shipper uses the collector at `url` now, after `switches` switches this run.
    pub fn ship_collector(&self, url: &str, switches: u64) {
        if let Some(ship) = self.rare().ship.as_mut() {
            if ship.collector != url {
                url.clone_into(&mut ship.collector);
            }
            ship.collector_switches = switches;
        }
    }

    /// An attempt failed and is retried (or waits).
    pub fn ship_failed(&self, why: &str) {
        if let Some(ship) = self.rare().ship.as_mut() {
            ship.retries += 1;
            ship.last_error = Some(why.into());
        }
    }

    /// A snapshot of everything.
    pub fn snapshot(&self) -> Snapshot {
        let by_kind = EventKind::all()
            .filter_map(|k| {
                let n = self.inner.by_kind.get(k as usize)?.load(Ordering::Relaxed);
                (n > 0).then(|| (k.as_str().to_owned(), n))
            })
            .collect::<BTreeMap<_, _>>();
        Snapshot {
            events: by_kind.values().sum(),
            by_kind,
            last_seq: self.inner.last_seq.load(Ordering::Relaxed),
            journal_bytes: self.inner.journal_bytes.load(Ordering::Relaxed),
            last_checkpoint_ms: self.inner.last_checkpoint_ms.load(Ordering::Relaxed),
            journal_impaired: self.inner.impaired.load(Ordering::Relaxed),
            ring_backlog_peak_bytes: self.inner.ring_backlog_peak.swap(0, Ordering::Relaxed),
            rare: self.rare().clone(),
        }
    }
}

/// Every counter at one moment.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// Events journaled this run.
    pub events: u64,
    /// By kind.
    pub by_kind: BTreeMap<String, u64>,
    /// The newest journaled sequence number.
    pub last_seq: u64,
    /// Journal bytes on disk.
    pub journal_bytes: u64,
    /// When the last checkpoint was signed (Unix ms).
    pub last_checkpoint_ms: u64,
    /// Whether the journal cannot take events right now.
    pub journal_impaired: bool,
    /// The most bytes the reader read from the ring buffer in one catch-up (from finding records to
    /// finding it empty) since the previous snapshot: how full the ring got, as the reader found it.
    pub ring_backlog_peak_bytes: u64,
    /// The rest.
    #[serde(flatten)]
    pub rare: Rare,
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditloop_model::{Alert, Loss, LossStage, Tamper};

    fn event(body: EventBody, seq: u64) -> Event {
        let mut e = crate::clock::Clock::measure().agent_event(body);
        e.seq = seq;
        e
    }

    #[test]
    fn counts_kinds_losses_hits_and_tamper() {
        let t = Telemetry::default();
        t.journaled(&event(
            EventBody::Loss(Loss {
                stage: LossStage::KernelRingBuffer,
                record: "exec".into(),
                count: 3,
                total: 3,
            }),
            1,
        ));
        t.journaled(&event(
            EventBody::Alert(Alert {
                rule: "r".into(),
                ..Alert::default()
            }),
            2,
        ));
        t.journaled(&event(
            EventBody::Tamper(Tamper {
                what: "signal".into(),
                ..Tamper::default()
            }),
            3,
        ));
        let s = t.snapshot();
        assert_eq!(s.events, 3);
        assert_eq!(s.last_seq, 3);
        assert_eq!(s.by_kind.get("loss"), Some(&1));
        assert_eq!(s.rare.losses.get("kernel_ring_buffer"), Some(&3));
        assert_eq!(s.rare.rule_hits.get("r"), Some(&1));
        assert_eq!(s.rare.tamper.get("signal"), Some(&1));
        assert_eq!(s.rare.last_tamper.map(|l| l.seq), Some(3));
    }

    #[test]
    fn ship_state_names_the_collector_in_use_and_counts_switches() {
        let t = Telemetry::default();
        let urls = ["https://a:8470".to_owned(), "https://b:8470".to_owned()];
        t.ship_configured(&urls, "h", 0);
        let ship = t.snapshot().rare.ship.unwrap();
        assert_eq!(
            (ship.collector.as_str(), ship.collector_switches),
            ("https://a:8470", 0)
        );
        assert_eq!(ship.collectors, urls);
        t.ship_collector("https://b:8470", 1);
        let ship = t.snapshot().rare.ship.unwrap();
        assert_eq!(
            (ship.collector.as_str(), ship.collector_switches),
            ("https://b:8470", 1)
        );
        // A status file written before the list existed still reads.
        let old: ShipTelemetry =
            serde_json::from_str(r#"{"collector":"https://a","host_id":"h","acked_seq":1,"last_ack_ms":0,"batches":0,"bytes":0,"retries":0,"last_error":null}"#).unwrap();
        assert_eq!(old.collector_switches, 0);
    }
}
