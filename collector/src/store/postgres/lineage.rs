//! Reading the PostgreSQL store for the lineage walk: one record by host and seq, the records of one
//! process (index `records_process`), and the connects or accepts of a connection's client end (indexes
//! `records_connects` and `records_accepts`). Only connects and accepts whose four ends are all known are
//! found, as in the SQLite store.

use deadpool_postgres::GenericClient;

use crate::store::error::StoreError;
use crate::store::lineage::{FlowQuery, FlowSide, LineageRole, ProcessQuery};
use crate::store::postgres::conn::int;
use crate::store::postgres::read::{host_id, select_records, stored_records};
use crate::store::query::StoredRecord;

/// The stored record `seq` of `host`.
pub(super) async fn record<C: GenericClient>(
    client: &C,
    host: &str,
    seq: u64,
) -> Result<Option<StoredRecord>, StoreError> {
    let Some(id) = host_id(client, host).await? else {
        return Ok(None);
    };
    let mut sql = select_records();
    sql.push(" AND r.host_id = {}", id);
    sql.push(" AND r.seq = {}", int(seq));
    Ok(stored_records(client, &sql).await?.pop())
}

/// The records of one process playing one role, newest first.
pub(super) async fn process_records<C: GenericClient>(
    client: &C,
    q: &ProcessQuery,
) -> Result<Vec<StoredRecord>, StoreError> {
    let Some(id) = host_id(client, &q.host).await? else {
        return Ok(Vec::new());
    };
    let mut sql = select_records();
    sql.push(" AND r.host_id = {}", id);
    sql.push(" AND r.role_pid = {}", i64::from(q.pid));
    sql.push(" AND r.role = {}", q.role.as_str().to_owned());
    if q.start_from_ns == q.start_to_ns {
        sql.push(" AND r.role_start_ns = {}", int(q.start_from_ns));
    } else {
        sql.push(" AND r.role_start_ns >= {}", int(q.start_from_ns));
        sql.push(" AND r.role_start_ns <= {}", int(q.start_to_ns));
    }
    sql.push(" AND r.time_ns >= {}", q.since_ns.map_or(i64::MIN, int));
    sql.push(" AND r.time_ns <= {}", q.through_ns.map_or(i64::MAX, int));
    if !q.pending {
        sql.text.push_str(" AND r.seq <= h.last_checkpoint_seq");
    }
    sql.push(
        " ORDER BY r.time_ns DESC, r.seq DESC LIMIT {}",
        i64::from(q.limit),
    );
    stored_records(client, &sql).await
}

/// The connects or accepts of a client end, oldest first.
pub(super) async fn flow_records<C: GenericClient>(
    client: &C,
    q: &FlowQuery,
) -> Result<Vec<StoredRecord>, StoreError> {
    let side = LineageRole::Flow(q.side).as_str();
    let (client_end, server_end) = match q.side {
        FlowSide::Connect => (("local_addr", "local_port"), ("remote_addr", "remote_port")),
        FlowSide::Accept => (("remote_addr", "remote_port"), ("local_addr", "local_port")),
    };
    let mut sql = select_records();
    sql.text.push_str(&format!(" AND r.role = '{side}'"));
    sql.push(
        &format!(" AND r.{} = {{}}", client_end.0),
        q.client.address.clone(),
    );
    sql.push(
        &format!(" AND r.{} = {{}}", client_end.1),
        i64::from(q.client.port),
    );
    sql.push(" AND r.time_ns >= {}", int(q.since_ns));
    sql.push(" AND r.time_ns <= {}", int(q.through_ns));
    sql.text.push_str(&format!(
        " AND r.{} IS NOT NULL AND r.{} IS NOT NULL AND r.{} IS NOT NULL AND r.{} IS NOT NULL",
        client_end.0, client_end.1, server_end.0, server_end.1
    ));
    if let Some(host) = &q.host {
        sql.push(" AND h.name = {}", host.clone());
    }
    if let Some(server) = &q.server {
        sql.push(
            &format!(" AND r.{} = {{}}", server_end.0),
            server.address.clone(),
        );
        sql.push(
            &format!(" AND r.{} = {{}}", server_end.1),
            i64::from(server.port),
        );
    }
    if !q.pending {
        sql.text.push_str(" AND r.seq <= h.last_checkpoint_seq");
    }
    sql.push(" ORDER BY r.time_ns, r.id LIMIT {}", i64::from(q.limit));
    stored_records(client, &sql).await
}
