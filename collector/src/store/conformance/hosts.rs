//! Conformance cases for hosts: enrollment (once, or replacing with the admin's `replace`), tokens,
//! rejections that change nothing, last contact that only checkpoints move, and hosts listed by name with
//! counters that add up over commits.

use auditloop_protocol::api::{AlertKind, HostStatus};

use crate::store::backend::Store;
use crate::store::commit::{NewCheckpoint, Rejection};
use crate::store::conformance::fixture::{
    Batch, KEY, Rec, alert, all_alerts, enroll, execs, extend, start, stored_host, token_of,
};
use crate::store::error::StoreError;
use crate::store::host::{Enrollment, HostRecord, replaced_name};

/// Enrolling stores a host that shipped nothing (status `enrolled`, the enrolled record, no counters,
/// never seen) with its token; enrolling it again fails with [`StoreError::HostExists`] and changes
/// nothing, whatever the key; tokens are found by host and by digest and can be replaced.
pub fn enrollment_creates_a_host_once(store: &dyn Store) -> Result<(), StoreError> {
    assert_eq!(store.host_token("a")?, None);
    enroll(store, "a", 10)?;
    assert_eq!(store.host_record("a")?, Some(HostRecord::enrolled(KEY)));
    let host = stored_host(store, "a")?;
    assert_eq!(host.status, HostStatus::Enrolled);
    assert_eq!(
        (host.records, host.events, host.duplicates, host.batches),
        (0, 0, 0, 0)
    );
    assert_eq!((host.last_seen_ns, host.last_checkpoint_ns), (0, None));
    assert!(!host.silent);
    assert_eq!(store.host_token("a")?, Some(token_of("a")));
    assert_eq!(store.token_owner(&token_of("a"))?, Some("a".to_owned()));
    assert_eq!(store.token_owner(&token_of("nobody"))?, None);

    let again = store.enroll(&Enrollment {
        host: "a",
        genesis_key: [9; 32],
        token_digest: token_of("thief"),
        replace: false,
        now_ns: 20,
    });
    assert!(
        matches!(again, Err(StoreError::HostExists(ref h)) if h == "a"),
        "{again:?}"
    );
    assert_eq!(store.host_record("a")?, Some(HostRecord::enrolled(KEY)));
    assert_eq!(store.host_token("a")?, Some(token_of("a")));
    assert_eq!(store.token_owner(&token_of("thief"))?, None);

    assert!(store.set_host_token("a", &token_of("a2"))?);
    assert_eq!(store.host_token("a")?, Some(token_of("a2")));
    assert_eq!(
        store.token_owner(&token_of("a"))?,
        None,
        "the old token is gone"
    );
    assert!(!store.set_host_token("nope", &token_of("x"))?);
    assert_eq!(store.host("nope")?, None);
    Ok(())
}

/// Re-enrolling with `replace` keeps the stored chain under the replaced name (status `replaced`, its
/// records, counters and hashes, no token) and enrolls the host anew; a commit verified against the old
/// enrollment conflicts; `replace` of a host never stored simply enrolls it.
pub fn replacing_an_enrollment_keeps_the_old_chain(store: &dyn Store) -> Result<(), StoreError> {
    start(store, "a", execs("a", 1..=3), 10)?;
    let old = stored_host(store, "a")?;
    store.enroll(&Enrollment {
        host: "a",
        genesis_key: [5; 32],
        token_digest: token_of("a-new"),
        replace: true,
        now_ns: 20,
    })?;
    let kept = replaced_name("a", 20);
    let replaced = stored_host(store, &kept)?;
    assert_eq!(replaced.status, HostStatus::Replaced);
    assert_eq!((replaced.record, replaced.records), (old.record, 3));
    assert_eq!(store.stored_hashes(&kept, 1, 3)?.len(), 3);
    assert_eq!(store.host_token(&kept)?, None);
    assert_eq!(store.token_owner(&token_of("a"))?, None);
    assert!(
        !store.set_host_token(&kept, &token_of("x"))?,
        "a replaced host gets no token"
    );

    assert_eq!(store.host_record("a")?, Some(HostRecord::enrolled([5; 32])));
    assert_eq!(stored_host(store, "a")?.status, HostStatus::Enrolled);
    assert_eq!(store.stored_hashes("a", 1, 3)?, Vec::new());
    assert_eq!(store.token_owner(&token_of("a-new"))?, Some("a".to_owned()));

    // Verified against the old enrollment (next seq 4, key KEY): the host moved on.
    let stale = Batch::new("a", 1, Some(4), execs("a", 4..=4), 30).commit(store);
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    // Against the new enrollment's next seq but the old key: still a conflict.
    let stale = Batch::new("a", 1, Some(1), execs("a", 1..=1), 30).commit(store);
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    assert_eq!(stored_host(store, "a")?.records, 0);

    store.enroll(&Enrollment {
        host: "fresh",
        genesis_key: KEY,
        token_digest: token_of("fresh"),
        replace: true,
        now_ns: 40,
    })?;
    assert_eq!(stored_host(store, "fresh")?.status, HostStatus::Enrolled);
    assert_eq!(store.hosts()?.len(), 3);
    Ok(())
}

/// A rejection stores its alerts and nothing else: the host's record, status, counters, last contact
/// and silence stay; a rejection of a host never stored creates none.
pub fn a_rejection_changes_nothing_but_alerts(store: &dyn Store) -> Result<(), StoreError> {
    let mut batch = Batch::new("a", 1, None, execs("a", 1..=3), 10);
    batch.checkpoints = vec![NewCheckpoint {
        seq: 3,
        epoch: 0,
        head_seq: 2,
    }];
    batch.commit(store)?;
    let before = stored_host(store, "a")?;
    for now_ns in [20, 30] {
        store.reject(&Rejection {
            host: "a",
            alerts: &[alert(AlertKind::Forgery, Some(4), "forged")],
            now_ns,
        })?;
    }
    assert_eq!(stored_host(store, "a")?, before);
    assert_eq!(store.host_record("a")?, Some(before.record));
    let alerts = all_alerts(store)?;
    assert_eq!((alerts.len(), alerts[0].count), (1, 2));

    store.reject(&Rejection {
        host: "b",
        alerts: &[],
        now_ns: 60,
    })?;
    assert_eq!(store.host("b")?, None);
    assert_eq!(store.host_record("b")?, None);
    Ok(())
}

/// Last contact moves only with a commit that stores a checkpoint (newly verified records or a
/// heartbeat); a commit of replays or of pending records alone leaves it, and so does its status `enrolled`
/// until the first commit.
pub fn last_contact_moves_only_with_a_checkpoint(store: &dyn Store) -> Result<(), StoreError> {
    let mut first = Batch::new("a", 1, None, execs("a", 1..=2), 10);
    first.host_record.last_checkpoint_seq = 0;
    first.commit(store)?;
    let host = stored_host(store, "a")?;
    assert_eq!((host.last_seen_ns, host.status), (0, HostStatus::Verified));
    assert_eq!(host.record.pending(), 2);
    let mut covered = Batch::new("a", 1, Some(3), vec![Rec::checkpoint("a", 3)], 20);
    covered.checkpoints = vec![NewCheckpoint {
        seq: 3,
        epoch: 0,
        head_seq: 2,
    }];
    covered.commit(store)?;
    let host = stored_host(store, "a")?;
    assert_eq!((host.last_seen_ns, host.last_checkpoint_ns), (20, Some(20)));
    assert_eq!(host.record.pending(), 0);
    let mut replay = Batch::new("a", 1, Some(4), Vec::new(), 30);
    replay.duplicates = 3;
    replay.commit(store)?;
    let mut tail = Batch::new("a", 1, Some(4), execs("a", 4..=5), 40);
    tail.host_record.last_checkpoint_seq = 3;
    tail.commit(store)?;
    let host = stored_host(store, "a")?;
    assert_eq!(
        host.last_seen_ns, 20,
        "replays and pending records are no contact"
    );
    assert_eq!((host.duplicates, host.batches, host.records), (3, 4, 5));
    assert_eq!(host.record.pending(), 2);
    Ok(())
}

/// `hosts` lists every stored host by name, each as `host` returns it; counters add up over commits, only
/// events count as events, and the checkpoint time moves only with a commit that stores checkpoints.
pub fn hosts_are_listed_with_their_counters(store: &dyn Store) -> Result<(), StoreError> {
    assert_eq!(store.hosts()?, Vec::new());
    start(store, "web", execs("web", 1..=2), 1)?;
    start(store, "db", execs("db", 1..=1), 2)?;
    let mut anchored = Batch::new("api", 5, None, execs("api", 5..=6), 3);
    anchored.status = HostStatus::AnchoredTofu;
    anchored.commit(store)?;
    enroll(store, "new", 4)?;

    let names: Vec<_> = store.hosts()?.into_iter().map(|h| h.name).collect();
    assert_eq!(names, ["api", "db", "new", "web"]);
    for host in store.hosts()? {
        assert_eq!(store.host(&host.name)?, Some(host));
    }
    assert_eq!(store.host("nope")?, None);
    let api = stored_host(store, "api")?;
    assert_eq!(api.status, HostStatus::AnchoredTofu);
    assert_eq!((api.record.first_seq, api.record.next_seq), (5, 7));

    let mut second = Batch::new(
        "web",
        1,
        Some(3),
        vec![
            Rec::exec("web", 3),
            Rec::segment_start("web", 4),
            Rec::checkpoint("web", 5),
        ],
        10,
    );
    second.duplicates = 2;
    second.checkpoints = vec![NewCheckpoint {
        seq: 5,
        epoch: 0,
        head_seq: 4,
    }];
    second.commit(store)?;
    let mut third = Batch::new("web", 1, Some(6), execs("web", 6..=7), 20);
    third.duplicates = 1;
    third.commit(store)?;
    let web = stored_host(store, "web")?;
    assert_eq!(
        (web.records, web.events, web.duplicates, web.batches),
        (7, 5, 3, 3)
    );
    assert_eq!(web.last_seen_ns, 10, "the last checkpoint came at 10");
    assert_eq!(web.last_checkpoint_ns, Some(10));
    assert_eq!(web.record.next_seq, 8);
    assert!(!web.silent);
    let db = stored_host(store, "db")?;
    assert_eq!((db.records, db.batches, db.last_seen_ns), (1, 1, 0));
    assert_eq!(db.last_checkpoint_ns, None);
    extend(store, "db", execs("db", 2..=2), 30)?;
    assert_eq!(stored_host(store, "db")?.batches, 2);
    Ok(())
}
