//! Verifying a host's stored chain again, from the store alone: "verify this host now".
//!
//! Ingest verified every record as it arrived; this walks what the store holds today, so it notices a
//! record changed or removed in the database since. In sequence order it recomputes each record's hash
//! from its stored payload and the previous record's hash and compares it with the stored hash, checks
//! that no sequence number is missing, that every checkpoint names the right head and is signed by its
//! epoch's key (the enrolled genesis key, then each checkpoint's next key), and that the last hash is the
//! host's. The first record that fails is named. It reads the store and changes nothing.

use auditloop_journal::Checkpoint;
use auditloop_journal::keys::verify_signature;
use auditloop_journal::record::{Hash, Payload, decode_payload, record_hash};

use crate::store::{EventQuery, Store, StoreError, StoredRecord};

/// Records read per query.
const PAGE: u32 = 5_000;

/// What verifying a host's stored chain found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reverified {
    /// Records checked.
    pub records: u64,
    /// Checkpoint signatures checked.
    pub signatures: u64,
    /// The first bad record and why, if any.
    pub first_bad: Option<BadRecord>,
}

/// The first record that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRecord {
    /// Its sequence number.
    pub seq: u64,
    /// Why.
    pub reason: String,
}

/// Every stored record of `host` (events, segment starts and checkpoints, verified or pending), by seq.
fn all_records(store: &dyn Store, host: &str) -> Result<Vec<StoredRecord>, StoreError> {
    let mut all = Vec::new();
    for kind in [None, Some("segment_start"), Some("checkpoint")] {
        let mut after = None;
        loop {
            let page = store.records(&EventQuery {
                host: Some(host.to_owned()),
                kind: kind.map(str::to_owned),
                pending: true,
                after,
                limit: PAGE,
                ..EventQuery::default()
            })?;
            after = page.last().map(|r| r.id);
            let done = page.len() < PAGE as usize;
            all.extend(page);
            if done {
                break;
            }
        }
    }
    all.sort_by_key(|r| r.seq);
    Ok(all)
}

/// Verifies the stored chain of `host`; `None` when the host is not stored.
pub fn reverify(store: &dyn Store, host: &str) -> Result<Option<Reverified>, StoreError> {
    let Some(record) = store.host_record(host)? else {
        return Ok(None);
    };
    let records = all_records(store, host)?;
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        return Ok(Some(Reverified {
            records: 0,
            signatures: 0,
            first_bad: None,
        }));
    };
    let hashes: std::collections::HashMap<u64, Hash> = store
        .stored_hashes(host, first.seq, last.seq)?
        .into_iter()
        .collect();
    let mut out = Reverified {
        records: 0,
        signatures: 0,
        first_bad: None,
    };
    let bad = |seq: u64, reason: String| Some(BadRecord { seq, reason });
    // The chain before the first stored record: the genesis (zero hash, enrolled key) or, for a host
    // stored from an anchor, the first record's own stored hash, trusted.
    let mut prev: Option<Hash> = (first.seq == 1).then_some([0; 32]);
    let mut key: Option<[u8; 32]> = if first.seq == 1 {
        record.enrolled_key
    } else {
        None
    };
    let mut computed: std::collections::HashMap<u64, Hash> = std::collections::HashMap::new();
    let mut expected = first.seq;
    for r in &records {
        out.records += 1;
        if r.seq != expected {
            out.first_bad = bad(
                expected,
                format!("record {expected} is missing from the store"),
            );
            return Ok(Some(out));
        }
        expected = r.seq + 1;
        let Some(stored) = hashes.get(&r.seq) else {
            out.first_bad = bad(r.seq, "its stored hash is missing".into());
            return Ok(Some(out));
        };
        let hash = match prev {
            Some(p) => record_hash(r.seq, &p, &r.payload),
            None => *stored,
        };
        if hash != *stored {
            out.first_bad = bad(
                r.seq,
                "its stored payload does not hash to its stored hash (the record was changed)"
                    .into(),
            );
            return Ok(Some(out));
        }
        computed.insert(r.seq, hash);
        match decode_payload(&r.payload) {
            Err(e) => {
                out.first_bad = bad(r.seq, format!("its payload does not decode: {e}"));
                return Ok(Some(out));
            }
            Ok(Payload::Checkpoint(cp)) => {
                if let Err(reason) = check_checkpoint(&cp, &computed, key.as_ref()) {
                    out.first_bad = bad(r.seq, reason);
                    return Ok(Some(out));
                }
                if key.is_some() {
                    out.signatures += 1;
                }
                key = Some(cp.next_public_key);
            }
            Ok(Payload::SegmentStart(s)) => {
                if let (Some(genesis), Some(enrolled)) = (s.genesis_public_key, record.enrolled_key)
                    && genesis != enrolled
                {
                    out.first_bad = bad(r.seq, "its genesis key is not the enrolled key".into());
                    return Ok(Some(out));
                }
            }
            Ok(Payload::Event(_)) => {}
        }
        prev = Some(hash);
    }
    if prev.is_some_and(|p| p != record.last_hash) {
        out.first_bad = bad(
            last.seq,
            "the last stored record is not the host's recorded chain head".into(),
        );
    }
    Ok(Some(out))
}

/// Checks a checkpoint against the hashes computed so far and its epoch's key (when known).
fn check_checkpoint(
    cp: &Checkpoint,
    computed: &std::collections::HashMap<u64, Hash>,
    key: Option<&[u8; 32]>,
) -> Result<(), String> {
    match computed.get(&cp.head_seq) {
        Some(h) if *h == cp.head_hash => {}
        Some(_) => {
            return Err(format!(
                "it signs a head hash that is not record {}'s",
                cp.head_seq
            ));
        }
        None => {}
    }
    if let Some(key) = key {
        let message =
            Checkpoint::signed_message(cp.epoch, cp.head_seq, &cp.head_hash, &cp.next_public_key);
        if !verify_signature(key, &message, &cp.signature) {
            return Err(format!(
                "its signature does not verify with epoch {}'s key",
                cp.epoch
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use auditloop_model::{Alert, EventBody};

    use super::reverify;
    use crate::http::testutil::TestApp;
    use crate::testutil::TestJournal;

    #[tokio::test]
    async fn a_stored_chain_verifies_and_a_changed_record_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("collector.db");
        let app = TestApp::over(&db);
        let mut journal = TestJournal::new("web-1");
        app.enroll("web-1", &mut journal).await;
        journal.execs(5);
        let trigger = journal.exec(7, "/tmp/x");
        journal.event(
            1,
            EventBody::Alert(Alert {
                rule: "r".into(),
                trigger_seq: trigger,
                ..Alert::default()
            }),
        );
        journal.checkpoint();
        journal.execs(3);
        journal.checkpoint();
        let last = journal.last_seq();
        let batch = journal.batch(1, last);
        let (status, body) = app.post("web-1", &batch).await;
        assert!(status.is_success(), "{body}");
        let store = app.store.clone();
        let clean = reverify(store.as_ref(), "web-1").unwrap().unwrap();
        assert_eq!(clean.first_bad, None);
        assert_eq!(clean.records, last);
        assert!(clean.signatures >= 2, "{clean:?}");
        assert_eq!(reverify(store.as_ref(), "nobody").unwrap(), None);

        // Change one stored payload behind the collector's back.
        let conn = rusqlite::Connection::open(&db).unwrap();
        let original: Vec<u8> = conn
            .query_row(
                "SELECT payload FROM records WHERE seq = ?1",
                [trigger as i64],
                |r| r.get(0),
            )
            .unwrap();
        let changed = conn
            .execute(
                "UPDATE records SET payload = payload || x'00' WHERE seq = ?1",
                [trigger as i64],
            )
            .unwrap();
        assert_eq!(changed, 1);
        let bad = reverify(store.as_ref(), "web-1").unwrap().unwrap();
        let first = bad.first_bad.expect("the change is found");
        assert_eq!(first.seq, trigger, "{first:?}");
        assert!(first.reason.contains("changed"), "{}", first.reason);

        // Deleting a record is found too (at the first missing sequence number).
        conn.execute("DELETE FROM records WHERE seq = ?1", [(trigger + 1) as i64])
            .unwrap();
        conn.execute(
            "UPDATE records SET payload = ?2 WHERE seq = ?1",
            rusqlite::params![trigger as i64, original],
        )
        .unwrap();
        let gone = reverify(store.as_ref(), "web-1").unwrap().unwrap();
        assert_eq!(gone.first_bad.map(|b| b.seq), Some(trigger + 1));
    }
}
