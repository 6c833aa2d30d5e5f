//! Reading the SQLite store for the lineage walk: one record by host and seq, the records of one process
//! (`proc_index`), and the connects or accepts of a connection's client end (`flow_index`).
//!
//! Like every indexed query, each looks up the search file up to its `upto` mark, scans the records after
//! it, and checks its conditions on the record itself (`read.rs`, [`Sql::push_indexed_as`]). Only connects
//! and accepts whose four ends are all known are in `flow_index`, and only those are found.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};

use crate::store::error::StoreError;
use crate::store::lineage::{FlowQuery, FlowSide, LineageRole, ProcessQuery};
use crate::store::query::StoredRecord;
use crate::store::sqlite::conn::int;
use crate::store::sqlite::read::Sql;

/// The stored record `seq` of `host`.
pub(super) fn record(
    conn: &Connection,
    host: &str,
    seq: u64,
) -> Result<Option<StoredRecord>, StoreError> {
    let mut sql = Sql::select_records();
    sql.push(" AND h.name = ?", host.to_owned());
    sql.push(" AND r.seq = ?", int(seq));
    Ok(sql.stored_records(conn)?.pop())
}

/// The records of one process playing one role, newest first.
pub(super) fn process_records(
    conn: &Connection,
    q: &ProcessQuery,
) -> Result<Vec<StoredRecord>, StoreError> {
    let host_id: Option<i64> = conn
        .prepare_cached("SELECT id FROM hosts WHERE name = ?1")?
        .query_row([&q.host], |row| row.get(0))
        .optional()?;
    match host_id {
        Some(host_id) => process_sql(host_id, q).stored_records(conn),
        None => Ok(Vec::new()),
    }
}

/// The query of [`process_records`] for the host whose row id is `host_id`: one start time is an equality,
/// so the event time range is a range of `proc_index` too. The host and time are compared as `+host_id`
/// and `+time_ns` on the records, so that SQLite looks the few ids up (and scans only the records after the
/// index's mark) rather than walking the records of the host or of the time range by their indexes.
pub(super) fn process_sql(host_id: i64, q: &ProcessQuery) -> Sql {
    let mut sql = Sql::select_records();
    let mut args = vec![
        Value::Integer(host_id),
        Value::Integer(i64::from(q.pid)),
        Value::Text(q.role.as_str().to_owned()),
        Value::Integer(int(q.start_from_ns)),
    ];
    let start = if q.start_from_ns == q.start_to_ns {
        "= ?"
    } else {
        args.push(Value::Integer(int(q.start_to_ns)));
        "BETWEEN ? AND ?"
    };
    args.push(Value::Integer(q.since_ns.map_or(i64::MIN, int)));
    args.push(Value::Integer(q.through_ns.map_or(i64::MAX, int)));
    sql.push_indexed_as(
        "proc_index",
        &format!(
            "host_id = ? AND pid = ? AND role = ? AND start_ns {start} AND time_ns BETWEEN ? AND ?"
        ),
        &format!(
            "+host_id = ? AND role_pid = ? AND role = ? AND role_start_ns {start} \
             AND +time_ns BETWEEN ? AND ?"
        ),
        &args,
    );
    if !q.pending {
        sql.text.push_str(" AND r.seq <= h.last_checkpoint_seq");
    }
    sql.push(
        " ORDER BY r.time_ns DESC, r.seq DESC LIMIT ?",
        i64::from(q.limit),
    );
    sql
}

/// The connects or accepts of a client end, oldest first.
pub(super) fn flow_records(
    conn: &Connection,
    q: &FlowQuery,
) -> Result<Vec<StoredRecord>, StoreError> {
    flow_sql(q).stored_records(conn)
}

/// The query of [`flow_records`] (its time compared as `+time_ns` on the records, as in [`process_sql`]).
pub(super) fn flow_sql(q: &FlowQuery) -> Sql {
    let side = LineageRole::Flow(q.side).as_str();
    let (client, server_columns) = match q.side {
        FlowSide::Connect => (("local_addr", "local_port"), ("remote_addr", "remote_port")),
        FlowSide::Accept => (("remote_addr", "remote_port"), ("local_addr", "local_port")),
    };
    let mut sql = Sql::select_records();
    let args = [
        Value::Text(q.client.address.clone()),
        Value::Integer(i64::from(q.client.port)),
        Value::Integer(int(q.since_ns)),
        Value::Integer(int(q.through_ns)),
    ];
    sql.push_indexed_as(
        "flow_index",
        "addr = ? AND port = ? AND time_ns BETWEEN ? AND ?",
        &format!(
            "role = '{side}' AND {} = ? AND {} = ? AND +time_ns BETWEEN ? AND ? \
             AND {} IS NOT NULL AND {} IS NOT NULL",
            client.0, client.1, server_columns.0, server_columns.1
        ),
        &args,
    );
    if let Some(host) = &q.host {
        sql.push(" AND h.name = ?", host.clone());
    }
    if let Some(server) = &q.server {
        let (address, port) = server_columns;
        sql.push(&format!(" AND r.{address} = ?"), server.address.clone());
        sql.push(&format!(" AND r.{port} = ?"), i64::from(server.port));
    }
    if !q.pending {
        sql.text.push_str(" AND r.seq <= h.last_checkpoint_seq");
    }
    sql.push(" ORDER BY r.time_ns, r.id LIMIT ?", i64::from(q.limit));
    sql
}
