//! Decoding an event record's payload: the one decoder both the parallel pass (`prepare.rs`) and the chain
//! loop (`verify.rs`) use.

use auditloop_journal::Damage;
use auditloop_journal::record::{Payload, decode_payload};
use auditloop_model::Event;

use crate::ingest::reject::Reject;

/// Decodes an event payload of record `seq`; a payload that is not an event is damage.
pub(crate) fn decode_event(payload: &[u8], seq: u64) -> Result<Event, Reject> {
    let bad = |detail: String| Reject::Damaged {
        seq,
        damage: Damage::BadPayload,
        detail,
    };
    match decode_payload(payload) {
        Ok(Payload::Event(event)) => Ok(event),
        Ok(Payload::SegmentStart(_) | Payload::Checkpoint(_)) => {
            Err(bad("event tag on a non-event payload".into()))
        }
        Err(why) => Err(bad(format!("event does not decode: {why}"))),
    }
}
