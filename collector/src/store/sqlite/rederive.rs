//! Version 5's backfill: the searchable columns of every stored event derived again from its payload
//! (`store::columns`, the derivation ingest uses), so that records stored before the login, network-end and
//! lineage columns existed are found and joined like new ones.
//!
//! It runs inside the migration's transaction, in chunks of [`CHUNK`] rows by id. A payload that does not
//! decode as an event (none should: every stored record was decoded when it was verified) keeps the columns
//! it had. Cost: one decode and one row update per event, a few microseconds each.

use std::time::Instant;

use auditloop_journal::record::{Payload, decode_payload};
use rusqlite::Transaction;

use crate::store::columns;
use crate::store::commit::RecordKind;
use crate::store::error::StoreError;
use crate::store::sqlite::record_row;

/// Rows read per step.
const CHUNK: i64 = 4096;

/// Derives the searchable columns of every stored event again; returns how many rows it updated.
pub(super) fn all(tx: &Transaction<'_>) -> Result<u64, StoreError> {
    let started = Instant::now();
    let mut select = tx.prepare(&format!(
        "SELECT id, payload FROM records WHERE id > ?1 AND kind NOT IN ('{}', '{}') ORDER BY id LIMIT ?2",
        RecordKind::SegmentStart.as_str(),
        RecordKind::Checkpoint.as_str()
    ))?;
    let placeholders: Vec<String> = (1..=record_row::COUNT).map(|i| format!("?{i}")).collect();
    let mut update = tx.prepare(&format!(
        "UPDATE records SET ({}) = ({}) WHERE id = ?{}",
        record_row::SEARCH_COLUMNS,
        placeholders.join(", "),
        record_row::COUNT + 1
    ))?;
    let (mut after, mut updated, mut undecodable) = (0i64, 0u64, 0u64);
    loop {
        let rows = select
            .query_map([after, CHUNK], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let Some(&(last, _)) = rows.last() else {
            break;
        };
        for (id, payload) in &rows {
            let Ok(Payload::Event(event)) = decode_payload(payload) else {
                undecodable += 1;
                continue;
            };
            record_row::bind(&mut update, 1, &columns::of_event(&event))?;
            update.raw_bind_parameter(record_row::COUNT + 1, *id)?;
            update.raw_execute()?;
            updated += 1;
        }
        after = last;
    }
    if updated > 0 || undecodable > 0 {
        tracing::info!(
            updated,
            undecodable,
            elapsed_ms = started.elapsed().as_millis(),
            "schema 5: searchable columns of stored events derived again"
        );
    }
    Ok(updated)
}
