//! Verifying a shipped batch against a host's stored chain: the collector's only judge of what is stored.
//!
//! [`check`] is pure: it takes the host's [`HostState`], a decoded [`Batch`] and a lookup of the hashes of
//! records already stored, and returns either everything the batch adds ([`Verified`]) or why the whole
//! batch is refused ([`Reject`]). A host's first batch must start from its enrolled key (`trust.rs`); every
//! batch then follows exactly the chain rules of `auditloop verify` (through [`ChainState::accept`]), with
//! checkpoint signatures verified along the host's key chain. It compares replayed records with the stored
//! ones, and notices restarts and spool overflows. It stores nothing, so the caller commits a batch all or
//! nothing; it never panics, whatever the input (it is fuzzed). Its refusals never quote a stored hash.

use auditloop_journal::Damage;
use auditloop_journal::chain::Accepted;
use auditloop_journal::record::{FrameError, Hash, RawRecord};
use auditloop_model::EventBody;
use auditloop_protocol::batch::Batch;

use crate::alerts::{self, NewAlert};
use crate::ingest::decode::decode_event;
use crate::ingest::prepare::prepare;
use crate::ingest::reject::Reject;
use crate::ingest::state::{AtCheckpoint, HostState};
use crate::ingest::trust;
use crate::store::columns;
use crate::store::{Commit, NewCheckpoint, NewRecord, RecordKind, SearchColumns};

/// Largest sequence number accepted (stores keep sequence numbers as signed 64-bit integers).
pub const MAX_SEQ: u64 = i64::MAX as u64;

/// Everything a verified batch adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified<'b> {
    /// The host's state after the batch.
    pub state: HostState,
    /// Records of the batch that were already stored (same hash).
    pub duplicates: u64,
    /// New records, in order (their payloads borrow the batch).
    pub records: Vec<NewRecord<'b>>,
    /// Event records among them.
    pub events: u64,
    /// New checkpoints.
    pub checkpoints: Vec<NewCheckpoint>,
    /// Alerts the new records raise (`unexpected_restart`, `spool_overflow`).
    pub alerts: Vec<NewAlert>,
    /// Set when the batch replaces the host's pending records from this sequence number on (see
    /// `rewind.rs`).
    pub replace_from: Option<u64>,
}

impl Verified<'_> {
    /// The sequence number the host's next record must have.
    pub fn next_seq(&self) -> u64 {
        self.state.next_seq()
    }

    /// The highest sequence number covered by a verified checkpoint after the batch (0 if none).
    pub fn verified_through(&self) -> u64 {
        self.state.verified_through()
    }

    /// Records of the host stored but not covered by a verified checkpoint after the batch.
    pub fn pending(&self) -> u64 {
        self.state.to_record().pending()
    }

    /// The store commit of this batch for `host`, verified against a host whose next sequence number was
    /// `expected_next_seq`, at `now_ns`.
    pub fn commit<'a>(&'a self, host: &'a str, expected_next_seq: u64, now_ns: u64) -> Commit<'a> {
        Commit {
            host,
            expected_next_seq,
            host_record: self.state.to_record(),
            status: self.state.status(),
            records: &self.records,
            duplicates: self.duplicates,
            replace_from: self.replace_from,
            checkpoints: &self.checkpoints,
            alerts: &self.alerts,
            now_ns,
        }
    }
}

/// Verifies `batch` against `state`. `stored_hash(seq)` returns the hash of the stored record `seq` (it is
/// asked only for sequence numbers below `state.next_seq()`; `None` means nothing is stored there, such as
/// records before a trusted anchor, and such records count as duplicates).
pub fn check<'b>(
    state: &HostState,
    batch: &'b Batch,
    stored_hash: impl Fn(u64) -> Option<Hash>,
) -> Result<Verified<'b>, Reject> {
    let records = frames(batch)?;
    let (mut chain, mut next) = match (&state.chain, records.first()) {
        (Some(chain), _) => (chain.clone(), state.clone()),
        (None, Some(first)) => {
            let (chain, anchor_key) =
                trust::first_chain(state.enrolled_key.as_ref(), batch, first)?;
            let host = HostState {
                enrolled_key: state.enrolled_key,
                first_seq: batch.first_seq,
                anchor_key,
                ..HostState::default()
            };
            (chain, host)
        }
        (None, None) => return Err(Reject::Malformed("batch holds no records".into())),
    };
    if batch.first_seq > chain.next_seq {
        return Err(Reject::Gap {
            expected_seq: chain.next_seq,
            detail: format!(
                "batch starts at seq {}, expected seq {}",
                batch.first_seq, chain.next_seq
            ),
        });
    }
    let overlap = usize::try_from(chain.next_seq - batch.first_seq)
        .unwrap_or(usize::MAX)
        .min(records.len());
    let mut prepared = prepare(&records);
    let mut verified = Verified {
        state: HostState::default(),
        duplicates: 0,
        records: Vec::with_capacity(records.len() - overlap),
        events: 0,
        checkpoints: Vec::new(),
        alerts: Vec::new(),
        replace_from: None,
    };
    for ((rec, prep), seq) in records.iter().zip(&mut prepared).zip(batch.first_seq..) {
        if verified.duplicates < overlap as u64 {
            replayed(rec, prep.hash_ok, seq, &stored_hash)?;
            verified.duplicates += 1;
            continue;
        }
        let accepted = chain
            .accept(rec, prep.hash_ok)
            .map_err(|e| Reject::Damaged {
                seq: e.seq,
                damage: e.damage,
                detail: e.detail,
            })?;
        let (kind, columns, payload) = match accepted {
            Accepted::SegmentStart(start) => {
                let restart = alerts::unexpected_restart(
                    next.generation,
                    next.clean_stop,
                    start.generation,
                    rec.seq,
                );
                if let Some(alert) = restart {
                    verified.alerts.push(alert);
                }
                if next.generation != Some(start.generation) {
                    next.clean_stop = false;
                }
                next.generation = Some(start.generation);
                (
                    RecordKind::SegmentStart,
                    columns::of_segment_start(&start),
                    rec.payload,
                )
            }
            Accepted::Checkpoint(cp) => {
                verified.checkpoints.push(NewCheckpoint {
                    seq: rec.seq,
                    epoch: cp.epoch,
                    head_seq: cp.head_seq,
                });
                next.at_checkpoint = Some(AtCheckpoint {
                    chain: chain.clone(),
                    generation: next.generation,
                    clean_stop: next.clean_stop,
                    spool_overflowing: next.spool_overflowing,
                });
                (
                    RecordKind::Checkpoint,
                    SearchColumns::default(),
                    rec.payload,
                )
            }
            Accepted::Event(payload) => {
                let (event, columns) = match prep.event.take() {
                    Some(decoded) => decoded?,
                    None => {
                        let event = decode_event(payload, rec.seq)?;
                        let columns = columns::of_event(&event);
                        (event, columns)
                    }
                };
                if matches!(event.event, EventBody::AgentStop(_)) {
                    next.clean_stop = true;
                }
                let overflow = alerts::spool_overflow(&event, rec.seq);
                let overflowing = overflow.is_some();
                if let Some(alert) = overflow.filter(|_| !next.spool_overflowing) {
                    verified.alerts.push(alert);
                }
                next.spool_overflowing = overflowing;
                verified.events += 1;
                (RecordKind::Event(event.kind()), columns, payload)
            }
        };
        verified.records.push(NewRecord {
            seq: rec.seq,
            hash: rec.hash,
            kind,
            columns,
            payload,
        });
    }
    next.chain = Some(chain);
    verified.state = next;
    Ok(verified)
}

/// Parses every frame and checks them against the header.
fn frames(batch: &Batch) -> Result<Vec<RawRecord<'_>>, Reject> {
    if batch.last_seq > MAX_SEQ {
        return Err(Reject::Malformed(format!(
            "sequence numbers above {MAX_SEQ} are not supported"
        )));
    }
    let mut records = Vec::new();
    for (rec, seq) in batch.records().zip(batch.first_seq..) {
        match rec {
            Ok(rec) => records.push(rec),
            Err(e) => {
                let damage = match e {
                    FrameError::TooLong(_) => Damage::BadLength,
                    // `FrameError` is non-exhaustive: whatever else cut the frame short is a torn record.
                    _ => Damage::Torn,
                };
                return Err(Reject::Damaged {
                    seq,
                    damage,
                    detail: format!("frame {} does not parse: {e}", records.len()),
                });
            }
        }
    }
    let (first, last) = match (records.first(), records.last()) {
        (Some(first), Some(last)) => (first.seq, last.seq),
        _ => return Err(Reject::Malformed("batch holds no records".into())),
    };
    if records.len() as u64 != batch.len() || first != batch.first_seq || last != batch.last_seq {
        return Err(Reject::Malformed(format!(
            "header says seq {}..={} ({} records), frames hold {} records, seq {first}..={last}",
            batch.first_seq,
            batch.last_seq,
            batch.len(),
            records.len()
        )));
    }
    Ok(records)
}

/// Checks a record the host already shipped.
fn replayed(
    rec: &RawRecord<'_>,
    hash_ok: bool,
    seq: u64,
    stored_hash: &impl Fn(u64) -> Option<Hash>,
) -> Result<(), Reject> {
    if !hash_ok {
        return Err(Reject::Damaged {
            seq,
            damage: Damage::HashMismatch,
            detail: format!("replayed record claims seq {}", rec.seq),
        });
    }
    if rec.seq != seq {
        return Err(Reject::Damaged {
            seq,
            damage: Damage::SequenceGap,
            detail: format!("found seq {}", rec.seq),
        });
    }
    match stored_hash(seq) {
        // Never quote the stored hash: it would hand whoever sent the batch the link to forge the next
        // record from.
        Some(stored) if stored != rec.hash => Err(Reject::Fork {
            seq,
            detail: "replayed record differs from the stored record".into(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
