//! Fuzz target: the journal record decoder (framing, hash check, bincode payload) on arbitrary bytes.
#![no_main]

use auditloop_journal::record::{decode_payload, read_frame};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(rec) = read_frame(rest) {
        let _ = rec.hash_ok();
        let _ = decode_payload(rec.payload);
        rest = &rest[rec.len..];
    }
    let _ = decode_payload(data);
});
