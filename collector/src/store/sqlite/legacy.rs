//! Reading the host state that schema version 2 kept as JSON, to move it into columns.
//!
//! Version 2 serialized the ingest verifier's own state type (with the journal's chain state inside). Its
//! format is pinned here, field by field as that code wrote it, so the store reads old files without
//! depending on those types.

use rusqlite::types::Value;
use rusqlite::{Transaction, params_from_iter};
use serde::Deserialize;

use crate::store::error::StoreError;
use crate::store::host::HostRecord;
use crate::store::sqlite::host_row;

/// A host's state as version 2 kept it in `hosts.state`.
#[derive(Debug, Deserialize)]
struct LegacyHostState {
    chain: Option<LegacyChain>,
    first_seq: u64,
    anchor_key: Option<[u8; 32]>,
    generation: Option<u64>,
    clean_stop: bool,
    #[serde(default)]
    spool_overflowing: bool,
}

/// The chain verifier's state inside it.
#[derive(Debug, Deserialize)]
struct LegacyChain {
    next_seq: u64,
    last_hash: [u8; 32],
    epoch: u64,
    key: Option<[u8; 32]>,
    genesis: Option<[u8; 32]>,
    next_segment: Option<u64>,
    generation: u64,
    last_checkpoint_seq: u64,
}

/// The record of `host` kept as `json` by version 2.
pub(super) fn parse(host: &str, json: &str) -> Result<HostRecord, StoreError> {
    let corrupt = |why: String| StoreError::Corrupt(format!("state of host {host}: {why}"));
    let state: LegacyHostState = serde_json::from_str(json).map_err(|e| corrupt(e.to_string()))?;
    let chain = state
        .chain
        .ok_or_else(|| corrupt("no chain state stored".into()))?;
    Ok(HostRecord {
        next_seq: chain.next_seq,
        last_hash: chain.last_hash,
        epoch: chain.epoch,
        epoch_key: chain.key,
        genesis_key: chain.genesis,
        next_segment: chain.next_segment,
        segment_generation: chain.generation,
        last_checkpoint_seq: chain.last_checkpoint_seq,
        first_seq: state.first_seq,
        anchor_key: state.anchor_key,
        generation: state.generation,
        clean_stop: state.clean_stop,
        spool_overflowing: state.spool_overflowing,
        enrolled_key: chain.genesis.or(state.anchor_key),
        tofu: state.anchor_key.is_some(),
        at_checkpoint: None,
    })
}

/// The columns both tables share besides the record.
const KEPT: &str = "id, name, status, records, events, duplicates, batches, created_ns, last_seen_ns, \
     last_checkpoint_ns, silence_alerted";
/// How many columns [`KEPT`] names.
const KEPT_COUNT: usize = 11;

/// Copies every host of the version 2 table `from` into the version 4 table `to`, its state as columns.
pub(super) fn copy_hosts(tx: &Transaction<'_>, from: &str, to: &str) -> Result<(), StoreError> {
    let placeholders = vec!["?"; KEPT_COUNT + host_row::COUNT].join(", ");
    let mut insert = tx.prepare(&format!(
        "INSERT INTO {to} ({KEPT}, {}) VALUES ({placeholders})",
        host_row::COLUMNS
    ))?;
    let mut select = tx.prepare(&format!("SELECT {KEPT}, state FROM {from} ORDER BY id"))?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        let mut values = (0..KEPT_COUNT)
            .map(|i| row.get::<_, Value>(i))
            .collect::<Result<Vec<_>, _>>()?;
        let name: String = row.get(1)?;
        let state: String = row.get(KEPT_COUNT)?;
        values.extend(host_row::values(&parse(&name, &state)?));
        insert.execute(params_from_iter(values))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn a_host_without_chain_state_is_corrupt() {
        let json = r#"{"chain":null,"first_seq":1,"anchor_key":null,"generation":null,"clean_stop":false}"#;
        let err = parse("h", json).unwrap_err().to_string();
        assert!(err.contains("host h") && err.contains("no chain"), "{err}");
        assert!(parse("h", "{").is_err());
    }
}
