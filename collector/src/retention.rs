//! Retention on PostgreSQL: drops the day partitions of stored records older than the days kept, hourly
//! (every replica runs it; dropping is idempotent and serialized in the database).

use std::sync::Arc;
use std::time::Duration;

use crate::store::PgStore;

/// How often the days past retention are looked for.
const EVERY: Duration = Duration::from_secs(3600);

/// Nanoseconds in a day.
const DAY_NS: u64 = 86_400 * 1_000_000_000;

/// Starts a thread that keeps `days` days of stored records in `store`.
pub fn start(store: Arc<PgStore>, days: u64) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("retention".into())
        .spawn(move || {
            loop {
                let now = auditloop_model::WallTime::now().0;
                let before = now.saturating_sub(days.saturating_sub(1).saturating_mul(DAY_NS));
                match store.drop_stored_before(before) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(days_dropped = n, keep_days = days, "retention"),
                    Err(e) => tracing::warn!(error = %e, "retention failed; retrying in an hour"),
                }
                std::thread::sleep(EVERY);
            }
        })
        .map(drop)
}
