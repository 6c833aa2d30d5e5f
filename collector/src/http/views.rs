//! The store's rows as the protocol's answers: [`HostSummary`], [`AlertView`] and [`RecordView`].
//!
//! Stored payloads are decoded again for every answer: what is served is exactly what was hashed.

use auditloop_journal::record::{Checkpoint, Payload, SegmentStart, decode_payload};
use auditloop_model::WallTime;
use auditloop_protocol::api::{AlertView, HostSummary, RecordView};
use serde::Serialize;

use crate::store::{StoredAlert, StoredHost, StoredRecord};

/// One stored host as served.
pub(crate) fn host_summary(host: StoredHost) -> HostSummary {
    let r = host.record;
    let seen = Some(host.last_seen_ns).filter(|ns| *ns != 0);
    let verified = Some(r.verified_through()).filter(|s| *s != 0);
    HostSummary {
        host: host.name,
        status: host.status,
        first_seq: r.first_seq,
        last_seq: r.last_seq(),
        next_seq: r.next_seq,
        last_hash: r.started().then(|| hex::encode(r.last_hash)),
        records: host.records,
        pending: r.pending(),
        last_verified_seq: verified,
        events: host.events,
        duplicates: host.duplicates,
        batches: host.batches,
        last_seen_ns: seen,
        last_seen: seen.map(|ns| WallTime(ns).to_string()),
        last_checkpoint_seq: verified,
        last_checkpoint_ns: host.last_checkpoint_ns,
        epoch: r.epoch,
        enrolled_key: r.enrolled_key.map(hex::encode),
        genesis_key: r.genesis_key.map(hex::encode),
        anchor_key: r.anchor_key.map(hex::encode),
        generation: r.generation,
        silent: host.silent,
    }
}

/// One stored alert as served.
pub(super) fn alert_view(alert: StoredAlert) -> AlertView {
    AlertView {
        id: alert.id,
        host: alert.host,
        kind: alert.kind,
        time_ns: alert.time_ns,
        time: WallTime(alert.time_ns).to_string(),
        count: alert.count,
        last_time_ns: alert.last_time_ns,
        last_time: WallTime(alert.last_time_ns).to_string(),
        seq: alert.seq,
        detail: alert.detail,
    }
}

/// A segment start as served under `record`.
#[derive(Serialize)]
struct SegmentStartView<'a> {
    index: u64,
    generation: u64,
    boot_id: &'a str,
    created_ns: u64,
    host: &'a str,
    genesis_public_key: Option<String>,
}

impl<'a> From<&'a SegmentStart> for SegmentStartView<'a> {
    fn from(s: &'a SegmentStart) -> Self {
        SegmentStartView {
            index: s.index,
            generation: s.generation,
            boot_id: &s.boot_id,
            created_ns: s.created_ns,
            host: &s.host,
            genesis_public_key: s.genesis_public_key.map(hex::encode),
        }
    }
}

/// A checkpoint as served under `record`.
#[derive(Serialize)]
struct CheckpointView {
    epoch: u64,
    head_seq: u64,
    head_hash: String,
    next_public_key: String,
    signature: String,
}

impl From<&Checkpoint> for CheckpointView {
    fn from(cp: &Checkpoint) -> Self {
        CheckpointView {
            epoch: cp.epoch,
            head_seq: cp.head_seq,
            head_hash: hex::encode(cp.head_hash),
            next_public_key: hex::encode(cp.next_public_key),
            signature: hex::encode(cp.signature),
        }
    }
}

/// One stored record as served: the event under `event`, other records under `record`, or why the payload
/// does not decode under `error`.
pub(crate) fn record_view(r: StoredRecord) -> RecordView {
    let mut view = RecordView {
        id: r.id,
        host: r.host,
        seq: r.seq,
        stored_ns: r.stored_ns,
        verified: r.verified,
        verified_ns: r.verified_ns,
        kind: r.kind,
        event: None,
        record: None,
        error: None,
    };
    match decode_payload(&r.payload) {
        Ok(Payload::Event(event)) => view.event = Some(event),
        Ok(Payload::SegmentStart(s)) => {
            view.record = serde_json::to_value(SegmentStartView::from(&s)).ok();
        }
        Ok(Payload::Checkpoint(cp)) => {
            view.record = serde_json::to_value(CheckpointView::from(&cp)).ok();
        }
        Err(why) => view.error = Some(why.to_string()),
    }
    view
}
