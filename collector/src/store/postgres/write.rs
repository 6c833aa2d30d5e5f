//! Writing the PostgreSQL store: an enrollment, a verified batch, a refused one, a silence alert, a token.
//!
//! Each write is one transaction. Writes that give ids other readers page by (records, alerts, fleet
//! revisions, audit entries, verdicts) first take [`ORDER_LOCK`], a transaction-scoped advisory lock, so
//! that ids are given in commit order across every replica: a reader paging `after` the last id it saw
//! never misses a record that a slower transaction committed later with a lower id. Within it, a commit
//! takes its host's row with a compare-and-set on `next_seq` and the enrolled key (the row lock serializes
//! writers of one host), checks that every new sequence number is above the host's highest stored one (the
//! uniqueness of `(host, seq)`, `schema.rs`), and bulk-loads the records with `COPY ... (FORMAT binary)`.
//! Any error rolls everything back.

use std::sync::LazyLock;

use futures_util::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use auditloop_protocol::api::HostStatus;
use deadpool_postgres::{Client, Transaction};

use crate::alerts::NewAlert;
use crate::store::commit::{Commit, NewRecord, RecordKind, Rejection};
use crate::store::error::StoreError;
use crate::store::host::{Enrollment, HostRecord, replaced_name};
use crate::store::postgres::conn::{Arg, int};
use crate::store::postgres::order::{notify, take_order};
use crate::store::postgres::{fleet, holds, host_row};

/// Parameter numbers of [`INSERT_HOST`] and [`UPDATE_HOST`]: `$1` is the host's name, `$2` on the record's
/// columns, then these.
const STATUS: usize = 2 + host_row::COUNT;
const RECORDS: usize = STATUS + 1;
const EVENTS: usize = STATUS + 2;
const DUPLICATES: usize = STATUS + 3;
/// The time when the commit stores a checkpoint, else NULL.
const CHECKPOINT_NS: usize = STATUS + 4;
/// Only in [`UPDATE_HOST`]: the `next_seq` expected.
const EXPECTED: usize = STATUS + 5;
/// Only in [`INSERT_HOST`]: the token digest, then the time.
const TOKEN: usize = STATUS + 1;

/// Enrolls a host; returns no row when the name is taken.
static INSERT_HOST: LazyLock<String> = LazyLock::new(|| {
    let record: Vec<_> = (2..2 + host_row::COUNT).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO hosts (name, {columns}, status, created_ns, last_seen_ns, token_digest) \
         VALUES ($1, {record}, ${status}, ${now}, 0, ${token}) \
         ON CONFLICT (name) DO NOTHING RETURNING id",
        columns = host_row::COLUMNS,
        record = record.join(", "),
        status = STATUS,
        now = TOKEN + 1,
        token = TOKEN,
    )
});

/// Moves a stored host on, if its `next_seq` and enrolled key are still the ones expected. Only a commit
/// with a checkpoint marks the host seen and closes its silence alert.
static UPDATE_HOST: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE hosts SET {record}, status = ${status}, records = records + ${records}, \
         events = events + ${events}, duplicates = duplicates + ${duplicates}, batches = batches + 1, \
         last_seen_ns = COALESCE(${cp}::BIGINT, last_seen_ns), \
         last_checkpoint_ns = COALESCE(${cp}::BIGINT, last_checkpoint_ns), \
         silence_alerted = CASE WHEN ${cp}::BIGINT IS NULL THEN silence_alerted ELSE FALSE END \
         WHERE name = $1 AND next_seq = ${expected} AND enrolled_key IS NOT DISTINCT FROM ${key} \
         AND status <> '{replaced}' RETURNING id",
        record = host_row::assignments(2),
        status = STATUS,
        records = RECORDS,
        events = EVENTS,
        duplicates = DUPLICATES,
        cp = CHECKPOINT_NS,
        expected = EXPECTED,
        key = 2 + host_row::ENROLLED_KEY,
        replaced = HostStatus::Replaced.as_str(),
    )
});

/// The columns a record is copied into, in the order of [`RECORD_TYPES`] and [`copy_records`].
const RECORD_COLUMNS: &str = "id, host_id, seq, hash, kind, time_ns, pid, path, summary, loginuid, \
     local_addr, local_port, remote_addr, remote_port, role, role_pid, role_start_ns, payload, stored_ns";

/// The types of [`RECORD_COLUMNS`].
const RECORD_TYPES: [Type; 19] = [
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::BYTEA,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::BYTEA,
    Type::INT8,
];

/// The arguments as the client takes them.
fn params(args: &[Arg]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// Refuses records that are not in strictly increasing sequence order (a batch never holds one twice).
fn check_order(host: &str, records: &[NewRecord<'_>]) -> Result<(), StoreError> {
    for pair in records.windows(2) {
        if pair[1].seq <= pair[0].seq {
            return Err(StoreError::Database(format!(
                "host {host}: record seq {} follows seq {} in one batch (a record is never stored twice)",
                pair[1].seq, pair[0].seq
            )));
        }
    }
    Ok(())
}

/// Stores `c` in one transaction.
pub(super) async fn commit(client: &mut Client, c: &Commit<'_>) -> Result<(), StoreError> {
    check_order(c.host, c.records)?;
    let now = int(c.now_ns);
    let events = c.records.iter().filter(|r| r.kind.is_event()).count();
    let mut args: Vec<Arg> = vec![Box::new(c.host.to_owned())];
    args.extend(host_row::values(&c.host_record));
    args.push(Box::new(c.status.as_str().to_owned()));
    args.push(Box::new(int(c.records.len() as u64)));
    args.push(Box::new(int(events as u64)));
    args.push(Box::new(int(c.duplicates)));
    args.push(Box::new((!c.checkpoints.is_empty()).then_some(now)));
    args.push(Box::new(int(c.expected_next_seq)));
    let tx = client.transaction().await?;
    take_order(&tx).await?;
    let stmt = tx.prepare_cached(&UPDATE_HOST).await?;
    let Some(row) = tx.query_opt(&stmt, &params(&args)).await? else {
        return Err(StoreError::Conflict(c.host.to_owned()));
    };
    let host_id: i64 = row.try_get(0)?;
    if let Some(from) = c.replace_from {
        drop_pending(&tx, host_id, from).await?;
        fleet::drop_findings(&tx, c.host, from).await?;
    }
    if let Some(first) = c.records.first() {
        let stmt = tx
            .prepare_cached("SELECT max(seq) FROM records WHERE host_id = $1")
            .await?;
        let top: Option<i64> = tx.query_one(&stmt, &[&host_id]).await?.try_get(0)?;
        if let Some(top) = top
            && top >= int(first.seq)
        {
            return Err(StoreError::Database(format!(
                "host {}: record seq {} is not above the highest stored seq {top} (a record is never \
                 stored twice)",
                c.host, first.seq
            )));
        }
    }
    copy_records(&tx, host_id, c.records, now).await?;
    fleet::store_findings(&tx, c.host, c.records).await?;
    holds::store_reports(&tx, c.host, c.records).await?;
    if !c.checkpoints.is_empty() {
        let stmt = tx
            .prepare_cached(
                "INSERT INTO checkpoints (host_id, seq, epoch, head_seq, stored_ns) \
                 SELECT $1, s, e, h, $5 FROM unnest($2::BIGINT[], $3::BIGINT[], $4::BIGINT[]) AS t (s, e, h)",
            )
            .await?;
        let seqs: Vec<i64> = c.checkpoints.iter().map(|cp| int(cp.seq)).collect();
        let epochs: Vec<i64> = c.checkpoints.iter().map(|cp| int(cp.epoch)).collect();
        let heads: Vec<i64> = c.checkpoints.iter().map(|cp| int(cp.head_seq)).collect();
        tx.execute(&stmt, &[&host_id, &seqs, &epochs, &heads, &now])
            .await?;
    }
    insert_alerts(&tx, c.host, c.alerts, now).await?;
    if c.notifies() {
        notify(&tx, "commit").await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Copies `records` of host row `host_id` in, with ids taken in one block of the `records_id` sequence.
async fn copy_records(
    tx: &Transaction<'_>,
    host_id: i64,
    records: &[NewRecord<'_>],
    now: i64,
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let n = int(records.len() as u64);
    let stmt = tx
        .prepare_cached("SELECT setval('records_id', nextval('records_id') + $1 - 1)")
        .await?;
    let last: i64 = tx.query_one(&stmt, &[&n]).await?.try_get(0)?;
    let first = last - n + 1;
    let sink = tx
        .copy_in(&format!(
            "COPY records ({RECORD_COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &RECORD_TYPES);
    pin_mut!(writer);
    for (i, r) in records.iter().enumerate() {
        let c = &r.columns;
        let key = c.lineage.as_ref();
        let id = first + int(i as u64);
        let seq = int(r.seq);
        let hash = &r.hash[..];
        let kind = r.kind.as_str();
        let time = c.time_ns.map(int);
        let pid = c.pid.map(i64::from);
        let loginuid = c.loginuid.map(i64::from);
        let local_port = c.local_port.map(i64::from);
        let remote_port = c.remote_port.map(i64::from);
        let role = key.map(|k| k.role.as_str());
        let role_pid = key.map(|k| i64::from(k.pid));
        let role_start = key.and_then(|k| k.start_ns).map(int);
        let row: [&(dyn ToSql + Sync); 19] = [
            &id,
            &host_id,
            &seq,
            &hash,
            &kind,
            &time,
            &pid,
            &c.path,
            &c.summary,
            &loginuid,
            &c.local_address,
            &local_port,
            &c.remote_address,
            &remote_port,
            &role,
            &role_pid,
            &role_start,
            &r.payload,
            &now,
        ];
        writer.as_mut().write(&row).await?;
    }
    writer.finish().await?;
    Ok(())
}

/// Deletes the records of host row `host_id` from seq `from` on, and their checkpoints, and takes them off
/// the host's counters. Record ids are never given again (they come from a sequence).
async fn drop_pending(tx: &Transaction<'_>, host_id: i64, from: u64) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(&format!(
            "WITH gone AS (DELETE FROM records WHERE host_id = $1 AND seq >= $2 RETURNING kind) \
             SELECT count(*), count(*) FILTER (WHERE kind NOT IN ('{}', '{}')) FROM gone",
            RecordKind::SegmentStart.as_str(),
            RecordKind::Checkpoint.as_str()
        ))
        .await?;
    let row = tx.query_one(&stmt, &[&host_id, &int(from)]).await?;
    let (records, events): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    let stmt = tx
        .prepare_cached("DELETE FROM checkpoints WHERE host_id = $1 AND seq >= $2")
        .await?;
    tx.execute(&stmt, &[&host_id, &int(from)]).await?;
    let stmt = tx
        .prepare_cached(
            "UPDATE hosts SET records = records - $2, events = events - $3 WHERE id = $1",
        )
        .await?;
    tx.execute(&stmt, &[&host_id, &records, &events]).await?;
    Ok(())
}

/// Enrolls a host (replacing a stored one when asked) in one transaction.
pub(super) async fn enroll(client: &mut Client, e: &Enrollment<'_>) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    take_order(&tx).await?;
    if e.replace {
        let stmt = tx
            .prepare_cached(
                "UPDATE hosts SET name = $2, status = $3, token_digest = NULL, silence_alerted = FALSE \
                 WHERE name = $1",
            )
            .await?;
        tx.execute(
            &stmt,
            &[
                &e.host,
                &replaced_name(e.host, e.now_ns),
                &HostStatus::Replaced.as_str(),
            ],
        )
        .await?;
    }
    let mut args: Vec<Arg> = vec![Box::new(e.host.to_owned())];
    args.extend(host_row::values(&HostRecord::enrolled(e.genesis_key)));
    args.push(Box::new(HostStatus::Enrolled.as_str().to_owned()));
    args.push(Box::new(e.token_digest.to_vec()));
    args.push(Box::new(int(e.now_ns)));
    let stmt = tx.prepare_cached(&INSERT_HOST).await?;
    if tx.query_opt(&stmt, &params(&args)).await?.is_none() {
        return Err(StoreError::HostExists(e.host.to_owned()));
    }
    tx.commit().await?;
    Ok(())
}

/// Gives a stored (not replaced) host a token digest.
pub(super) async fn set_host_token(
    client: &Client,
    host: &str,
    digest: &[u8; 32],
) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached("UPDATE hosts SET token_digest = $2 WHERE name = $1 AND status <> $3")
        .await?;
    let changed = client
        .execute(
            &stmt,
            &[&host, &&digest[..], &HostStatus::Replaced.as_str()],
        )
        .await?;
    Ok(changed == 1)
}

/// Stores the alerts of a refused batch, and nothing else.
pub(super) async fn reject(client: &mut Client, r: &Rejection<'_>) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    take_order(&tx).await?;
    insert_alerts(&tx, r.host, r.alerts, int(r.now_ns)).await?;
    if !r.alerts.is_empty() {
        notify(&tx, "fleet").await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Opens a silence alert for `host` if it has none and was last seen before `seen_before_ns`.
pub(super) async fn raise_silence(
    client: &mut Client,
    host: &str,
    seen_before_ns: u64,
    alert: &NewAlert,
    now_ns: u64,
) -> Result<bool, StoreError> {
    let tx = client.transaction().await?;
    take_order(&tx).await?;
    let stmt = tx
        .prepare_cached(
            "UPDATE hosts SET silence_alerted = TRUE WHERE name = $1 AND NOT silence_alerted \
             AND last_seen_ns > 0 AND last_seen_ns < $2 AND status <> $3",
        )
        .await?;
    let changed = tx
        .execute(
            &stmt,
            &[&host, &int(seen_before_ns), &HostStatus::Replaced.as_str()],
        )
        .await?;
    if changed == 1 {
        insert_alerts(&tx, host, std::slice::from_ref(alert), int(now_ns)).await?;
        notify(&tx, "fleet").await?;
    }
    tx.commit().await?;
    Ok(changed == 1)
}

/// Raises `alerts` of `host` at `now`: a kind the host has an alert of already counts it again (with this
/// time, sequence number and detail, and a new id, so pages after the old id show it again).
async fn insert_alerts(
    tx: &Transaction<'_>,
    host: &str,
    alerts: &[NewAlert],
    now: i64,
) -> Result<(), StoreError> {
    if alerts.is_empty() {
        return Ok(());
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO alerts (host, kind, time_ns, last_time_ns, count, seq, detail) \
             VALUES ($1, $2, $3, $3, 1, $4, $5) \
             ON CONFLICT (host, kind) DO UPDATE SET id = nextval('alerts_id'), \
             count = alerts.count + 1, last_time_ns = EXCLUDED.last_time_ns, seq = EXCLUDED.seq, \
             detail = EXCLUDED.detail",
        )
        .await?;
    for alert in alerts {
        let seq = alert.seq.map(int);
        tx.execute(
            &stmt,
            &[
                &host,
                &alert.kind.as_str(),
                &now,
                &seq,
                &alert.detail.to_string(),
            ],
        )
        .await?;
    }
    fleet::raise_chain(tx, host, alerts, now).await
}
