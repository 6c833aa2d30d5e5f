//! Conformance cases for hosts: rejections change status and last contact only, and hosts are listed by
//! name with counters that add up over commits.

use auditloop_protocol::api::HostStatus;

use crate::store::backend::Store;
use crate::store::commit::{NewCheckpoint, Rejection};
use crate::store::conformance::fixture::{Batch, Rec, execs, extend, start, stored_host};
use crate::store::error::StoreError;

/// A rejection sets a stored host's status (when it names one) and last contact; its record and counters
/// stay; the next commit sets the status it carries. A rejection of a host never stored creates none.
pub fn a_rejection_updates_status_and_last_contact(store: &dyn Store) -> Result<(), StoreError> {
    start(store, "a", execs("a", 1..=3), 10)?;
    let before = stored_host(store, "a")?;
    let reject = |status: Option<HostStatus>, now_ns: u64| {
        store.reject(&Rejection {
            host: "a",
            status,
            alerts: &[],
            now_ns,
        })
    };
    reject(Some(HostStatus::Tampered), 20)?;
    let host = stored_host(store, "a")?;
    assert_eq!((host.status, host.last_seen_ns), (HostStatus::Tampered, 20));
    assert_eq!(
        (
            host.record,
            host.records,
            host.events,
            host.duplicates,
            host.batches
        ),
        (
            before.record,
            before.records,
            before.events,
            before.duplicates,
            before.batches
        )
    );
    assert_eq!(store.host_record("a")?, Some(before.record));
    reject(None, 30)?;
    let host = stored_host(store, "a")?;
    assert_eq!((host.status, host.last_seen_ns), (HostStatus::Tampered, 30));
    reject(Some(HostStatus::Forked), 40)?;
    assert_eq!(stored_host(store, "a")?.status, HostStatus::Forked);
    extend(store, "a", execs("a", 4..=4), 50)?;
    let host = stored_host(store, "a")?;
    assert_eq!((host.status, host.last_seen_ns), (HostStatus::Verified, 50));

    store.reject(&Rejection {
        host: "b",
        status: Some(HostStatus::Forked),
        alerts: &[],
        now_ns: 60,
    })?;
    assert_eq!(store.host("b")?, None);
    assert_eq!(store.host_record("b")?, None);
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

    let names: Vec<_> = store.hosts()?.into_iter().map(|h| h.name).collect();
    assert_eq!(names, ["api", "db", "web"]);
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
    assert_eq!(web.last_seen_ns, 20);
    assert_eq!(web.last_checkpoint_ns, Some(10));
    assert_eq!(web.record.next_seq, 8);
    assert!(!web.silent);
    let db = stored_host(store, "db")?;
    assert_eq!((db.records, db.batches, db.last_seen_ns), (1, 1, 2));
    assert_eq!(db.last_checkpoint_ns, None);
    Ok(())
}
