//! Holds in SQLite: `holds` (one row per host and hold id, updated by each `hold` event a commit carries),
//! `verdicts` (at most one per hold; ids are the agents' pull cursor) and `loaded_rules`.

use auditloop_protocol::api::holds::{Decision, Verdict};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use crate::store::commit::NewRecord;
use crate::store::error::StoreError;
use crate::store::fleet::{Finding, NewAuditEntry};
use crate::store::holds::{HoldQuery, HoldReport, NewVerdict, StoredHold, VerdictOutcome};
use crate::store::sqlite::conn::{int, uint};
use crate::store::sqlite::fleet::append_audit;

/// The tables, as a new file (or the migration to version 7) creates them.
pub(super) const TABLES: &str = "
CREATE TABLE IF NOT EXISTS holds (
    host TEXT NOT NULL,
    hold INTEGER NOT NULL,
    rule TEXT NOT NULL,
    pid INTEGER NOT NULL,
    comm TEXT NOT NULL,
    exe TEXT NOT NULL,
    state TEXT NOT NULL,
    stopped_by TEXT NOT NULL,
    requested_ns INTEGER NOT NULL,
    timeout_ms INTEGER NOT NULL,
    dflt TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    latency_us INTEGER,
    detail TEXT NOT NULL,
    PRIMARY KEY (host, hold)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS holds_requested ON holds (requested_ns);
CREATE TABLE IF NOT EXISTS verdicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    host TEXT NOT NULL,
    hold INTEGER NOT NULL,
    decision TEXT NOT NULL,
    by TEXT NOT NULL,
    comment TEXT NOT NULL,
    time_ns INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS verdicts_hold ON verdicts (host, hold);
CREATE TABLE IF NOT EXISTS loaded_rules (
    rule TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    time_ns INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Stores what a batch's `hold` and `rules_loaded` events of `host` report.
pub(super) fn store_reports(
    tx: &Transaction<'_>,
    host: &str,
    records: &[NewRecord<'_>],
) -> Result<(), StoreError> {
    for r in records {
        let time = int(r.columns.time_ns.unwrap_or(0));
        match &r.columns.finding {
            Some(Finding::Hold(h)) => report(tx, host, h, time)?,
            Some(Finding::RulesLoaded(names)) => {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO loaded_rules (rule, host, time_ns) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (rule) DO UPDATE SET host = excluded.host, time_ns = excluded.time_ns",
                )?;
                for name in names {
                    insert.execute(params![name, host, time])?;
                }
            }
            Some(Finding::Alert { .. } | Finding::Action { .. }) | None => {}
        }
    }
    Ok(())
}

/// Inserts a hold's request, or moves it to the reported state.
fn report(tx: &Transaction<'_>, host: &str, h: &HoldReport, time: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO holds (host, hold, rule, pid, comm, exe, state, stopped_by, requested_ns, timeout_ms, \
         dflt, decided_by, latency_us, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
         ON CONFLICT (host, hold) DO UPDATE SET state = CASE WHEN excluded.state = 'requested' \
         THEN holds.state ELSE excluded.state END, \
         decided_by = CASE WHEN excluded.decided_by = '' THEN holds.decided_by ELSE excluded.decided_by END, \
         latency_us = COALESCE(excluded.latency_us, holds.latency_us), detail = excluded.detail",
    )?
    .execute(params![
        host,
        int(h.hold),
        h.rule,
        h.pid,
        h.comm,
        h.exe,
        h.state,
        h.stopped_by,
        time,
        int(h.timeout_ms),
        h.default,
        h.decided_by,
        h.latency_us.map(int),
        h.detail
    ])?;
    Ok(())
}

fn verdict_row(row: &Row<'_>) -> rusqlite::Result<(i64, String, i64, String, String, String, i64)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
    ))
}

fn verdict(raw: (i64, String, i64, String, String, String, i64)) -> Result<Verdict, StoreError> {
    let (id, host, hold, decision, by, comment, time_ns) = raw;
    let decision = Decision::parse(&decision)
        .ok_or_else(|| StoreError::Corrupt(format!("verdict {id}: decision {decision:?}")))?;
    Ok(Verdict {
        id,
        host,
        hold: uint(hold),
        decision,
        by,
        comment,
        time_ns: uint(time_ns),
    })
}

const VERDICT_COLUMNS: &str = "id, host, hold, decision, by, comment, time_ns";

/// Holds matching `q`, newest request first.
pub(super) fn holds(conn: &Connection, q: &HoldQuery) -> Result<Vec<StoredHold>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT h.host, h.hold, h.rule, h.pid, h.comm, h.exe, h.state, h.stopped_by, h.requested_ns, \
         h.timeout_ms, h.dflt, h.decided_by, h.latency_us, h.detail, \
         v.id, v.host, v.hold, v.decision, v.by, v.comment, v.time_ns \
         FROM holds h LEFT JOIN verdicts v ON v.host = h.host AND v.hold = h.hold \
         WHERE (?1 IS NULL OR h.host = ?1) AND (?2 = 0 OR h.state = 'requested') \
         ORDER BY h.requested_ns DESC, h.hold DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![q.host, q.waiting, i64::from(q.limit)], |row| {
        let verdict_id: Option<i64> = row.get(14)?;
        let v = match verdict_id {
            Some(id) => Some((
                id,
                row.get(15)?,
                row.get(16)?,
                row.get(17)?,
                row.get(18)?,
                row.get(19)?,
                row.get(20)?,
            )),
            None => None,
        };
        Ok((
            StoredHold {
                host: row.get(0)?,
                hold: uint(row.get(1)?),
                rule: row.get(2)?,
                pid: row.get(3)?,
                comm: row.get(4)?,
                exe: row.get(5)?,
                state: row.get(6)?,
                stopped_by: row.get(7)?,
                requested_ns: uint(row.get(8)?),
                timeout_ms: uint(row.get(9)?),
                default: row.get(10)?,
                decided_by: row.get(11)?,
                latency_us: row.get::<_, Option<i64>>(12)?.map(uint),
                detail: row.get(13)?,
                verdict: None,
            },
            v,
        ))
    })?;
    rows.map(|row| {
        let (mut hold, v) = row?;
        hold.verdict = v.map(verdict).transpose()?;
        Ok(hold)
    })
    .collect()
}

/// Records a verdict once, with its audit entry.
pub(super) fn record_verdict(
    conn: &mut Connection,
    v: &NewVerdict<'_>,
) -> Result<VerdictOutcome, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let state: Option<String> = tx
        .prepare_cached("SELECT state FROM holds WHERE host = ?1 AND hold = ?2")?
        .query_row(params![v.host, int(v.hold)], |row| row.get(0))
        .optional()?;
    let Some(state) = state else {
        return Ok(VerdictOutcome::Unknown);
    };
    let existing = tx
        .prepare_cached(&format!(
            "SELECT {VERDICT_COLUMNS} FROM verdicts WHERE host = ?1 AND hold = ?2"
        ))?
        .query_row(params![v.host, int(v.hold)], verdict_row)
        .optional()?;
    if let Some(existing) = existing {
        return Ok(VerdictOutcome::AlreadyDecided(verdict(existing)?));
    }
    if state != "requested" {
        return Ok(VerdictOutcome::Closed(state));
    }
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO verdicts (host, hold, decision, by, comment, time_ns) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        )?
        .query_row(
            params![
                v.host,
                int(v.hold),
                v.decision.as_str(),
                v.by,
                v.comment,
                int(v.now_ns)
            ],
            |row| row.get(0),
        )?;
    append_audit(
        &tx,
        &NewAuditEntry {
            time_ns: v.now_ns,
            who: v.by,
            action: "hold_verdict",
            target: &format!("hold:{}:{}", v.host, v.hold),
            detail: serde_json::json!({ "decision": v.decision.as_str(), "comment": v.comment }),
        },
    )?;
    tx.commit()?;
    Ok(VerdictOutcome::Recorded(Verdict {
        id,
        host: v.host.to_owned(),
        hold: v.hold,
        decision: v.decision,
        by: v.by.to_owned(),
        comment: v.comment.to_owned(),
        time_ns: v.now_ns,
    }))
}

/// The verdicts of `host` above `after`.
pub(super) fn verdicts(
    conn: &Connection,
    host: &str,
    after: i64,
) -> Result<Vec<Verdict>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {VERDICT_COLUMNS} FROM verdicts WHERE host = ?1 AND id > ?2 ORDER BY id"
    ))?;
    let rows = stmt.query_map(params![host, after], verdict_row)?;
    rows.map(|r| verdict(r?)).collect()
}

/// The rule names hosts reported loading.
pub(super) fn loaded_rules(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT rule FROM loaded_rules ORDER BY rule")?;
    let rows = stmt.query_map([], |row| row.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
