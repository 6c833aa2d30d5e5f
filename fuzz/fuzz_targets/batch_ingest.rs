//! Fuzz target: a shipped batch body (zstd+bincode and JSON) through `Batch::decode` and the collector's
//! verification, against a host enrolled with the key the batch starts from (so the chain rules are
//! reached, not only the root-of-trust check) and against one enrolled with another key, and, when that
//! stores something, again as a replay.
#![no_main]

use std::collections::HashMap;

use auditloop_collector::ingest::{HostState, check};
use auditloop_journal::record::{Payload, decode_payload};
use auditloop_protocol::batch::{Batch, CONTENT_TYPE_BINARY, CONTENT_TYPE_JSON};

/// The key `batch` claims to start from: its first segment start's genesis key, or its anchor's key.
fn claimed_key(batch: &Batch) -> [u8; 32] {
    if let Some(anchor) = &batch.anchor {
        return anchor.public_key;
    }
    match batch.records().next() {
        Some(Ok(first)) => match decode_payload(first.payload) {
            Ok(Payload::SegmentStart(start)) => start.genesis_public_key.unwrap_or([0; 32]),
            _ => [0; 32],
        },
        _ => [0; 32],
    }
}

fn verify(batch: &Batch) {
    let _ = check(&HostState::enrolled([0xee; 32]), batch, |_| None);
    let Ok(verified) = check(&HostState::enrolled(claimed_key(batch)), batch, |_| None) else {
        return;
    };
    let stored: HashMap<u64, [u8; 32]> = verified.records.iter().map(|r| (r.seq, r.hash)).collect();
    let _ = check(&verified.state, batch, |seq| stored.get(&seq).copied());
    if let Some(rewound) = verified.state.rewound() {
        let _ = check(&rewound, batch, |seq| stored.get(&seq).copied());
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for content_type in [CONTENT_TYPE_BINARY, CONTENT_TYPE_JSON] {
        if let Ok(batch) = Batch::decode(content_type, data) {
            verify(&batch);
        }
    }
    // The same bytes as the frames of a batch starting at seq 1.
    let frames = Batch {
        first_seq: 1,
        last_seq: 1,
        anchor: None,
        frames: data.to_vec(),
    };
    let count = frames.records().count() as u64;
    verify(&Batch {
        last_seq: count.max(1),
        ..frames
    });
});
