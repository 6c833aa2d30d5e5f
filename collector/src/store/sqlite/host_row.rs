//! A [`HostRecord`] as columns of the `hosts` table: one column per field, in the order of [`COLUMNS`]
//! (the checkpoint point's fields prefixed `cp_`, all NULL when there is none).

use rusqlite::Row;
use rusqlite::types::Value;

use crate::store::host::{CheckpointPoint, HostRecord};
use crate::store::sqlite::conn::{int, uint};

pub(super) use crate::store::host_columns::{COLUMNS, COUNT, ENROLLED_KEY};

/// `col = ?n` for every column of [`COLUMNS`], numbered from `first`: the `SET` list of an update.
pub(super) fn assignments(first: usize) -> String {
    crate::store::host_columns::assignments(first, '?')
}

fn key(k: Option<[u8; 32]>) -> Value {
    k.map_or(Value::Null, |k| Value::Blob(k.to_vec()))
}

fn opt(v: Option<u64>) -> Value {
    v.map_or(Value::Null, |v| Value::Integer(int(v)))
}

fn flag(b: bool) -> Value {
    Value::Integer(i64::from(b))
}

/// The record's values, in the order of [`COLUMNS`].
pub(super) fn values(r: &HostRecord) -> [Value; COUNT] {
    let cp = r.at_checkpoint.as_ref();
    let point = |f: &dyn Fn(&CheckpointPoint) -> Value| cp.map_or(Value::Null, f);
    [
        Value::Integer(int(r.next_seq)),
        Value::Blob(r.last_hash.to_vec()),
        Value::Integer(int(r.epoch)),
        key(r.epoch_key),
        key(r.genesis_key),
        opt(r.next_segment),
        Value::Integer(int(r.segment_generation)),
        Value::Integer(int(r.last_checkpoint_seq)),
        Value::Integer(int(r.first_seq)),
        key(r.anchor_key),
        opt(r.generation),
        flag(r.clean_stop),
        flag(r.spool_overflowing),
        key(r.enrolled_key),
        flag(r.tofu),
        point(&|c| Value::Blob(c.last_hash.to_vec())),
        point(&|c| Value::Integer(int(c.epoch))),
        point(&|c| key(c.epoch_key)),
        point(&|c| opt(c.next_segment)),
        point(&|c| Value::Integer(int(c.segment_generation))),
        point(&|c| opt(c.generation)),
        point(&|c| flag(c.clean_stop)),
        point(&|c| flag(c.spool_overflowing)),
    ]
}

/// Reads a record from `row`, whose columns `first..first + COUNT` are [`COLUMNS`].
pub(super) fn read(row: &Row<'_>, first: usize) -> rusqlite::Result<HostRecord> {
    let at = |i: usize| first + i;
    let cp_hash: Option<[u8; 32]> = row.get(at(15))?;
    let at_checkpoint = match cp_hash {
        None => None,
        Some(last_hash) => Some(CheckpointPoint {
            last_hash,
            epoch: uint(row.get(at(16))?),
            epoch_key: row.get(at(17))?,
            next_segment: row.get::<_, Option<i64>>(at(18))?.map(uint),
            segment_generation: uint(row.get(at(19))?),
            generation: row.get::<_, Option<i64>>(at(20))?.map(uint),
            clean_stop: row.get(at(21))?,
            spool_overflowing: row.get(at(22))?,
        }),
    };
    Ok(HostRecord {
        next_seq: uint(row.get(at(0))?),
        last_hash: row.get(at(1))?,
        epoch: uint(row.get(at(2))?),
        epoch_key: row.get(at(3))?,
        genesis_key: row.get(at(4))?,
        next_segment: row.get::<_, Option<i64>>(at(5))?.map(uint),
        segment_generation: uint(row.get(at(6))?),
        last_checkpoint_seq: uint(row.get(at(7))?),
        first_seq: uint(row.get(at(8))?),
        anchor_key: row.get(at(9))?,
        generation: row.get::<_, Option<i64>>(at(10))?.map(uint),
        clean_stop: row.get(at(11))?,
        spool_overflowing: row.get(at(12))?,
        enrolled_key: row.get(at(13))?,
        tofu: row.get(at(14))?,
        at_checkpoint,
    })
}
