//! Alerts: what the collector tells operators about a host's chain, its restarts and its silence.
//!
//! Every alert is stored (see [`crate::store::Store`]) and logged with `tracing` at `warn`. Ingest raises
//! `chain_fork`, `gap`, `tamper`, `unexpected_restart` and `spool_overflow`; [`watch_silence`] raises
//! `silence` once per quiet spell of a host that shipped before.

use std::sync::Arc;
use std::time::Duration;

use auditloop_model::{Event, EventBody, LossStage, WallTime};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::store::{Store, StoreError};

/// Kinds of alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A replayed record differs from the stored one: the host's journal was rewritten.
    ChainFork,
    /// A batch started after the next expected sequence number (answered with 409).
    Gap,
    /// A record failed verification (answered with 422).
    Tamper,
    /// An agent generation began without the previous one ending in `agent_stop`, or generations were
    /// skipped.
    UnexpectedRestart,
    /// A host that shipped before has not shipped for the silence period.
    Silence,
    /// The agent's spool overflowed (a `loss` event of stage `spool_overflow`).
    SpoolOverflow,
}

impl AlertKind {
    /// Every kind.
    pub const ALL: [AlertKind; 6] = [
        AlertKind::ChainFork,
        AlertKind::Gap,
        AlertKind::Tamper,
        AlertKind::UnexpectedRestart,
        AlertKind::Silence,
        AlertKind::SpoolOverflow,
    ];

    /// The kind's name (as stored and served).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::ChainFork => "chain_fork",
            AlertKind::Gap => "gap",
            AlertKind::Tamper => "tamper",
            AlertKind::UnexpectedRestart => "unexpected_restart",
            AlertKind::Silence => "silence",
            AlertKind::SpoolOverflow => "spool_overflow",
        }
    }

    /// The kind of a name.
    pub fn parse(name: &str) -> Option<AlertKind> {
        AlertKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// An alert to store (the host and time are added when it is stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAlert {
    /// Kind.
    pub kind: AlertKind,
    /// The sequence number concerned, if any.
    pub seq: Option<u64>,
    /// Details (a JSON object).
    pub detail: serde_json::Value,
}

/// Logs an alert.
pub fn log(host: &str, alert: &NewAlert) {
    tracing::warn!(
        host,
        alert = alert.kind.as_str(),
        seq = alert.seq,
        detail = %alert.detail,
        "alert"
    );
}

/// The `unexpected_restart` a segment start of `generation` raises, given the host's previous generation
/// and whether that generation logged `agent_stop`: when the previous generation did not stop cleanly, or
/// generations were skipped. A segment start of the same generation (a rotation) raises nothing.
pub fn unexpected_restart(
    previous: Option<u64>,
    clean_stop: bool,
    generation: u64,
    seq: u64,
) -> Option<NewAlert> {
    let previous = previous?;
    if generation == previous {
        return None;
    }
    let why = if Some(generation) != previous.checked_add(1) {
        format!("generation {generation} follows generation {previous}")
    } else if !clean_stop {
        format!("generation {previous} ended without agent_stop")
    } else {
        return None;
    };
    Some(NewAlert {
        kind: AlertKind::UnexpectedRestart,
        seq: Some(seq),
        detail: json!({ "previous_generation": previous, "generation": generation, "why": why }),
    })
}

/// The `spool_overflow` of a `loss` event of that stage (ingest raises it only for the first of a run of
/// them: the agent repeats the event every second while its spool is full).
pub fn spool_overflow(event: &Event, seq: u64) -> Option<NewAlert> {
    let EventBody::Loss(loss) = &event.event else {
        return None;
    };
    (loss.stage == LossStage::SpoolOverflow).then(|| NewAlert {
        kind: AlertKind::SpoolOverflow,
        seq: Some(seq),
        detail: json!({ "record": loss.record, "count": loss.count, "total": loss.total }),
    })
}

/// Raises `silence` for every host whose last contact is more than `silence` before `now_ns` and that has
/// no open silence alert; returns those hosts. A host's silence alert is closed when it ships again.
pub fn check_silence(
    store: &dyn Store,
    now_ns: u64,
    silence: Duration,
) -> Result<Vec<String>, StoreError> {
    let limit = u64::try_from(silence.as_nanos()).unwrap_or(u64::MAX);
    let seen_before = now_ns.saturating_sub(limit);
    let mut raised = Vec::new();
    for host in store.hosts()? {
        if host.silent || host.last_seen_ns >= seen_before {
            continue;
        }
        let alert = NewAlert {
            kind: AlertKind::Silence,
            seq: None,
            detail: json!({
                "last_seen_ns": host.last_seen_ns,
                "last_seen": WallTime(host.last_seen_ns).to_string(),
                "silence_secs": silence.as_secs(),
            }),
        };
        if store.raise_silence(&host.host, seen_before, &alert, now_ns)? {
            log(&host.host, &alert);
            raised.push(host.host);
        }
    }
    Ok(raised)
}

/// Checks for silent hosts every `every` until `stop` turns true.
pub async fn watch_silence(
    store: Arc<dyn Store>,
    silence: Duration,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return Ok(()),
        }
        if *stop.borrow() {
            return Ok(());
        }
        let store = Arc::clone(&store);
        let now = WallTime::now().0;
        tokio::task::spawn_blocking(move || check_silence(store.as_ref(), now, silence))
            .await
            .map_err(|e| StoreError::Database(format!("silence check task: {e}")))??;
    }
}

/// How often to look for silent hosts: a tenth of the silence period, between 1 and 60 seconds.
pub fn silence_check_interval(silence: Duration) -> Duration {
    (silence / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for kind in AlertKind::ALL {
            assert_eq!(AlertKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!(AlertKind::parse("nope"), None);
    }

    #[test]
    fn restarts_follow_generations_and_clean_stops() {
        assert_eq!(unexpected_restart(None, false, 1, 1), None);
        assert_eq!(unexpected_restart(Some(2), false, 2, 9), None);
        assert_eq!(unexpected_restart(Some(2), true, 3, 9), None);
        let crash = unexpected_restart(Some(2), false, 3, 9).unwrap();
        assert_eq!(crash.detail["why"], "generation 2 ended without agent_stop");
        let jump = unexpected_restart(Some(2), true, 5, 9).unwrap();
        assert_eq!(jump.detail["why"], "generation 5 follows generation 2");
        assert!(unexpected_restart(Some(u64::MAX), true, 0, 9).is_some());
    }

    #[test]
    fn check_interval_is_bounded() {
        assert_eq!(
            silence_check_interval(Duration::from_secs(300)),
            Duration::from_secs(30)
        );
        assert_eq!(
            silence_check_interval(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
        assert_eq!(
            silence_check_interval(Duration::from_secs(86_400)),
            Duration::from_secs(60)
        );
    }
}
