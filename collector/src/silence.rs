//! The silence watcher: a task of its own that raises `silence` once per quiet spell of a host that shipped
//! before. A host is seen only when the collector stores newly verified records or a newer checkpoint of it
//! (an idle agent writes a signed heartbeat checkpoint every few seconds), so replays of old batches and
//! refused batches never keep a stopped host looking alive. Its silence alert is closed by the store when
//! the host is seen again.
//!
//! It reads and writes only through the store; it never touches ingest or HTTP.

use std::sync::Arc;
use std::time::Duration;

use auditloop_model::WallTime;
use auditloop_protocol::api::HostStatus;

use crate::alerts;
use crate::store::{Store, StoreError};

/// Raises `silence` for every host whose last contact is more than `silence` before `now_ns` and that has
/// no open silence alert; returns those hosts.
pub fn check_silence(
    store: &dyn Store,
    now_ns: u64,
    silence: Duration,
) -> Result<Vec<String>, StoreError> {
    let limit = u64::try_from(silence.as_nanos()).unwrap_or(u64::MAX);
    let seen_before = now_ns.saturating_sub(limit);
    let mut raised = Vec::new();
    for host in store.hosts()? {
        let never_seen = host.last_seen_ns == 0;
        if host.silent
            || never_seen
            || host.status == HostStatus::Replaced
            || host.last_seen_ns >= seen_before
        {
            continue;
        }
        let alert = alerts::silence(host.last_seen_ns, silence);
        if store.raise_silence(&host.name, seen_before, &alert, now_ns)? {
            alerts::log(&host.name, &alert);
            raised.push(host.name);
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
    use std::time::Duration;

    use super::silence_check_interval;

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
