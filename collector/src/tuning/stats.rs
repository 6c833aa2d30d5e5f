//! Per-rule hit statistics over the stored rule alerts: hits per rule (noisiest first), per host, per hour
//! of the last day, and the rules hosts loaded that never fired; as JSON rows or CSV for tuning.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use auditloop_model::WallTime;
use auditloop_protocol::api::fleet::AlertSource;
use serde::Serialize;

use crate::groups::Selection;
use crate::store::{FleetQuery, Store, StoreError};
use crate::tuning::read::Window;

/// Alerts read at most for the statistics.
const READ: u32 = 100_000;
/// Hours in each rule's last-day histogram.
const HOURS: u64 = 24;
const HOUR_NS: u64 = 3_600_000_000_000;

/// One host's hits of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostHits {
    /// Host.
    pub host: String,
    /// Hits.
    pub hits: u64,
}

/// One rule's hits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleHits {
    /// Rule.
    pub rule: String,
    /// Hits over the alerts read.
    pub hits: u64,
    /// Hits per host, most first.
    pub hosts: Vec<HostHits>,
    /// Hits in each of the last 24 hours, oldest first.
    pub last_24h: Vec<u64>,
    /// Time of the latest hit.
    pub last: WallTime,
}

/// The statistics: rules with hits, noisiest first, and the loaded rules without any.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RuleStats {
    /// Rules with hits, most hits first (then by name).
    pub rules: Vec<RuleHits>,
    /// Rules some host reported loading (any host: hosts report rule names, not which host loaded which)
    /// that have no hit among the alerts read, by name.
    pub never_fired: Vec<String>,
    /// Rule alerts read (the newest first).
    pub alerts_read: u64,
    /// Whether older alerts were left unread (at most 100,000 are read).
    pub truncated: bool,
}

#[derive(Default)]
struct Hits {
    total: u64,
    hosts: BTreeMap<String, u64>,
    hourly: Vec<u64>,
    last_ns: u64,
}

/// Statistics over the stored rule alerts raised in `window` on the hosts `selection` chooses (every host
/// without one); the last-day histogram ends at `now_ns`.
pub fn statistics(
    store: &dyn Store,
    now_ns: u64,
    window: Window,
    selection: Option<&Selection>,
) -> Result<RuleStats, StoreError> {
    let alerts = store.fleet_alerts(&FleetQuery {
        source: Some(AlertSource::Rule),
        since_ns: window.since_ns,
        until_ns: window.until_ns,
        limit: READ,
        ..FleetQuery::default()
    })?;
    let alerts_read = alerts.len() as u64;
    let mut hits: BTreeMap<String, Hits> = BTreeMap::new();
    let since = now_ns.saturating_sub(HOURS * HOUR_NS);
    for a in alerts {
        if selection.is_some_and(|s| !s.matches(&a.host)) {
            continue;
        }
        let h = hits.entry(a.rule.clone()).or_insert_with(|| Hits {
            hourly: vec![0; HOURS as usize],
            ..Hits::default()
        });
        h.total += 1;
        *h.hosts.entry(a.host.clone()).or_default() += 1;
        h.last_ns = h.last_ns.max(a.time_ns);
        if a.time_ns >= since {
            let hour = ((a.time_ns - since) / HOUR_NS) as usize;
            if let Some(slot) = h.hourly.get_mut(hour) {
                *slot += 1;
            }
        }
    }
    let loaded: BTreeSet<String> = store.loaded_rules()?.into_iter().collect();
    let never_fired: Vec<String> = loaded
        .into_iter()
        .filter(|r| !hits.contains_key(r))
        .collect();
    let mut rules: Vec<RuleHits> = hits
        .into_iter()
        .map(|(rule, h)| {
            let mut hosts: Vec<HostHits> = h
                .hosts
                .into_iter()
                .map(|(host, hits)| HostHits { host, hits })
                .collect();
            hosts.sort_by(|a, b| b.hits.cmp(&a.hits).then_with(|| a.host.cmp(&b.host)));
            RuleHits {
                rule,
                hits: h.total,
                hosts,
                last_24h: h.hourly,
                last: WallTime(h.last_ns),
            }
        })
        .collect();
    rules.sort_by(|a, b| b.hits.cmp(&a.hits).then_with(|| a.rule.cmp(&b.rule)));
    Ok(RuleStats {
        rules,
        never_fired,
        alerts_read,
        truncated: alerts_read >= u64::from(READ),
    })
}

impl RuleStats {
    /// The statistics as CSV: a header, then a row per rule with hits (noisiest first), then a row per
    /// never-fired rule (0 hits). `hosts` is `host:hits` pairs separated by spaces.
    pub fn csv(&self) -> String {
        let mut out = String::from("rule,status,hits,last_24h,hosts,last\n");
        for r in &self.rules {
            let hosts: Vec<String> = r
                .hosts
                .iter()
                .map(|h| format!("{}:{}", h.host, h.hits))
                .collect();
            let _ = writeln!(
                out,
                "{},fired,{},{},{},{}",
                cell(&r.rule),
                r.hits,
                r.last_24h.iter().sum::<u64>(),
                cell(&hosts.join(" ")),
                r.last
            );
        }
        for rule in &self.never_fired {
            let _ = writeln!(out, "{},never_fired,0,0,,", cell(rule));
        }
        out
    }
}

/// A CSV cell: quoted when it holds a separator, a quote or a line break; a leading `=`, `+`, `-`, `@`
/// or control character (which a spreadsheet would run as a formula) is defused with a `'`.
fn cell(text: &str) -> String {
    let defused = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}
