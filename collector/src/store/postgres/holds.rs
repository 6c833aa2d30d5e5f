//! Holds in PostgreSQL: `holds` (one row per host and hold id, updated by each `hold` event a commit
//! carries), `verdicts` (at most one per hold; ids are the agents' pull cursor, given under the order lock
//! so that they are in commit order) and `loaded_rules`: the same tables as the SQLite store's.

use auditloop_protocol::api::holds::{Decision, Verdict};
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use crate::store::commit::NewRecord;
use crate::store::error::StoreError;
use crate::store::fleet::{Finding, NewAuditEntry};
use crate::store::holds::{HoldQuery, HoldReport, NewVerdict, StoredHold, VerdictOutcome};
use crate::store::postgres::conn::{int, uint};
use crate::store::postgres::fleet::append_audit;
use crate::store::postgres::order::{notify, take_order};

/// Stores what a batch's `hold` and `rules_loaded` events of `host` report.
pub(super) async fn store_reports(
    tx: &Transaction<'_>,
    host: &str,
    records: &[NewRecord<'_>],
) -> Result<(), StoreError> {
    for r in records {
        let time = int(r.columns.time_ns.unwrap_or(0));
        match &r.columns.finding {
            Some(Finding::Hold(h)) => {
                report(tx, host, h, time).await?;
            }
            Some(Finding::RulesLoaded(names)) => {
                let stmt = tx
                    .prepare_cached(
                        "INSERT INTO loaded_rules (rule, host, time_ns) VALUES ($1, $2, $3) \
                         ON CONFLICT (rule) DO UPDATE SET host = EXCLUDED.host, time_ns = EXCLUDED.time_ns",
                    )
                    .await?;
                for name in names {
                    tx.execute(&stmt, &[name, &host, &time]).await?;
                }
            }
            Some(Finding::Alert { .. } | Finding::Action { .. }) | None => {}
        }
    }
    Ok(())
}

/// Inserts a hold's request, or moves it to the reported state.
async fn report(
    tx: &Transaction<'_>,
    host: &str,
    h: &HoldReport,
    time: i64,
) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO holds (host, hold, rule, pid, comm, exe, state, stopped_by, requested_ns, \
             timeout_ms, dflt, decided_by, latency_us, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (host, hold) DO UPDATE SET state = CASE WHEN EXCLUDED.state = 'requested' \
             THEN holds.state ELSE EXCLUDED.state END, \
             decided_by = CASE WHEN EXCLUDED.decided_by = '' THEN holds.decided_by \
             ELSE EXCLUDED.decided_by END, \
             latency_us = COALESCE(EXCLUDED.latency_us, holds.latency_us), detail = EXCLUDED.detail",
        )
        .await?;
    let latency = h.latency_us.map(int);
    tx.execute(
        &stmt,
        &[
            &host,
            &int(h.hold),
            &h.rule,
            &i64::from(h.pid),
            &h.comm,
            &h.exe,
            &h.state,
            &h.stopped_by,
            &time,
            &int(h.timeout_ms),
            &h.default,
            &h.decided_by,
            &latency,
            &h.detail,
        ],
    )
    .await?;
    Ok(())
}

const VERDICT_COLUMNS: &str = "id, host, hold, decision, by, comment, time_ns";

/// A verdict in the columns [`VERDICT_COLUMNS`] names, from column `first` of `row`.
fn verdict(row: &Row, first: usize) -> Result<Verdict, StoreError> {
    let id: i64 = row.try_get(first)?;
    let decision: String = row.try_get(first + 3)?;
    let decision = Decision::parse(&decision)
        .ok_or_else(|| StoreError::Corrupt(format!("verdict {id}: decision {decision:?}")))?;
    Ok(Verdict {
        id,
        host: row.try_get(first + 1)?,
        hold: uint(row.try_get(first + 2)?),
        decision,
        by: row.try_get(first + 4)?,
        comment: row.try_get(first + 5)?,
        time_ns: uint(row.try_get(first + 6)?),
    })
}

/// Holds matching `q`, newest request first.
pub(super) async fn holds<C: GenericClient>(
    client: &C,
    q: &HoldQuery,
) -> Result<Vec<StoredHold>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT h.host, h.hold, h.rule, h.pid, h.comm, h.exe, h.state, h.stopped_by, h.requested_ns, \
             h.timeout_ms, h.dflt, h.decided_by, h.latency_us, h.detail, \
             v.id, v.host, v.hold, v.decision, v.by, v.comment, v.time_ns \
             FROM holds h LEFT JOIN verdicts v ON v.host = h.host AND v.hold = h.hold \
             WHERE ($1::TEXT IS NULL OR h.host = $1) AND (NOT $2 OR h.state = 'requested') \
             ORDER BY h.requested_ns DESC, h.hold DESC LIMIT $3",
        )
        .await?;
    let rows = client
        .query(&stmt, &[&q.host, &q.waiting, &i64::from(q.limit)])
        .await?;
    rows.iter()
        .map(|row| {
            let verdict_id: Option<i64> = row.try_get(14)?;
            let pid: i64 = row.try_get(3)?;
            Ok(StoredHold {
                host: row.try_get(0)?,
                hold: uint(row.try_get(1)?),
                rule: row.try_get(2)?,
                pid: u32::try_from(pid)
                    .map_err(|_| StoreError::Corrupt(format!("hold pid {pid}")))?,
                comm: row.try_get(4)?,
                exe: row.try_get(5)?,
                state: row.try_get(6)?,
                stopped_by: row.try_get(7)?,
                requested_ns: uint(row.try_get(8)?),
                timeout_ms: uint(row.try_get(9)?),
                default: row.try_get(10)?,
                decided_by: row.try_get(11)?,
                latency_us: row.try_get::<_, Option<i64>>(12)?.map(uint),
                detail: row.try_get(13)?,
                verdict: verdict_id.map(|_| verdict(row, 14)).transpose()?,
            })
        })
        .collect()
}

/// Records a verdict once, with its audit entry.
pub(super) async fn record_verdict(
    client: &mut deadpool_postgres::Client,
    v: &NewVerdict<'_>,
) -> Result<VerdictOutcome, StoreError> {
    let tx = client.transaction().await?;
    take_order(&tx).await?;
    let stmt = tx
        .prepare_cached("SELECT state FROM holds WHERE host = $1 AND hold = $2 FOR UPDATE")
        .await?;
    let Some(row) = tx.query_opt(&stmt, &[&v.host, &int(v.hold)]).await? else {
        return Ok(VerdictOutcome::Unknown);
    };
    let state: String = row.try_get(0)?;
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT {VERDICT_COLUMNS} FROM verdicts WHERE host = $1 AND hold = $2"
        ))
        .await?;
    if let Some(existing) = tx.query_opt(&stmt, &[&v.host, &int(v.hold)]).await? {
        return Ok(VerdictOutcome::AlreadyDecided(verdict(&existing, 0)?));
    }
    if state != "requested" {
        return Ok(VerdictOutcome::Closed(state));
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO verdicts (host, hold, decision, by, comment, time_ns) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .await?;
    let id: i64 = tx
        .query_one(
            &stmt,
            &[
                &v.host,
                &int(v.hold),
                &v.decision.as_str(),
                &v.by,
                &v.comment,
                &int(v.now_ns),
            ],
        )
        .await?
        .try_get(0)?;
    append_audit(
        &tx,
        &NewAuditEntry {
            time_ns: v.now_ns,
            who: v.by,
            action: "hold_verdict",
            target: &format!("hold:{}:{}", v.host, v.hold),
            detail: serde_json::json!({ "decision": v.decision.as_str(), "comment": v.comment }),
        },
    )
    .await?;
    notify(&tx, "holds").await?;
    tx.commit().await?;
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
pub(super) async fn verdicts<C: GenericClient>(
    client: &C,
    host: &str,
    after: i64,
) -> Result<Vec<Verdict>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {VERDICT_COLUMNS} FROM verdicts WHERE host = $1 AND id > $2 ORDER BY id"
        ))
        .await?;
    let rows = client.query(&stmt, &[&host, &after]).await?;
    rows.iter().map(|row| verdict(row, 0)).collect()
}

/// The rule names hosts reported loading.
pub(super) async fn loaded_rules<C: GenericClient>(client: &C) -> Result<Vec<String>, StoreError> {
    let stmt = client
        .prepare_cached("SELECT rule FROM loaded_rules ORDER BY rule")
        .await?;
    let rows = client.query(&stmt, &[]).await?;
    rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
}
