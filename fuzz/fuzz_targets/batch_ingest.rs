//! Fuzz target: a shipped batch body (zstd+bincode and JSON) through `Batch::decode` and the collector's
//! verification, against a fresh host and, when that stores something, again as a replay.
#![no_main]

use std::collections::HashMap;

use auditloop_collector::ingest::{HostState, check};
use auditloop_protocol::batch::{Batch, CONTENT_TYPE_BINARY, CONTENT_TYPE_JSON};

fn verify(batch: &Batch) {
    let Ok(verified) = check(&HostState::default(), batch, |_| None) else {
        return;
    };
    let stored: HashMap<u64, [u8; 32]> = verified.records.iter().map(|r| (r.seq, r.hash)).collect();
    let _ = check(&verified.state, batch, |seq| stored.get(&seq).copied());
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
