//! Fleet alerts in SQLite: `fleet_alerts` (rule alerts one per `alert` event, chain alerts one per host and
//! kind), `fleet_actions` (the `action` events, joined to alerts by host, trigger and rule) and the
//! hash-chained `audit_log`. Rows are written in the transaction of the batch or alert that makes them.
//!
//! Every write to an alert gives it the next `rev`, so a live feed asks for `rev > last seen` and sees new
//! alerts, repeats and state changes alike.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params, params_from_iter};

use auditloop_model::Severity;
use auditloop_protocol::api::fleet::{AlertSource, AlertState};

use crate::alerts::{NewAlert, describe};
use auditloop_journal::record::{Payload, decode_payload};

use crate::store::columns;
use crate::store::commit::{NewRecord, SearchColumns};
use crate::store::error::StoreError;
use crate::store::fleet::{
    AuditEntry, Finding, FleetAction, FleetAlert, FleetQuery, NewAuditEntry, StateChange,
    audit_hash, chain_severity,
};
use crate::store::sqlite::conn::{int, uint};
use crate::store::sqlite::read::Sql;

/// The tables, as a new file (or the migration to version 7) creates them.
pub(super) const TABLES: &str = "
CREATE TABLE IF NOT EXISTS fleet_alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rev INTEGER NOT NULL,
    source TEXT NOT NULL,
    host TEXT NOT NULL,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    severity_rank INTEGER NOT NULL,
    tags TEXT NOT NULL,
    output TEXT NOT NULL,
    seq INTEGER,
    trigger_seq INTEGER,
    time_ns INTEGER NOT NULL,
    last_time_ns INTEGER NOT NULL,
    count INTEGER NOT NULL,
    state TEXT NOT NULL,
    state_by TEXT,
    state_ns INTEGER,
    state_comment TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS fleet_alerts_rule ON fleet_alerts (host, seq) WHERE source = 'rule';
CREATE UNIQUE INDEX IF NOT EXISTS fleet_alerts_chain ON fleet_alerts (host, rule) WHERE source = 'chain';
CREATE UNIQUE INDEX IF NOT EXISTS fleet_alerts_rev ON fleet_alerts (rev);
CREATE INDEX IF NOT EXISTS fleet_alerts_time ON fleet_alerts (last_time_ns);
CREATE TABLE IF NOT EXISTS fleet_actions (
    host TEXT NOT NULL,
    seq INTEGER NOT NULL,
    trigger_seq INTEGER NOT NULL,
    rule TEXT NOT NULL,
    action TEXT NOT NULL,
    ok INTEGER NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (host, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS fleet_actions_trigger ON fleet_actions (host, trigger_seq);
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ns INTEGER NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_target ON audit_log (target);
";

/// The next revision.
const NEXT_REV: &str = "(SELECT COALESCE(MAX(rev), 0) + 1 FROM fleet_alerts)";

/// The rank of a severity: 0 for `emergency`, the most severe, upwards.
fn rank(severity: Severity) -> i64 {
    Severity::all()
        .position(|s| s == severity)
        .map_or(i64::MAX, |p| p as i64)
}

/// Stores the fleet rows of a batch's records of `host` (rule alerts and actions).
pub(super) fn store_findings(
    tx: &Transaction<'_>,
    host: &str,
    records: &[NewRecord<'_>],
) -> Result<(), StoreError> {
    store_each(tx, host, records.iter().map(|r| (r.seq, &r.columns)))
}

/// Version 7's backfill: the fleet rows of the `alert` and `action` events stored before it, derived from
/// their payloads as ingest derives them.
pub(super) fn backfill(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let rows = {
        let mut select = tx.prepare(
            "SELECT h.name, r.seq, r.payload FROM records r JOIN hosts h ON h.id = r.host_id \
             WHERE r.kind IN ('alert', 'action') ORDER BY r.id",
        )?;
        let rows = select.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    for (host, seq, payload) in rows {
        let Ok(Payload::Event(event)) = decode_payload(&payload) else {
            continue;
        };
        let columns = columns::of_event(&event);
        store_each(tx, &host, std::iter::once((uint(seq), &columns)))?;
    }
    Ok(())
}

/// Stores the fleet rows of `(seq, columns)` of `host`.
fn store_each<'c>(
    tx: &Transaction<'_>,
    host: &str,
    records: impl Iterator<Item = (u64, &'c SearchColumns)>,
) -> Result<(), StoreError> {
    let mut alert = tx.prepare_cached(&format!(
        "INSERT INTO fleet_alerts (rev, source, host, rule, severity, severity_rank, tags, output, seq, \
         trigger_seq, time_ns, last_time_ns, count, state) \
         VALUES ({NEXT_REV}, 'rule', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, 1, 'open')"
    ))?;
    let mut action = tx.prepare_cached(
        "INSERT INTO fleet_actions (host, seq, trigger_seq, rule, action, ok, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (seq, columns) in records {
        let time = int(columns.time_ns.unwrap_or(0));
        match &columns.finding {
            None | Some(Finding::Hold(_) | Finding::RulesLoaded(_)) => {}
            Some(Finding::Alert {
                rule,
                severity,
                tags,
                output,
                trigger_seq,
            }) => {
                let tags = serde_json::to_string(tags)
                    .map_err(|e| StoreError::Database(format!("alert tags: {e}")))?;
                alert.execute(params![
                    host,
                    rule,
                    severity.as_str(),
                    rank(*severity),
                    tags,
                    output,
                    int(seq),
                    int(*trigger_seq),
                    time
                ])?;
            }
            Some(Finding::Action {
                rule,
                action: kind,
                trigger_seq,
                ok,
                detail,
            }) => {
                action.execute(params![
                    host,
                    int(seq),
                    int(*trigger_seq),
                    rule,
                    kind,
                    ok,
                    detail
                ])?;
            }
        }
    }
    Ok(())
}

/// Deletes the fleet rows of the records of `host` from `from` on (pending records being replaced).
pub(super) fn drop_findings(tx: &Transaction<'_>, host: &str, from: u64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "DELETE FROM fleet_alerts WHERE source = 'rule' AND host = ?1 AND seq >= ?2",
    )?
    .execute(params![host, int(from)])?;
    tx.prepare_cached("DELETE FROM fleet_actions WHERE host = ?1 AND seq >= ?2")?
        .execute(params![host, int(from)])?;
    Ok(())
}

/// Lists `alerts` of `host` raised at `now` in the fleet list: one row per host and kind, counted, and
/// reopened when it was resolved.
pub(super) fn raise_chain(
    tx: &Transaction<'_>,
    host: &str,
    alerts: &[NewAlert],
    now: i64,
) -> Result<(), StoreError> {
    let mut upsert = tx.prepare_cached(&format!(
        "INSERT INTO fleet_alerts (rev, source, host, rule, severity, severity_rank, tags, output, seq, \
         time_ns, last_time_ns, count, state) \
         VALUES ({NEXT_REV}, 'chain', ?1, ?2, ?3, ?4, '[]', ?5, ?6, ?7, ?7, 1, 'open') \
         ON CONFLICT (host, rule) WHERE source = 'chain' DO UPDATE SET rev = {NEXT_REV}, \
         count = count + 1, last_time_ns = excluded.last_time_ns, seq = excluded.seq, \
         output = excluded.output, \
         state = CASE WHEN state = 'resolved' THEN 'open' ELSE state END"
    ))?;
    for alert in alerts {
        let severity = chain_severity(alert.kind);
        let output = format!("{}: {}", describe(alert.kind), alert.detail);
        upsert.execute(params![
            host,
            alert.kind.as_str(),
            severity.as_str(),
            rank(severity),
            output,
            alert.seq.map(int),
            now
        ])?;
    }
    Ok(())
}

const ALERT_COLUMNS: &str = "id, rev, source, host, rule, severity, tags, output, seq, trigger_seq, \
    time_ns, last_time_ns, count, state, state_by, state_ns, state_comment";

/// Reads an alert row selected with [`ALERT_COLUMNS`] (its actions are added after).
fn alert_row(row: &Row<'_>) -> rusqlite::Result<RawAlert> {
    Ok(RawAlert {
        id: row.get(0)?,
        rev: row.get(1)?,
        source: row.get(2)?,
        host: row.get(3)?,
        rule: row.get(4)?,
        severity: row.get(5)?,
        tags: row.get(6)?,
        output: row.get(7)?,
        seq: row.get(8)?,
        trigger_seq: row.get(9)?,
        time_ns: row.get(10)?,
        last_time_ns: row.get(11)?,
        count: row.get(12)?,
        state: row.get(13)?,
        state_by: row.get(14)?,
        state_ns: row.get(15)?,
        state_comment: row.get(16)?,
    })
}

/// An alert row as stored.
struct RawAlert {
    id: i64,
    rev: i64,
    source: String,
    host: String,
    rule: String,
    severity: String,
    tags: String,
    output: String,
    seq: Option<i64>,
    trigger_seq: Option<i64>,
    time_ns: i64,
    last_time_ns: i64,
    count: i64,
    state: String,
    state_by: Option<String>,
    state_ns: Option<i64>,
    state_comment: Option<String>,
}

impl RawAlert {
    fn decode(self, conn: &Connection) -> Result<FleetAlert, StoreError> {
        let id = self.id;
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("fleet alert {id}: {what}: {e}"))
        };
        let source =
            AlertSource::parse(&self.source).ok_or_else(|| corrupt("source", &self.source))?;
        let severity: Severity = self
            .severity
            .parse()
            .map_err(|_| corrupt("severity", &self.severity))?;
        let state = AlertState::parse(&self.state).ok_or_else(|| corrupt("state", &self.state))?;
        let tags: Vec<String> =
            serde_json::from_str(&self.tags).map_err(|e| corrupt("tags", &e))?;
        let actions = match self.trigger_seq {
            Some(trigger) if source == AlertSource::Rule => {
                actions_of(conn, &self.host, trigger, &self.rule)?
            }
            Some(_) | None => Vec::new(),
        };
        Ok(FleetAlert {
            id,
            rev: self.rev,
            source,
            host: self.host,
            rule: self.rule,
            severity,
            tags,
            output: self.output,
            seq: self.seq.map(uint),
            trigger_seq: self.trigger_seq.map(uint),
            time_ns: uint(self.time_ns),
            last_time_ns: uint(self.last_time_ns),
            count: uint(self.count),
            state,
            state_by: self.state_by,
            state_ns: self.state_ns.map(uint),
            state_comment: self.state_comment,
            actions,
        })
    }
}

/// The actions of `rule` for trigger `trigger` of `host`, by sequence number.
fn actions_of(
    conn: &Connection,
    host: &str,
    trigger: i64,
    rule: &str,
) -> Result<Vec<FleetAction>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, action, ok, detail FROM fleet_actions \
         WHERE host = ?1 AND trigger_seq = ?2 AND rule = ?3 ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![host, trigger, rule], |row| {
        Ok(FleetAction {
            seq: uint(row.get(0)?),
            action: row.get(1)?,
            ok: row.get(2)?,
            detail: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Fleet alerts matching `q`: newest first, or with `after`, in revision order (oldest change first).
pub(super) fn alerts(conn: &Connection, q: &FleetQuery) -> Result<Vec<FleetAlert>, StoreError> {
    let mut sql = Sql {
        text: format!("SELECT {ALERT_COLUMNS} FROM fleet_alerts WHERE 1"),
        args: Vec::new(),
    };
    if let Some(host) = &q.host {
        sql.push(" AND host = ?", host.clone());
    }
    if let Some(rule) = &q.rule {
        sql.push(" AND rule = ?", rule.clone());
    }
    if let Some(source) = q.source {
        sql.push(" AND source = ?", source.as_str().to_owned());
    }
    if let Some(severity) = q.min_severity {
        sql.push(" AND severity_rank <= ?", rank(severity));
    }
    if let Some(state) = q.state {
        sql.push(" AND state = ?", state.as_str().to_owned());
    }
    if let Some(trigger) = q.trigger_seq {
        sql.push(" AND trigger_seq = ?", int(trigger));
    }
    if let Some(since) = q.since_ns {
        sql.push(" AND last_time_ns >= ?", int(since));
    }
    if let Some(until) = q.until_ns {
        sql.push(" AND last_time_ns < ?", int(until));
    }
    if let Some(before) = q.before {
        sql.push(" AND id < ?", before);
    }
    if let Some(after) = q.after {
        sql.push(" AND rev > ?", after);
        sql.push(" ORDER BY rev LIMIT ?", i64::from(q.limit));
    } else {
        sql.push(" ORDER BY id DESC LIMIT ?", i64::from(q.limit));
    }
    let raw = {
        let mut stmt = conn.prepare_cached(&sql.text)?;
        let rows = stmt.query_map(params_from_iter(sql.args), alert_row)?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    raw.into_iter().map(|r| r.decode(conn)).collect()
}

/// The fleet alert `id`.
pub(super) fn alert(conn: &Connection, id: i64) -> Result<Option<FleetAlert>, StoreError> {
    let raw = conn
        .prepare_cached(&format!(
            "SELECT {ALERT_COLUMNS} FROM fleet_alerts WHERE id = ?1"
        ))?
        .query_row([id], alert_row)
        .optional()?;
    raw.map(|r| r.decode(conn)).transpose()
}

/// Changes an alert's state and logs the change, in one transaction; `None` when there is no such alert.
pub(super) fn set_state(
    conn: &mut Connection,
    change: &StateChange<'_>,
) -> Result<Option<FleetAlert>, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let from: Option<String> = tx
        .prepare_cached("SELECT state FROM fleet_alerts WHERE id = ?1")?
        .query_row([change.id], |row| row.get(0))
        .optional()?;
    let Some(from) = from else {
        return Ok(None);
    };
    tx.prepare_cached(&format!(
        "UPDATE fleet_alerts SET rev = {NEXT_REV}, state = ?2, state_by = ?3, state_ns = ?4, \
         state_comment = ?5 WHERE id = ?1"
    ))?
    .execute(params![
        change.id,
        change.state.as_str(),
        change.by,
        int(change.now_ns),
        change.comment
    ])?;
    append_audit(
        &tx,
        &NewAuditEntry {
            time_ns: change.now_ns,
            who: change.by,
            action: "alert_state",
            target: &format!("alert:{}", change.id),
            detail: serde_json::json!({
                "from": from,
                "to": change.state.as_str(),
                "comment": change.comment,
            }),
        },
    )?;
    let alert = alert(&tx, change.id)?;
    tx.commit()?;
    Ok(alert)
}

/// Appends `entry` to the audit log, chained to the last entry.
pub(super) fn append_audit(
    tx: &Transaction<'_>,
    entry: &NewAuditEntry<'_>,
) -> Result<AuditEntry, StoreError> {
    let previous: String = tx
        .prepare_cached(
            "SELECT COALESCE((SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1), '')",
        )?
        .query_row([], |row| row.get(0))?;
    let hash = audit_hash(&previous, entry);
    let detail = entry.detail.to_string();
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO audit_log (time_ns, who, action, target, detail, hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        )?
        .query_row(
            params![
                int(entry.time_ns),
                entry.who,
                entry.action,
                entry.target,
                detail,
                hash
            ],
            |row| row.get(0),
        )?;
    Ok(AuditEntry {
        id,
        time_ns: entry.time_ns,
        who: entry.who.to_owned(),
        action: entry.action.to_owned(),
        target: entry.target.to_owned(),
        detail: entry.detail.clone(),
        hash,
    })
}

/// Appends `entry` in a transaction of its own.
pub(super) fn audit(
    conn: &mut Connection,
    entry: &NewAuditEntry<'_>,
) -> Result<AuditEntry, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let entry = append_audit(&tx, entry)?;
    tx.commit()?;
    Ok(entry)
}

/// The audit log, oldest first; only entries about `target` when given.
pub(super) fn audit_log(
    conn: &Connection,
    target: Option<&str>,
) -> Result<Vec<AuditEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, time_ns, who, action, target, detail, hash FROM audit_log \
         WHERE ?1 IS NULL OR target = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([target], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?,
            row.get::<_, String>(4)?,
            row.get::<_, String>(5)?,
            row.get::<_, String>(6)?,
        ))
    })?;
    rows.map(|row| {
        let (id, time_ns, who, action, target, detail, hash) = row?;
        let detail = serde_json::from_str(&detail)
            .map_err(|e| StoreError::Corrupt(format!("audit entry {id}: detail: {e}")))?;
        Ok(AuditEntry {
            id,
            time_ns: uint(time_ns),
            who,
            action,
            target,
            detail,
            hash,
        })
    })
    .collect()
}
