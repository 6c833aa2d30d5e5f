//! Fleet alerts in PostgreSQL: `fleet_alerts` (rule alerts one per `alert` event, chain alerts one per host
//! and kind), `fleet_actions` (the `action` events, joined to alerts by host, trigger and rule) and the
//! hash-chained `audit_log`, the same tables as the SQLite store's. Rows are written in the transaction of
//! the batch or alert that makes them, under the order lock (`write.rs`): every write to an alert gives it
//! the next value of the `fleet_rev` sequence, in commit order, so a live feed asking for `rev > last seen`
//! on any replica sees every new alert, repeat and state change once.

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use auditloop_model::Severity;
use auditloop_protocol::api::fleet::{AlertSource, AlertState};

use crate::alerts::{NewAlert, describe};
use crate::store::commit::NewRecord;
use crate::store::error::StoreError;
use crate::store::fleet::{
    AuditEntry, Finding, FleetAction, FleetAlert, FleetQuery, NewAuditEntry, StateChange,
    audit_hash, chain_severity,
};
use crate::store::postgres::conn::{Sql, int, uint};
use crate::store::postgres::order::{notify, take_order};

/// The rank of a severity: 0 for `emergency`, the most severe, upwards.
fn rank(severity: Severity) -> i64 {
    Severity::all()
        .position(|s| s == severity)
        .map_or(i64::MAX, |p| p as i64)
}

/// Stores the fleet rows of a batch's records of `host` (rule alerts and actions).
pub(super) async fn store_findings(
    tx: &Transaction<'_>,
    host: &str,
    records: &[NewRecord<'_>],
) -> Result<(), StoreError> {
    for r in records {
        let time = int(r.columns.time_ns.unwrap_or(0));
        let seq = int(r.seq);
        match &r.columns.finding {
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
                let stmt = tx
                    .prepare_cached(
                        "INSERT INTO fleet_alerts (rev, source, host, rule, severity, severity_rank, tags, \
                         output, seq, trigger_seq, time_ns, last_time_ns, count, state) \
                         VALUES (nextval('fleet_rev'), 'rule', $1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 1, 'open')",
                    )
                    .await?;
                tx.execute(
                    &stmt,
                    &[
                        &host,
                        rule,
                        &severity.as_str(),
                        &rank(*severity),
                        &tags,
                        output,
                        &seq,
                        &int(*trigger_seq),
                        &time,
                    ],
                )
                .await?;
            }
            Some(Finding::Action {
                rule,
                action,
                trigger_seq,
                ok,
                detail,
            }) => {
                let stmt = tx
                    .prepare_cached(
                        "INSERT INTO fleet_actions (host, seq, trigger_seq, rule, action, ok, detail) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .await?;
                tx.execute(
                    &stmt,
                    &[&host, &seq, &int(*trigger_seq), rule, action, ok, detail],
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// Deletes the fleet rows of the records of `host` from `from` on (pending records being replaced).
pub(super) async fn drop_findings(
    tx: &Transaction<'_>,
    host: &str,
    from: u64,
) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "DELETE FROM fleet_alerts WHERE source = 'rule' AND host = $1 AND seq >= $2",
        )
        .await?;
    tx.execute(&stmt, &[&host, &int(from)]).await?;
    let stmt = tx
        .prepare_cached("DELETE FROM fleet_actions WHERE host = $1 AND seq >= $2")
        .await?;
    tx.execute(&stmt, &[&host, &int(from)]).await?;
    Ok(())
}

/// Lists `alerts` of `host` raised at `now` in the fleet list: one row per host and kind, counted, and
/// reopened when it was resolved.
pub(super) async fn raise_chain(
    tx: &Transaction<'_>,
    host: &str,
    alerts: &[NewAlert],
    now: i64,
) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO fleet_alerts (rev, source, host, rule, severity, severity_rank, tags, output, seq, \
             time_ns, last_time_ns, count, state) \
             VALUES (nextval('fleet_rev'), 'chain', $1, $2, $3, $4, '[]', $5, $6, $7, $7, 1, 'open') \
             ON CONFLICT (host, rule) WHERE source = 'chain' DO UPDATE SET rev = nextval('fleet_rev'), \
             count = fleet_alerts.count + 1, last_time_ns = EXCLUDED.last_time_ns, seq = EXCLUDED.seq, \
             output = EXCLUDED.output, \
             state = CASE WHEN fleet_alerts.state = 'resolved' THEN 'open' ELSE fleet_alerts.state END",
        )
        .await?;
    for alert in alerts {
        let severity = chain_severity(alert.kind);
        let output = format!("{}: {}", describe(alert.kind), alert.detail);
        let seq = alert.seq.map(int);
        tx.execute(
            &stmt,
            &[
                &host,
                &alert.kind.as_str(),
                &severity.as_str(),
                &rank(severity),
                &output,
                &seq,
                &now,
            ],
        )
        .await?;
    }
    Ok(())
}

const ALERT_COLUMNS: &str = "id, rev, source, host, rule, severity, tags, output, seq, trigger_seq, \
    time_ns, last_time_ns, count, state, state_by, state_ns, state_comment";

/// Reads an alert row selected with [`ALERT_COLUMNS`], and its actions.
async fn decode<C: GenericClient>(client: &C, row: &Row) -> Result<FleetAlert, StoreError> {
    let id: i64 = row.try_get(0)?;
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("fleet alert {id}: {what}: {e}"))
    };
    let source: String = row.try_get(2)?;
    let source = AlertSource::parse(&source).ok_or_else(|| corrupt("source", &source))?;
    let severity: String = row.try_get(5)?;
    let severity: Severity = severity
        .parse()
        .map_err(|_| corrupt("severity", &severity))?;
    let tags: String = row.try_get(6)?;
    let tags: Vec<String> = serde_json::from_str(&tags).map_err(|e| corrupt("tags", &e))?;
    let state: String = row.try_get(13)?;
    let state = AlertState::parse(&state).ok_or_else(|| corrupt("state", &state))?;
    let host: String = row.try_get(3)?;
    let rule: String = row.try_get(4)?;
    let trigger_seq: Option<i64> = row.try_get(9)?;
    let actions = match trigger_seq {
        Some(trigger) if source == AlertSource::Rule => {
            actions_of(client, &host, trigger, &rule).await?
        }
        Some(_) | None => Vec::new(),
    };
    Ok(FleetAlert {
        id,
        rev: row.try_get(1)?,
        source,
        host,
        rule,
        severity,
        tags,
        output: row.try_get(7)?,
        seq: row.try_get::<_, Option<i64>>(8)?.map(uint),
        trigger_seq: trigger_seq.map(uint),
        time_ns: uint(row.try_get(10)?),
        last_time_ns: uint(row.try_get(11)?),
        count: uint(row.try_get(12)?),
        state,
        state_by: row.try_get(14)?,
        state_ns: row.try_get::<_, Option<i64>>(15)?.map(uint),
        state_comment: row.try_get(16)?,
        actions,
    })
}

/// The actions of `rule` for trigger `trigger` of `host`, by sequence number.
async fn actions_of<C: GenericClient>(
    client: &C,
    host: &str,
    trigger: i64,
    rule: &str,
) -> Result<Vec<FleetAction>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT seq, action, ok, detail FROM fleet_actions \
             WHERE host = $1 AND trigger_seq = $2 AND rule = $3 ORDER BY seq",
        )
        .await?;
    let rows = client.query(&stmt, &[&host, &trigger, &rule]).await?;
    rows.iter()
        .map(|row| {
            Ok(FleetAction {
                seq: uint(row.try_get(0)?),
                action: row.try_get(1)?,
                ok: row.try_get(2)?,
                detail: row.try_get(3)?,
            })
        })
        .collect()
}

/// Fleet alerts matching `q`: newest first, or with `after`, in revision order (oldest change first).
pub(super) async fn alerts<C: GenericClient>(
    client: &C,
    q: &FleetQuery,
) -> Result<Vec<FleetAlert>, StoreError> {
    let mut sql = Sql::new(format!(
        "SELECT {ALERT_COLUMNS} FROM fleet_alerts WHERE TRUE"
    ));
    if let Some(host) = &q.host {
        sql.push(" AND host = {}", host.clone());
    }
    if let Some(rule) = &q.rule {
        sql.push(" AND rule = {}", rule.clone());
    }
    if let Some(source) = q.source {
        sql.push(" AND source = {}", source.as_str().to_owned());
    }
    if let Some(severity) = q.min_severity {
        sql.push(" AND severity_rank <= {}", rank(severity));
    }
    if let Some(state) = q.state {
        sql.push(" AND state = {}", state.as_str().to_owned());
    }
    if let Some(trigger) = q.trigger_seq {
        sql.push(" AND trigger_seq = {}", int(trigger));
    }
    if let Some(since) = q.since_ns {
        sql.push(" AND last_time_ns >= {}", int(since));
    }
    if let Some(until) = q.until_ns {
        sql.push(" AND last_time_ns < {}", int(until));
    }
    if let Some(before) = q.before {
        sql.push(" AND id < {}", before);
    }
    if let Some(after) = q.after {
        sql.push(" AND rev > {}", after);
        sql.push(" ORDER BY rev LIMIT {}", i64::from(q.limit));
    } else {
        sql.push(" ORDER BY id DESC LIMIT {}", i64::from(q.limit));
    }
    let rows = client.query(&sql.text, &sql.params()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        out.push(decode(client, row).await?);
    }
    Ok(out)
}

/// The fleet alert `id`.
pub(super) async fn alert<C: GenericClient>(
    client: &C,
    id: i64,
) -> Result<Option<FleetAlert>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {ALERT_COLUMNS} FROM fleet_alerts WHERE id = $1"
        ))
        .await?;
    match client.query_opt(&stmt, &[&id]).await? {
        Some(row) => Ok(Some(decode(client, &row).await?)),
        None => Ok(None),
    }
}

/// Changes an alert's state and logs the change, in one transaction; `None` when there is no such alert.
pub(super) async fn set_state(
    client: &mut deadpool_postgres::Client,
    change: &StateChange<'_>,
) -> Result<Option<FleetAlert>, StoreError> {
    let tx = client.transaction().await?;
    take_order(&tx).await?;
    let stmt = tx
        .prepare_cached("SELECT state FROM fleet_alerts WHERE id = $1 FOR UPDATE")
        .await?;
    let Some(row) = tx.query_opt(&stmt, &[&change.id]).await? else {
        return Ok(None);
    };
    let from: String = row.try_get(0)?;
    let stmt = tx
        .prepare_cached(
            "UPDATE fleet_alerts SET rev = nextval('fleet_rev'), state = $2, state_by = $3, \
             state_ns = $4, state_comment = $5 WHERE id = $1",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &change.id,
            &change.state.as_str(),
            &change.by,
            &int(change.now_ns),
            &change.comment,
        ],
    )
    .await?;
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
    )
    .await?;
    notify(&tx, "fleet").await?;
    let alert = alert(&tx, change.id).await?;
    tx.commit().await?;
    Ok(alert)
}

/// Appends `entry` to the audit log, chained to the last entry (the caller holds the order lock, so no
/// other entry can come between the one read and the one written).
pub(super) async fn append_audit(
    tx: &Transaction<'_>,
    entry: &NewAuditEntry<'_>,
) -> Result<AuditEntry, StoreError> {
    let stmt = tx
        .prepare_cached(
            "SELECT COALESCE((SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1), '')",
        )
        .await?;
    let previous: String = tx.query_one(&stmt, &[]).await?.try_get(0)?;
    let hash = audit_hash(&previous, entry);
    let detail = entry.detail.to_string();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO audit_log (time_ns, who, action, target, detail, hash) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .await?;
    let id: i64 = tx
        .query_one(
            &stmt,
            &[
                &int(entry.time_ns),
                &entry.who,
                &entry.action,
                &entry.target,
                &detail,
                &hash,
            ],
        )
        .await?
        .try_get(0)?;
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
pub(super) async fn audit(
    client: &mut deadpool_postgres::Client,
    entry: &NewAuditEntry<'_>,
) -> Result<AuditEntry, StoreError> {
    let tx = client.transaction().await?;
    take_order(&tx).await?;
    let entry = append_audit(&tx, entry).await?;
    tx.commit().await?;
    Ok(entry)
}

/// The audit log, oldest first; only entries about `target` when given.
pub(super) async fn audit_log<C: GenericClient>(
    client: &C,
    target: Option<&str>,
) -> Result<Vec<AuditEntry>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT id, time_ns, who, action, target, detail, hash FROM audit_log \
             WHERE $1::TEXT IS NULL OR target = $1 ORDER BY id",
        )
        .await?;
    let rows = client.query(&stmt, &[&target]).await?;
    rows.iter()
        .map(|row| {
            let id: i64 = row.try_get(0)?;
            let detail: String = row.try_get(5)?;
            let detail = serde_json::from_str(&detail)
                .map_err(|e| StoreError::Corrupt(format!("audit entry {id}: detail: {e}")))?;
            Ok(AuditEntry {
                id,
                time_ns: uint(row.try_get(1)?),
                who: row.try_get(2)?,
                action: row.try_get(3)?,
                target: row.try_get(4)?,
                detail,
                hash: row.try_get(6)?,
            })
        })
        .collect()
}
