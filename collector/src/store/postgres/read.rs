//! Reading the PostgreSQL store: host records and token digests, stored hashes, and the records, hosts and
//! alerts queries ask for. A record is verified when its seq is at most its host's `last_checkpoint_seq`.
//! Every filter is a column of `records` with an index of its own on each partition (`schema.rs`), so
//! unlike the SQLite store there is no search file to consult.

use auditloop_journal::record::Hash;
use auditloop_protocol::api::{AlertKind, HostStatus};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::store::commit::RecordKind;
use crate::store::error::StoreError;
use crate::store::host::{HostRecord, StoredHost};
use crate::store::postgres::conn::{Sql, int, uint};
use crate::store::postgres::host_row;
use crate::store::query::{AlertQuery, EventQuery, PathFilter, StoredAlert, StoredRecord};
use crate::store::sqlite::read::prefix_upper_bound;

pub(super) async fn host_record<C: GenericClient>(
    client: &C,
    host: &str,
) -> Result<Option<HostRecord>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {} FROM hosts WHERE name = $1",
            host_row::COLUMNS
        ))
        .await?;
    client
        .query_opt(&stmt, &[&host])
        .await?
        .map(|row| host_row::read(&row, 0))
        .transpose()
}

pub(super) async fn stored_hashes<C: GenericClient>(
    client: &C,
    host: &str,
    from: u64,
    to: u64,
) -> Result<Vec<(u64, Hash)>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT seq, hash FROM records WHERE host_id = (SELECT id FROM hosts WHERE name = $1) \
             AND seq BETWEEN $2 AND $3 ORDER BY seq",
        )
        .await?;
    let rows = client.query(&stmt, &[&host, &int(from), &int(to)]).await?;
    rows.iter()
        .map(|row| {
            let seq: i64 = row.try_get(0)?;
            let hash: Vec<u8> = row.try_get(1)?;
            let hash = Hash::try_from(hash.as_slice()).map_err(|_| {
                StoreError::Corrupt(format!("host {host} seq {seq}: hash is not 32 bytes"))
            })?;
            Ok((uint(seq), hash))
        })
        .collect()
}

/// The token digest of `host`.
pub(super) async fn host_token<C: GenericClient>(
    client: &C,
    host: &str,
) -> Result<Option<[u8; 32]>, StoreError> {
    let stmt = client
        .prepare_cached("SELECT token_digest FROM hosts WHERE name = $1")
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&host]).await? else {
        return Ok(None);
    };
    let digest: Option<Vec<u8>> = row.try_get(0)?;
    digest
        .map(|d| {
            <[u8; 32]>::try_from(d.as_slice())
                .map_err(|_| StoreError::Corrupt(format!("host {host}: token digest length")))
        })
        .transpose()
}

/// The host whose token has `digest`.
pub(super) async fn token_owner<C: GenericClient>(
    client: &C,
    digest: &[u8; 32],
) -> Result<Option<String>, StoreError> {
    let stmt = client
        .prepare_cached("SELECT name FROM hosts WHERE token_digest = $1")
        .await?;
    Ok(client
        .query_opt(&stmt, &[&&digest[..]])
        .await?
        .map(|row| row.try_get(0))
        .transpose()?)
}

/// The counters that follow the record's columns in [`hosts`].
const HOST_COUNTERS: &str = "name, status, records, events, duplicates, batches, last_seen_ns, \
     last_checkpoint_ns, silence_alerted";

pub(super) async fn hosts<C: GenericClient>(
    client: &C,
    only: Option<&str>,
) -> Result<Vec<StoredHost>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {}, {HOST_COUNTERS} FROM hosts WHERE $1::TEXT IS NULL OR name = $1 ORDER BY name",
            host_row::COLUMNS
        ))
        .await?;
    let rows = client.query(&stmt, &[&only]).await?;
    rows.iter()
        .map(|row| {
            let at = |i: usize| host_row::COUNT + i;
            let status: String = row.try_get(at(1))?;
            let status = HostStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown host status {status:?}")))?;
            Ok(StoredHost {
                record: host_row::read(row, 0)?,
                name: row.try_get(at(0))?,
                status,
                records: uint(row.try_get(at(2))?),
                events: uint(row.try_get(at(3))?),
                duplicates: uint(row.try_get(at(4))?),
                batches: uint(row.try_get(at(5))?),
                last_seen_ns: uint(row.try_get(at(6))?),
                last_checkpoint_ns: row.try_get::<_, Option<i64>>(at(7))?.map(uint),
                silent: row.try_get(at(8))?,
            })
        })
        .collect()
}

/// Selects stored records `r` (with their host `h`) in the columns [`stored_record`] reads.
pub(super) fn select_records() -> Sql {
    Sql::new(
        "SELECT r.id, h.name, r.seq, r.stored_ns, r.kind, r.payload, \
         r.seq <= h.last_checkpoint_seq, CASE WHEN r.seq <= h.last_checkpoint_seq THEN \
         (SELECT c.stored_ns FROM checkpoints c WHERE c.host_id = r.host_id AND c.seq >= r.seq \
         ORDER BY c.seq LIMIT 1) END \
         FROM records r JOIN hosts h ON h.id = r.host_id WHERE TRUE",
    )
}

/// A stored record in the columns [`select_records`] selects.
fn stored_record(row: &Row) -> Result<StoredRecord, StoreError> {
    Ok(StoredRecord {
        id: row.try_get(0)?,
        host: row.try_get(1)?,
        seq: uint(row.try_get(2)?),
        stored_ns: uint(row.try_get(3)?),
        kind: row.try_get(4)?,
        payload: row.try_get(5)?,
        verified: row.try_get(6)?,
        verified_ns: row.try_get::<_, Option<i64>>(7)?.map(uint),
    })
}

/// Runs `sql`, reading stored records.
pub(super) async fn stored_records<C: GenericClient>(
    client: &C,
    sql: &Sql,
) -> Result<Vec<StoredRecord>, StoreError> {
    let rows = client.query(&sql.text, &sql.params()).await?;
    rows.iter().map(stored_record).collect()
}

/// The id of host `host`'s row.
pub(super) async fn host_id<C: GenericClient>(
    client: &C,
    host: &str,
) -> Result<Option<i64>, StoreError> {
    let stmt = client
        .prepare_cached("SELECT id FROM hosts WHERE name = $1")
        .await?;
    Ok(client
        .query_opt(&stmt, &[&host])
        .await?
        .map(|row| row.try_get(0))
        .transpose()?)
}

pub(super) async fn records<C: GenericClient>(
    client: &C,
    q: &EventQuery,
) -> Result<Vec<StoredRecord>, StoreError> {
    let mut sql = select_records();
    let order = match &q.host {
        Some(host) => {
            let Some(id) = host_id(client, host).await? else {
                return Ok(Vec::new());
            };
            sql.push(" AND r.host_id = {}", id);
            // Within one host, ingest order is sequence order: page on the (host_id, seq) index.
            if let Some(after) = q.after {
                let stmt = client
                    .prepare_cached("SELECT seq FROM records WHERE id = $1 AND host_id = $2")
                    .await?;
                let seq: Option<i64> = client
                    .query_opt(&stmt, &[&after, &id])
                    .await?
                    .map(|row| row.try_get(0))
                    .transpose()?;
                match seq {
                    Some(seq) => sql.push(" AND r.seq > {}", seq),
                    None => sql.push(" AND r.id > {}", after),
                }
            }
            " ORDER BY r.seq"
        }
        None => {
            if let Some(after) = q.after {
                sql.push(" AND r.id > {}", after);
            }
            " ORDER BY r.id"
        }
    };
    match &q.kind {
        Some(kind) => sql.push(" AND r.kind = {}", kind.clone()),
        None => sql.text.push_str(&format!(
            " AND r.kind NOT IN ('{}', '{}')",
            RecordKind::SegmentStart.as_str(),
            RecordKind::Checkpoint.as_str()
        )),
    }
    if !q.pending {
        sql.text.push_str(" AND r.seq <= h.last_checkpoint_seq");
    }
    if let Some(since) = q.since_ns {
        sql.push(" AND r.time_ns >= {}", int(since));
    }
    if let Some(until) = q.until_ns {
        sql.push(" AND r.time_ns < {}", int(until));
    }
    if let Some(pid) = q.pid {
        sql.push(" AND r.pid = {}", i64::from(pid));
    }
    match &q.path {
        Some(PathFilter::Exact(path)) => sql.push(" AND r.path = {}", path.clone()),
        Some(PathFilter::Prefix(prefix)) if !prefix.is_empty() => {
            sql.push(" AND r.path >= {}", prefix.clone());
            if let Some(upper) = prefix_upper_bound(prefix) {
                sql.push(" AND r.path < {}", upper);
            }
        }
        Some(PathFilter::Prefix(_)) => sql.text.push_str(" AND r.path IS NOT NULL"),
        None => {}
    }
    if let Some(text) = &q.text {
        sql.push(" AND strpos(r.summary, {}) > 0", text.clone());
    }
    if let Some(address) = &q.local_address {
        sql.push(" AND r.local_addr = {}", address.clone());
    }
    if let Some(address) = &q.remote_address {
        sql.push(" AND r.remote_addr = {}", address.clone());
    }
    if let Some(port) = q.local_port {
        sql.push(" AND r.local_port = {}", i64::from(port));
    }
    if let Some(port) = q.remote_port {
        sql.push(" AND r.remote_port = {}", i64::from(port));
    }
    if let Some(uid) = q.loginuid {
        sql.push(" AND r.loginuid = {}", i64::from(uid));
    }
    sql.text.push_str(order);
    sql.push(" LIMIT {}", i64::from(q.limit));
    stored_records(client, &sql).await
}

pub(super) async fn alerts<C: GenericClient>(
    client: &C,
    q: &AlertQuery,
) -> Result<Vec<StoredAlert>, StoreError> {
    let mut sql = Sql::new(
        "SELECT id, host, kind, time_ns, seq, detail, count, last_time_ns FROM alerts WHERE TRUE",
    );
    if let Some(host) = &q.host {
        sql.push(" AND host = {}", host.clone());
    }
    if let Some(kind) = q.kind {
        sql.push(" AND kind = {}", kind.as_str().to_owned());
    }
    if let Some(since) = q.since_ns {
        sql.push(" AND last_time_ns >= {}", int(since));
    }
    if let Some(after) = q.after {
        sql.push(" AND id > {}", after);
    }
    sql.push(" ORDER BY id LIMIT {}", i64::from(q.limit));
    let rows = client.query(&sql.text, &sql.params()).await?;
    rows.iter()
        .map(|row| {
            let id: i64 = row.try_get(0)?;
            let kind: String = row.try_get(2)?;
            let kind = AlertKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("alert {id}: unknown kind {kind:?}")))?;
            let detail: String = row.try_get(5)?;
            let detail = serde_json::from_str(&detail)
                .map_err(|e| StoreError::Corrupt(format!("alert {id}: detail: {e}")))?;
            Ok(StoredAlert {
                id,
                host: row.try_get(1)?,
                kind,
                time_ns: uint(row.try_get(3)?),
                count: uint(row.try_get(6)?),
                last_time_ns: uint(row.try_get(7)?),
                seq: row.try_get::<_, Option<i64>>(4)?.map(uint),
                detail,
            })
        })
        .collect()
}
