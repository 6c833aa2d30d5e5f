//! Writing the SQLite store: an enrollment, a verified batch, a refused one, a silence alert, a token.
//!
//! Each is one `IMMEDIATE` transaction of cached prepared statements on the writer connection. A commit
//! updates the host's row with a compare-and-set on its `next_seq` and enrolled key, so two writers can
//! never both extend the same chain position, nor a batch verified against one enrollment land on the
//! next; any error rolls the whole transaction back. Alerts are kept one per host and kind, and listed among
//! the fleet alerts with the rule alerts a batch carries (`fleet.rs`) in the same transaction.

use std::sync::LazyLock;

use rusqlite::types::Value;
use rusqlite::{CachedStatement, Connection, OptionalExtension, TransactionBehavior, params};
use rusqlite::{Transaction, params_from_iter};

use auditloop_protocol::api::HostStatus;

use crate::alerts::NewAlert;
use crate::store::commit::{Commit, NewRecord, RecordKind, Rejection};
use crate::store::error::StoreError;
use crate::store::host::{Enrollment, HostRecord, replaced_name};
use crate::store::sqlite::conn::int;
use crate::store::sqlite::host_row;
use crate::store::sqlite::record_row;
use crate::store::sqlite::schema::DELETED_COLUMNS;
use crate::store::sqlite::{fleet, holds};

/// Columns bound per stored record: host, seq, hash and kind, the searchable columns, payload and time.
const RECORD_COLUMNS: usize = 6 + record_row::COUNT;
/// Records inserted by one statement (fewer statement executions per batch).
const ROWS_PER_INSERT: usize = 64;

/// Parameter numbers of [`INSERT_HOST`] and [`UPDATE_HOST`]: `?1` is the host's name, `?2` on the record's
/// columns, then these.
const STATUS: usize = 2 + host_row::COUNT;
const RECORDS: usize = STATUS + 1;
const EVENTS: usize = STATUS + 2;
const DUPLICATES: usize = STATUS + 3;
/// The time when the commit stores a checkpoint, else NULL.
const CHECKPOINT_NS: usize = STATUS + 4;
/// Only in [`UPDATE_HOST`]: the `next_seq` expected.
const EXPECTED: usize = STATUS + 5;
/// Only in [`INSERT_HOST`]: the token digest.
const TOKEN: usize = STATUS + 1;

/// Enrolls a host; returns nothing when the name is taken.
static INSERT_HOST: LazyLock<String> = LazyLock::new(|| {
    let record: Vec<_> = (2..2 + host_row::COUNT).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO hosts (name, {columns}, status, created_ns, last_seen_ns, token_digest) \
         VALUES (?1, {record}, ?{status}, ?{now}, 0, ?{token}) \
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
        "UPDATE hosts SET {record}, status = ?{status}, records = records + ?{records}, \
         events = events + ?{events}, duplicates = duplicates + ?{duplicates}, batches = batches + 1, \
         last_seen_ns = COALESCE(?{cp}, last_seen_ns), last_checkpoint_ns = COALESCE(?{cp}, last_checkpoint_ns), \
         silence_alerted = CASE WHEN ?{cp} IS NULL THEN silence_alerted ELSE 0 END \
         WHERE name = ?1 AND next_seq = ?{expected} AND enrolled_key IS ?{key} AND status != '{replaced}' \
         RETURNING id",
        record = host_row::assignments(2),
        status = STATUS,
        records = RECORDS,
        events = EVENTS,
        duplicates = DUPLICATES,
        cp = CHECKPOINT_NS,
        expected = EXPECTED,
        key = ENROLLED_KEY_PARAM,
        replaced = HostStatus::Replaced.as_str(),
    )
});

/// The parameter number of the record's `enrolled_key` column (it is not changed by a commit, and must
/// still be the stored one).
const ENROLLED_KEY_PARAM: usize = 2 + host_row::ENROLLED_KEY;

/// Stores `c` in one transaction.
pub(super) fn commit(conn: &mut Connection, c: &Commit<'_>) -> Result<(), StoreError> {
    let now = int(c.now_ns);
    let events = c.records.iter().filter(|r| r.kind.is_event()).count();
    let mut args: Vec<Value> = vec![Value::Text(c.host.to_owned())];
    args.extend(host_row::values(&c.host_record));
    // STATUS, RECORDS, EVENTS, DUPLICATES, CHECKPOINT_NS, EXPECTED.
    args.extend([
        Value::Text(c.status.as_str().to_owned()),
        Value::Integer(int(c.records.len() as u64)),
        Value::Integer(int(events as u64)),
        Value::Integer(int(c.duplicates)),
        Value::from((!c.checkpoints.is_empty()).then_some(now)),
        Value::Integer(int(c.expected_next_seq)),
    ]);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let host_id: Option<i64> = tx
        .prepare_cached(&UPDATE_HOST)?
        .query_row(params_from_iter(args), |row| row.get(0))
        .optional()?;
    let Some(host_id) = host_id else {
        return Err(StoreError::Conflict(c.host.to_owned()));
    };
    if let Some(from) = c.replace_from {
        drop_pending(&tx, host_id, from)?;
        fleet::drop_findings(&tx, c.host, from)?;
    }
    insert_records(&tx, host_id, c.records, now)?;
    fleet::store_findings(&tx, c.host, c.records)?;
    holds::store_reports(&tx, c.host, c.records)?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO checkpoints (host_id, seq, epoch, head_seq, stored_ns) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for cp in c.checkpoints {
            insert.execute(params![
                host_id,
                int(cp.seq),
                int(cp.epoch),
                int(cp.head_seq),
                now
            ])?;
        }
    }
    insert_alerts(&tx, c.host, c.alerts, now)?;
    tx.commit()?;
    Ok(())
}

/// Deletes the records of host row `host_id` from seq `from` on, and their checkpoints, and takes them off
/// the host's counters. Each record leaves a tombstone in `deleted_records`, by which the indexer takes its
/// entries out of the search file; its id is never given again (`schema.rs`).
fn drop_pending(tx: &Transaction<'_>, host_id: i64, from: u64) -> Result<(), StoreError> {
    let (records, events): (i64, i64) = tx
        .prepare_cached(&format!(
            "SELECT COUNT(*), COALESCE(SUM(kind NOT IN ('{}', '{}')), 0) FROM records \
             WHERE host_id = ?1 AND seq >= ?2",
            RecordKind::SegmentStart.as_str(),
            RecordKind::Checkpoint.as_str()
        ))?
        .query_row(params![host_id, int(from)], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    tx.prepare_cached(&format!(
        "INSERT INTO deleted_records ({DELETED_COLUMNS}) SELECT {DELETED_COLUMNS} FROM records \
         WHERE host_id = ?1 AND seq >= ?2"
    ))?
    .execute(params![host_id, int(from)])?;
    tx.prepare_cached("DELETE FROM records WHERE host_id = ?1 AND seq >= ?2")?
        .execute(params![host_id, int(from)])?;
    tx.prepare_cached("DELETE FROM checkpoints WHERE host_id = ?1 AND seq >= ?2")?
        .execute(params![host_id, int(from)])?;
    tx.prepare_cached(
        "UPDATE hosts SET records = records - ?2, events = events - ?3 WHERE id = ?1",
    )?
    .execute(params![host_id, records, events])?;
    Ok(())
}

/// Enrolls a host (replacing a stored one when asked) in one transaction.
pub(super) fn enroll(conn: &mut Connection, e: &Enrollment<'_>) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if e.replace {
        tx.prepare_cached(
            "UPDATE hosts SET name = ?2, status = ?3, token_digest = NULL, silence_alerted = 0 \
             WHERE name = ?1",
        )?
        .execute(params![
            e.host,
            replaced_name(e.host, e.now_ns),
            HostStatus::Replaced.as_str()
        ])?;
    }
    let mut args: Vec<Value> = vec![Value::Text(e.host.to_owned())];
    args.extend(host_row::values(&HostRecord::enrolled(e.genesis_key)));
    // STATUS, TOKEN, then the time.
    args.extend([
        Value::Text(HostStatus::Enrolled.as_str().to_owned()),
        Value::Blob(e.token_digest.to_vec()),
        Value::Integer(int(e.now_ns)),
    ]);
    let id: Option<i64> = tx
        .prepare_cached(&INSERT_HOST)?
        .query_row(params_from_iter(args), |row| row.get(0))
        .optional()?;
    if id.is_none() {
        return Err(StoreError::HostExists(e.host.to_owned()));
    }
    tx.commit()?;
    Ok(())
}

/// Gives a stored (not replaced) host a token digest.
pub(super) fn set_host_token(
    conn: &mut Connection,
    host: &str,
    digest: &[u8; 32],
) -> Result<bool, StoreError> {
    let changed = conn
        .prepare_cached("UPDATE hosts SET token_digest = ?2 WHERE name = ?1 AND status != ?3")?
        .execute(params![host, &digest[..], HostStatus::Replaced.as_str()])?;
    Ok(changed == 1)
}

/// Stores the alerts of a refused batch, and nothing else.
pub(super) fn reject(conn: &mut Connection, r: &Rejection<'_>) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    insert_alerts(&tx, r.host, r.alerts, int(r.now_ns))?;
    tx.commit()?;
    Ok(())
}

/// Opens a silence alert for `host` if it has none and was last seen before `seen_before_ns`.
pub(super) fn raise_silence(
    conn: &mut Connection,
    host: &str,
    seen_before_ns: u64,
    alert: &NewAlert,
    now_ns: u64,
) -> Result<bool, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let changed = tx
        .prepare_cached(
            "UPDATE hosts SET silence_alerted = 1 WHERE name = ?1 AND silence_alerted = 0 \
             AND last_seen_ns > 0 AND last_seen_ns < ?2 AND status != ?3",
        )?
        .execute(params![
            host,
            int(seen_before_ns),
            HostStatus::Replaced.as_str()
        ])?;
    if changed == 1 {
        insert_alerts(&tx, host, std::slice::from_ref(alert), int(now_ns))?;
    }
    tx.commit()?;
    Ok(changed == 1)
}

/// `INSERT INTO records` of `rows` rows.
fn insert_records_sql(rows: usize) -> String {
    let row = format!("({})", ["?"; RECORD_COLUMNS].join(", "));
    format!(
        "INSERT INTO records (host_id, seq, hash, kind, {}, payload, stored_ns) VALUES {}",
        record_row::SEARCH_COLUMNS,
        vec![row; rows].join(", ")
    )
}

/// Inserts `records`, [`ROWS_PER_INSERT`] to a statement where there are enough.
fn insert_records(
    tx: &Transaction<'_>,
    host_id: i64,
    records: &[NewRecord<'_>],
    now: i64,
) -> Result<(), StoreError> {
    let mut one = tx.prepare_cached(&insert_records_sql(1))?;
    let mut many = tx.prepare_cached(&insert_records_sql(ROWS_PER_INSERT))?;
    for chunk in records.chunks(ROWS_PER_INSERT) {
        if chunk.len() == ROWS_PER_INSERT {
            for (i, r) in chunk.iter().enumerate() {
                bind_record(&mut many, i * RECORD_COLUMNS, host_id, r, now)?;
            }
            many.raw_execute()?;
        } else {
            for r in chunk {
                bind_record(&mut one, 0, host_id, r, now)?;
                one.raw_execute()?;
            }
        }
    }
    Ok(())
}

/// Binds one record's columns after the first `offset` parameters.
fn bind_record(
    stmt: &mut CachedStatement<'_>,
    offset: usize,
    host_id: i64,
    r: &NewRecord<'_>,
    now: i64,
) -> Result<(), StoreError> {
    let at = |i: usize| offset + i;
    stmt.raw_bind_parameter(at(1), host_id)?;
    stmt.raw_bind_parameter(at(2), int(r.seq))?;
    stmt.raw_bind_parameter(at(3), &r.hash[..])?;
    stmt.raw_bind_parameter(at(4), r.kind.as_str())?;
    record_row::bind(stmt, at(5), &r.columns)?;
    stmt.raw_bind_parameter(at(5 + record_row::COUNT), r.payload)?;
    stmt.raw_bind_parameter(at(6 + record_row::COUNT), now)?;
    Ok(())
}

/// Raises `alerts` of `host` at `now`: a kind the host has an alert of already counts it again (with this
/// time, sequence number and detail, and a new id, so pages after the old id show it again).
fn insert_alerts(
    tx: &Transaction<'_>,
    host: &str,
    alerts: &[NewAlert],
    now: i64,
) -> Result<(), StoreError> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO alerts (host, kind, time_ns, last_time_ns, count, seq, detail) \
         VALUES (?1, ?2, ?3, ?3, 1, ?4, ?5) \
         ON CONFLICT (host, kind) DO UPDATE SET id = (SELECT MAX(id) FROM alerts) + 1, \
         count = count + 1, last_time_ns = excluded.last_time_ns, seq = excluded.seq, \
         detail = excluded.detail",
    )?;
    for alert in alerts {
        insert.execute(params![
            host,
            alert.kind.as_str(),
            now,
            alert.seq.map(int),
            alert.detail.to_string()
        ])?;
    }
    fleet::raise_chain(tx, host, alerts, now)
}
