//! A [`HostRecord`] as columns of the `hosts` table, one per field, in the order of [`COLUMNS`] (the
//! checkpoint point's fields prefixed `cp_`, all NULL when there is none). The same columns as the SQLite
//! store's, with `BIGINT`, `BYTEA` and `BOOLEAN` types.

use tokio_postgres::Row;

use crate::store::error::StoreError;
use crate::store::host::{CheckpointPoint, HostRecord};
use crate::store::postgres::conn::{Arg, int, uint};

pub(super) use crate::store::host_columns::{COLUMNS, COUNT, ENROLLED_KEY};

/// `col = $n` for every column of [`COLUMNS`], numbered from `first`: the `SET` list of an update.
pub(super) fn assignments(first: usize) -> String {
    crate::store::host_columns::assignments(first, '$')
}

fn key(k: Option<[u8; 32]>) -> Arg {
    Box::new(k.map(|k| k.to_vec()))
}

fn opt(v: Option<u64>) -> Arg {
    Box::new(v.map(int))
}

/// The record's values, in the order of [`COLUMNS`].
pub(super) fn values(r: &HostRecord) -> Vec<Arg> {
    let cp = r.at_checkpoint.as_ref();
    vec![
        Box::new(int(r.next_seq)),
        Box::new(r.last_hash.to_vec()),
        Box::new(int(r.epoch)),
        key(r.epoch_key),
        key(r.genesis_key),
        opt(r.next_segment),
        Box::new(int(r.segment_generation)),
        Box::new(int(r.last_checkpoint_seq)),
        Box::new(int(r.first_seq)),
        key(r.anchor_key),
        opt(r.generation),
        Box::new(r.clean_stop),
        Box::new(r.spool_overflowing),
        key(r.enrolled_key),
        Box::new(r.tofu),
        Box::new(cp.map(|c| c.last_hash.to_vec())),
        Box::new(cp.map(|c| int(c.epoch))),
        key(cp.and_then(|c| c.epoch_key)),
        Box::new(cp.and_then(|c| c.next_segment.map(int))),
        Box::new(cp.map(|c| int(c.segment_generation))),
        Box::new(cp.and_then(|c| c.generation.map(int))),
        Box::new(cp.map(|c| c.clean_stop)),
        Box::new(cp.map(|c| c.spool_overflowing)),
    ]
}

/// A 32-byte column.
fn bytes32(row: &Row, i: usize) -> Result<Option<[u8; 32]>, StoreError> {
    let v: Option<Vec<u8>> = row.try_get(i)?;
    v.map(|v| {
        <[u8; 32]>::try_from(v.as_slice())
            .map_err(|_| StoreError::Corrupt(format!("hosts column {i}: not 32 bytes")))
    })
    .transpose()
}

/// Reads a record from `row`, whose columns `first..first + COUNT` are [`COLUMNS`].
pub(super) fn read(row: &Row, first: usize) -> Result<HostRecord, StoreError> {
    let at = |i: usize| first + i;
    let big = |i: usize| -> Result<u64, StoreError> { Ok(uint(row.try_get::<_, i64>(at(i))?)) };
    let big_opt = |i: usize| -> Result<Option<u64>, StoreError> {
        Ok(row.try_get::<_, Option<i64>>(at(i))?.map(uint))
    };
    let at_checkpoint = match bytes32(row, at(15))? {
        None => None,
        Some(last_hash) => Some(CheckpointPoint {
            last_hash,
            epoch: big_opt(16)?.unwrap_or(0),
            epoch_key: bytes32(row, at(17))?,
            next_segment: big_opt(18)?,
            segment_generation: big_opt(19)?.unwrap_or(0),
            generation: big_opt(20)?,
            clean_stop: row.try_get::<_, Option<bool>>(at(21))?.unwrap_or(false),
            spool_overflowing: row.try_get::<_, Option<bool>>(at(22))?.unwrap_or(false),
        }),
    };
    Ok(HostRecord {
        next_seq: big(0)?,
        last_hash: bytes32(row, at(1))?
            .ok_or_else(|| StoreError::Corrupt("hosts.last_hash is NULL".into()))?,
        epoch: big(2)?,
        epoch_key: bytes32(row, at(3))?,
        genesis_key: bytes32(row, at(4))?,
        next_segment: big_opt(5)?,
        segment_generation: big(6)?,
        last_checkpoint_seq: big(7)?,
        first_seq: big(8)?,
        anchor_key: bytes32(row, at(9))?,
        generation: big_opt(10)?,
        clean_stop: row.try_get(at(11))?,
        spool_overflowing: row.try_get(at(12))?,
        enrolled_key: bytes32(row, at(13))?,
        tofu: row.try_get(at(14))?,
        at_checkpoint,
    })
}
