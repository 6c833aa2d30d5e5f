//! The day partitions of `records`: one per UTC day of `stored_ns`, named `records_dYYYYMMDD`, made before
//! the first commit of their day needs them, and dropped whole by retention.
//!
//! Making a partition locks the parent table, so it is never done inside a commit: the store makes today's
//! and tomorrow's on start and a day's partition in a transaction of its own when a commit is the first of
//! its day (`PgStore::ensure_day`). Replicas doing it at once serialize on an advisory lock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::Client;

use crate::store::error::StoreError;
use crate::store::postgres::conn::int;

/// Nanoseconds in a day.
pub(super) const DAY_NS: u64 = 86_400 * 1_000_000_000;

/// The advisory lock held while partitions are made or dropped.
const PARTITION_LOCK: i64 = 0x6175_6469_746c_0002;

/// The day (days since the Unix epoch) of `time_ns`.
pub(super) fn day_of(time_ns: u64) -> u64 {
    time_ns / DAY_NS
}

/// The partition name of `day`: `records_dYYYYMMDD`.
pub(super) fn name(day: u64) -> String {
    let (y, m, d) = civil(day);
    format!("records_d{y:04}{m:02}{d:02}")
}

/// The civil date (year, month, day) of `days` since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: u64) -> (i64, u32, u32) {
    let z = i64::try_from(days).unwrap_or(i64::MAX / 2) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Today, by the system clock.
pub(super) fn today() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    day_of(u64::try_from(now.as_nanos()).unwrap_or(u64::MAX))
}

/// Makes the partition of `day` if it does not exist.
pub(super) async fn ensure(client: &mut Client, day: u64) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
        .await?;
    let from = int(day.saturating_mul(DAY_NS));
    let to = int(day.saturating_add(1).saturating_mul(DAY_NS));
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {} PARTITION OF records FOR VALUES FROM ({from}) TO ({to})",
        name(day)
    ))
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The days that have a partition, oldest first.
pub(super) async fn days(client: &Client) -> Result<Vec<u64>, StoreError> {
    let rows = client
        .query(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'records' ORDER BY c.relname",
            &[],
        )
        .await?;
    let mut days = Vec::new();
    for row in rows {
        let relname: String = row.get(0);
        if let Some(day) = parse(&relname) {
            days.push(day);
        }
    }
    days.sort_unstable();
    Ok(days)
}

/// The day a partition name stands for.
fn parse(relname: &str) -> Option<u64> {
    let digits = relname.strip_prefix("records_d")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i64 = digits[..4].parse().ok()?;
    let m: u32 = digits[4..6].parse().ok()?;
    let d: u32 = digits[6..].parse().ok()?;
    // Days from civil (the inverse of `civil`).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u64::try_from(era * 146_097 + doe - 719_468).ok()
}

/// Drops the partitions of the days before `day` (their records, whole); returns the days dropped.
pub(super) async fn drop_before(client: &mut Client, day: u64) -> Result<Vec<u64>, StoreError> {
    let old: Vec<u64> = days(client)
        .await?
        .into_iter()
        .filter(|d| *d < day)
        .collect();
    if old.is_empty() {
        return Ok(old);
    }
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
        .await?;
    for d in &old {
        tx.batch_execute(&format!("DROP TABLE IF EXISTS {}", name(*d)))
            .await?;
    }
    tx.commit().await?;
    Ok(old)
}

#[cfg(test)]
mod tests {
    use super::{DAY_NS, day_of, name, parse};

    #[test]
    fn names_round_trip() {
        // 2026-12-03 is day 20_790.
        assert_eq!(name(20_790), "records_d20261203");
        assert_eq!(name(0), "records_d19700101");
        assert_eq!(name(11_016), "records_d20000229");
        for day in [0, 59, 60, 365, 11_016, 20_790, 40_000] {
            assert_eq!(parse(&name(day)), Some(day), "{day}");
        }
        assert_eq!(parse("records_dx0261203"), None);
        assert_eq!(parse("records"), None);
        assert_eq!(day_of(20_790 * DAY_NS + DAY_NS - 1), 20_790);
    }
}
