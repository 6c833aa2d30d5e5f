//! Reading the SQLite store: host records and token digests, stored hashes, and the records, hosts and
//! alerts queries ask for. A record is verified when its seq is at most its host's `last_checkpoint_seq`.

use auditloop_journal::record::Hash;
use auditloop_protocol::api::{AlertKind, HostStatus};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use crate::store::commit::RecordKind;
use crate::store::error::StoreError;
use crate::store::host::{HostRecord, StoredHost};
use crate::store::query::{AlertQuery, EventQuery, PathFilter, StoredAlert, StoredRecord};
use crate::store::sqlite::conn::{int, uint};
use crate::store::sqlite::host_row;
use crate::store::sqlite::search::SCHEMA_NAME as SEARCH;

pub(super) fn host_record(conn: &Connection, host: &str) -> Result<Option<HostRecord>, StoreError> {
    let sql = format!("SELECT {} FROM hosts WHERE name = ?1", host_row::COLUMNS);
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([host], |row| host_row::read(row, 0))
        .optional()?)
}

pub(super) fn stored_hashes(
    conn: &Connection,
    host: &str,
    from: u64,
    to: u64,
) -> Result<Vec<(u64, Hash)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, hash FROM records WHERE host_id = (SELECT id FROM hosts WHERE name = ?1) \
         AND seq BETWEEN ?2 AND ?3 ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![host, int(from), int(to)], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
    })?;
    rows.map(|row| {
        let (seq, hash) = row?;
        let hash = Hash::try_from(hash.as_slice()).map_err(|_| {
            StoreError::Corrupt(format!("host {host} seq {seq}: hash is not 32 bytes"))
        })?;
        Ok((uint(seq), hash))
    })
    .collect()
}

/// The token digest of `host`.
pub(super) fn host_token(conn: &Connection, host: &str) -> Result<Option<[u8; 32]>, StoreError> {
    let digest: Option<Option<[u8; 32]>> = conn
        .prepare_cached("SELECT token_digest FROM hosts WHERE name = ?1")?
        .query_row([host], |row| row.get(0))
        .optional()?;
    Ok(digest.flatten())
}

/// The host whose token has `digest`.
pub(super) fn token_owner(
    conn: &Connection,
    digest: &[u8; 32],
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT name FROM hosts WHERE token_digest = ?1")?
        .query_row([&digest[..]], |row| row.get(0))
        .optional()?)
}

/// The counters that follow the record's columns in [`hosts`].
const HOST_COUNTERS: &str = "name, status, records, events, duplicates, batches, last_seen_ns, last_checkpoint_ns, silence_alerted";

pub(super) fn hosts(conn: &Connection, only: Option<&str>) -> Result<Vec<StoredHost>, StoreError> {
    let sql = format!(
        "SELECT {}, {HOST_COUNTERS} FROM hosts WHERE ?1 IS NULL OR name = ?1 ORDER BY name",
        host_row::COLUMNS
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([only], |row| {
        let at = |i: usize| host_row::COUNT + i;
        Ok(StoredHost {
            record: host_row::read(row, 0)?,
            name: row.get(at(0))?,
            status: status(row, at(1))?,
            records: uint(row.get(at(2))?),
            events: uint(row.get(at(3))?),
            duplicates: uint(row.get(at(4))?),
            batches: uint(row.get(at(5))?),
            last_seen_ns: uint(row.get(at(6))?),
            last_checkpoint_ns: row.get::<_, Option<i64>>(at(7))?.map(uint),
            silent: row.get(at(8))?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The host status in column `i` of `row`.
fn status(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<HostStatus> {
    let name: String = row.get(i)?;
    HostStatus::parse(&name).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown host status {name:?}").into(),
        )
    })
}

/// SQL text and arguments, built together.
#[derive(Default)]
pub(super) struct Sql {
    /// The text so far.
    pub(super) text: String,
    /// Its arguments, in order.
    pub(super) args: Vec<Value>,
}

impl Sql {
    /// Selects stored records `r` (with their host `h`) in the columns [`stored_record`] reads.
    pub(super) fn select_records() -> Sql {
        Sql {
            text: "SELECT r.id, h.name, r.seq, r.stored_ns, r.kind, r.payload, \
                   r.seq <= h.last_checkpoint_seq, CASE WHEN r.seq <= h.last_checkpoint_seq THEN \
                   (SELECT c.stored_ns FROM checkpoints c WHERE c.host_id = r.host_id AND c.seq >= r.seq \
                   ORDER BY c.seq LIMIT 1) END \
                   FROM records r JOIN hosts h ON h.id = r.host_id WHERE 1"
                .into(),
            args: Vec::new(),
        }
    }

    /// Appends `text` and its one argument.
    pub(super) fn push(&mut self, text: &str, arg: impl Into<Value>) {
        self.text.push_str(text);
        self.args.push(arg.into());
    }

    /// Restricts `r` to records whose `column` matches `condition` (with `args`): those in the search
    /// file's `table`, and those after its `upto` mark, which are not in it yet. The condition is checked
    /// on the record too. (An entry only ever names its own record: ids are never given twice, and the
    /// entries of a deleted record, which name no record until the indexer removes them, match nothing.)
    pub(super) fn push_indexed(
        &mut self,
        table: &str,
        column: &str,
        condition: &str,
        args: &[Value],
    ) {
        self.push_indexed_as(
            table,
            condition,
            &format!("{column} IS NOT NULL AND {condition}"),
            args,
        );
    }

    /// Like [`Sql::push_indexed`], with the condition on the search file's `table` (`indexed`) and on the
    /// records (`stored`, naming only columns `hosts` does not have) written apart; both take `args`.
    pub(super) fn push_indexed_as(
        &mut self,
        table: &str,
        indexed: &str,
        stored: &str,
        args: &[Value],
    ) {
        self.text.push_str(&format!(
            " AND r.id IN (SELECT id FROM {SEARCH}.{table} WHERE {indexed} UNION ALL \
             SELECT id FROM records WHERE id > (SELECT upto FROM {SEARCH}.search_state WHERE one = 1) \
             AND {stored}) AND {stored}"
        ));
        for _ in 0..3 {
            self.args.extend_from_slice(args);
        }
    }

    /// Runs the statement built, reading stored records.
    pub(super) fn stored_records(self, conn: &Connection) -> Result<Vec<StoredRecord>, StoreError> {
        let mut stmt = conn.prepare_cached(&self.text)?;
        let rows = stmt.query_map(params_from_iter(self.args), stored_record)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// The bytes of column `i`, whatever type the database gives it (a payload changed behind the
/// collector's back may come back as text; its bytes are then what verification judges, not an error that
/// hides which record it is).
pub(super) fn bytes(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Vec<u8>> {
    use rusqlite::types::ValueRef;
    Ok(match row.get_ref(i)? {
        ValueRef::Blob(b) | ValueRef::Text(b) => b.to_vec(),
        ValueRef::Null => Vec::new(),
        ValueRef::Integer(n) => n.to_string().into_bytes(),
        ValueRef::Real(f) => f.to_string().into_bytes(),
    })
}

/// A stored record in the columns [`Sql::select_records`] selects.
pub(super) fn stored_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRecord> {
    Ok(StoredRecord {
        id: row.get(0)?,
        host: row.get(1)?,
        seq: uint(row.get(2)?),
        stored_ns: uint(row.get(3)?),
        kind: row.get(4)?,
        payload: bytes(row, 5)?,
        verified: row.get(6)?,
        verified_ns: row.get::<_, Option<i64>>(7)?.map(uint),
    })
}

pub(super) fn records(conn: &Connection, q: &EventQuery) -> Result<Vec<StoredRecord>, StoreError> {
    let mut sql = Sql::select_records();
    let order = match &q.host {
        Some(host) => {
            let id: Option<i64> = conn
                .prepare_cached("SELECT id FROM hosts WHERE name = ?1")?
                .query_row([host], |row| row.get(0))
                .optional()?;
            let Some(id) = id else {
                return Ok(Vec::new());
            };
            sql.push(" AND r.host_id = ?", id);
            // Within one host, ingest order is sequence order: page on the (host_id, seq) index.
            if let Some(after) = q.after {
                let seq: Option<i64> = conn
                    .prepare_cached("SELECT seq FROM records WHERE id = ?1 AND host_id = ?2")?
                    .query_row([after, id], |row| row.get(0))
                    .optional()?;
                match seq {
                    Some(seq) => sql.push(" AND r.seq > ?", seq),
                    None => sql.push(" AND r.id > ?", after),
                }
            }
            " ORDER BY r.seq"
        }
        None => {
            if let Some(after) = q.after {
                sql.push(" AND r.id > ?", after);
            }
            " ORDER BY r.id"
        }
    };
    match &q.kind {
        Some(kind) => sql.push(" AND r.kind = ?", kind.clone()),
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
        sql.push(" AND r.time_ns >= ?", int(since));
    }
    if let Some(until) = q.until_ns {
        sql.push(" AND r.time_ns < ?", int(until));
    }
    if let Some(pid) = q.pid {
        let pid = Value::Integer(i64::from(pid));
        sql.push_indexed("pid_index", "pid", "pid = ?", &[pid]);
    }
    match &q.path {
        Some(PathFilter::Exact(path)) => {
            let path = Value::Text(path.clone());
            sql.push_indexed("path_index", "path", "path = ?", &[path]);
        }
        Some(PathFilter::Prefix(prefix)) if !prefix.is_empty() => {
            let from = Value::Text(prefix.clone());
            match prefix_upper_bound(prefix) {
                Some(upper) => sql.push_indexed(
                    "path_index",
                    "path",
                    "path >= ? AND path < ?",
                    &[from, Value::Text(upper)],
                ),
                None => sql.push_indexed("path_index", "path", "path >= ?", &[from]),
            }
        }
        Some(PathFilter::Prefix(_)) => sql.text.push_str(" AND r.path IS NOT NULL"),
        None => {}
    }
    if let Some(text) = &q.text {
        sql.push(" AND instr(r.summary, ?) > 0", text.clone());
    }
    for (column, address) in [
        ("local_addr", &q.local_address),
        ("remote_addr", &q.remote_address),
    ] {
        if let Some(address) = address {
            let arg = [Value::Text(address.clone())];
            sql.push_indexed_as("addr_index", "addr = ?", &format!("{column} = ?"), &arg);
        }
    }
    if let Some(port) = q.local_port {
        sql.push(" AND r.local_port = ?", i64::from(port));
    }
    if let Some(port) = q.remote_port {
        sql.push(" AND r.remote_port = ?", i64::from(port));
    }
    if let Some(uid) = q.loginuid {
        sql.push(" AND r.loginuid = ?", i64::from(uid));
    }
    sql.text.push_str(order);
    sql.push(" LIMIT ?", i64::from(q.limit));
    sql.stored_records(conn)
}

/// The smallest string greater than every string starting with `prefix` (UTF-8 sorts by code point, as
/// SQLite's BINARY collation compares); `None` when there is none.
pub(in crate::store) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

pub(super) fn alerts(conn: &Connection, q: &AlertQuery) -> Result<Vec<StoredAlert>, StoreError> {
    let mut sql = Sql {
        text:
            "SELECT id, host, kind, time_ns, seq, detail, count, last_time_ns FROM alerts WHERE 1"
                .into(),
        args: Vec::new(),
    };
    if let Some(host) = &q.host {
        sql.push(" AND host = ?", host.clone());
    }
    if let Some(kind) = q.kind {
        sql.push(" AND kind = ?", kind.as_str().to_owned());
    }
    if let Some(since) = q.since_ns {
        sql.push(" AND last_time_ns >= ?", int(since));
    }
    if let Some(after) = q.after {
        sql.push(" AND id > ?", after);
    }
    sql.push(" ORDER BY id LIMIT ?", i64::from(q.limit));
    let mut stmt = conn.prepare_cached(&sql.text)?;
    let rows = stmt.query_map(params_from_iter(sql.args), |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, Option<i64>>(4)?,
            row.get::<_, String>(5)?,
            row.get::<_, i64>(6)?,
            row.get::<_, i64>(7)?,
        ))
    })?;
    rows.map(|row| {
        let (id, host, kind, time_ns, seq, detail, count, last_time_ns) = row?;
        let kind = AlertKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("alert {id}: unknown kind {kind:?}")))?;
        let detail = serde_json::from_str(&detail)
            .map_err(|e| StoreError::Corrupt(format!("alert {id}: detail: {e}")))?;
        Ok(StoredAlert {
            id,
            host,
            kind,
            time_ns: uint(time_ns),
            count: uint(count),
            last_time_ns: uint(last_time_ns),
            seq: seq.map(uint),
            detail,
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::prefix_upper_bound;

    #[test]
    fn prefix_bounds() {
        assert_eq!(prefix_upper_bound("/etc/").as_deref(), Some("/etc0"));
        assert_eq!(
            prefix_upper_bound("a\u{D7FF}").as_deref(),
            Some("a\u{E000}")
        );
        assert_eq!(prefix_upper_bound("b\u{10FFFF}").as_deref(), Some("c"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
    }
}
