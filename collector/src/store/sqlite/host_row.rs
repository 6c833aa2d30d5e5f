//! A [`HostRecord`] as columns of the `hosts` table: one column per field, in the order of [`COLUMNS`].

use rusqlite::Row;
use rusqlite::types::Value;

use crate::store::host::HostRecord;
use crate::store::sqlite::conn::{int, uint};

/// The host record's columns, in the order [`values`] gives and [`read`] expects them.
pub(super) const COLUMNS: &str = "next_seq, last_hash, epoch, epoch_key, genesis_key, next_segment, \
     segment_generation, last_checkpoint_seq, first_seq, anchor_key, generation, clean_stop, \
     spool_overflowing, enrolled_key, tofu";

/// How many columns [`COLUMNS`] names.
pub(super) const COUNT: usize = 15;

/// The position of `enrolled_key` in [`COLUMNS`].
pub(super) const ENROLLED_KEY: usize = 13;

/// `col = ?n` for every column of [`COLUMNS`], numbered from `first`: the `SET` list of an update.
pub(super) fn assignments(first: usize) -> String {
    COLUMNS
        .split(',')
        .enumerate()
        .map(|(i, column)| format!("{} = ?{}", column.trim(), first + i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The record's values, in the order of [`COLUMNS`].
pub(super) fn values(r: &HostRecord) -> [Value; COUNT] {
    let key = |k: Option<[u8; 32]>| k.map_or(Value::Null, |k| Value::Blob(k.to_vec()));
    let opt = |v: Option<u64>| v.map_or(Value::Null, |v| Value::Integer(int(v)));
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
        Value::Integer(i64::from(r.clean_stop)),
        Value::Integer(i64::from(r.spool_overflowing)),
        key(r.enrolled_key),
        Value::Integer(i64::from(r.tofu)),
    ]
}

/// Reads a record from `row`, whose columns `first..first + COUNT` are [`COLUMNS`].
pub(super) fn read(row: &Row<'_>, first: usize) -> rusqlite::Result<HostRecord> {
    let at = |i: usize| first + i;
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
    })
}
