//! Tests of the PostgreSQL store against a real server (Debian's PostgreSQL, started by
//! `auditloop_testkit::postgres` for this test process; a missing install fails, it does not skip): the
//! conformance suite unchanged, concurrent writers of one host on two stores (two replicas), partitions
//! and retention, notifications across stores, and the schema check.

use std::ops::Deref;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use auditloop_testkit::postgres::PgServer;

use super::PgStore;
use super::partitions::{self, DAY_NS};
use crate::store::backend::Store;
use crate::store::error::StoreError;

/// A store on a fresh database of the test process's server.
struct FreshPg {
    store: PgStore,
    url: String,
}

impl FreshPg {
    fn new() -> FreshPg {
        let url = server().fresh_database().unwrap();
        FreshPg {
            store: PgStore::connect(&url).unwrap(),
            url,
        }
    }

    /// Another store (another replica) on the same database.
    fn replica(&self) -> PgStore {
        PgStore::connect(&self.url).unwrap()
    }
}

impl Deref for FreshPg {
    type Target = PgStore;

    fn deref(&self) -> &PgStore {
        &self.store
    }
}

fn server() -> &'static PgServer {
    PgServer::shared().unwrap()
}

mod conformance {
    use super::FreshPg;

    crate::store_conformance!(FreshPg::new());
}

use crate::store::conformance::fixture::{Batch, alert, enroll, execs, extend, start};
use crate::store::query::EventQuery;
use auditloop_protocol::api::AlertKind;

/// Every record of `host`, pending ones too, by seq.
fn seqs_of(store: &dyn Store, host: &str) -> Vec<u64> {
    store
        .records(&EventQuery {
            host: Some(host.into()),
            pending: true,
            limit: 1_000_000,
            ..EventQuery::default()
        })
        .unwrap()
        .into_iter()
        .map(|r| r.seq)
        .collect()
}

/// Two replicas verified the same next batch of one host against the same stored state: exactly one
/// commit stores it, the other is a conflict, and the chain holds each record once.
#[test]
fn racing_replicas_store_a_batch_once() {
    let a = FreshPg::new();
    let b = a.replica();
    start(&*a, "h", execs("h", 1..=10), 1).unwrap();
    for round in 0..20u64 {
        let from = 11 + round * 10;
        let batch = Batch::new("h", 1, Some(from), execs("h", from..=from + 9), 2 + round);
        let gate = Barrier::new(2);
        let (ra, rb) = std::thread::scope(|s| {
            let ta = s.spawn(|| {
                gate.wait();
                batch.commit(&*a)
            });
            let tb = s.spawn(|| {
                gate.wait();
                batch.commit(&b)
            });
            (ta.join().unwrap(), tb.join().unwrap())
        });
        let oks = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
        assert_eq!(oks, 1, "round {round}: {ra:?} / {rb:?}");
        let loser = if ra.is_ok() { rb } else { ra };
        assert!(matches!(loser, Err(StoreError::Conflict(_))), "{loser:?}");
    }
    let seqs = seqs_of(&*a, "h");
    assert_eq!(seqs, (1..=210).collect::<Vec<_>>());
    assert_eq!(a.host_record("h").unwrap().map(|r| r.next_seq), Some(211));
}

/// Hosts committing through several replicas at once while a reader pages every host's records by id
/// (`after` the last id seen, as exports do): the reader sees every record exactly once, because ids are
/// given in commit order.
#[test]
fn paging_by_id_misses_nothing_under_concurrent_replicas() {
    let fresh = FreshPg::new();
    let replicas: Vec<PgStore> = (0..3).map(|_| fresh.replica()).collect();
    const HOSTS: usize = 4;
    const BATCHES: u64 = 40;
    const PER: u64 = 25;
    for h in 0..HOSTS {
        enroll(&*fresh, &format!("h{h}"), 1).unwrap();
    }
    let done = std::sync::atomic::AtomicUsize::new(0);
    let seen = std::thread::scope(|s| {
        for h in 0..HOSTS {
            let replicas = &replicas;
            let done = &done;
            s.spawn(move || {
                let host = format!("h{h}");
                for b in 0..BATCHES {
                    let from = 1 + b * PER;
                    let batch =
                        Batch::new(&host, 1, Some(from), execs(&host, from..=from + PER - 1), 5);
                    // Each batch goes to another replica, as a load balancer would send it.
                    let store = &replicas[(h + b as usize) % replicas.len()];
                    batch.commit(store).unwrap();
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        let reader = s.spawn(|| {
            let mut seen: Vec<(String, u64, i64)> = Vec::new();
            let mut after = None;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst) == HOSTS;
                let page = fresh
                    .records(&EventQuery {
                        after,
                        pending: true,
                        limit: 97,
                        ..EventQuery::default()
                    })
                    .unwrap();
                if page.is_empty() && finished {
                    return seen;
                }
                for r in page {
                    after = Some(r.id);
                    seen.push((r.host, r.seq, r.id));
                }
            }
        });
        reader.join().unwrap()
    });
    let total = HOSTS * (BATCHES * PER) as usize;
    let mut unique: Vec<_> = seen.iter().map(|(h, s, _)| (h.clone(), *s)).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(seen.len(), total, "records seen (with repeats)");
    assert_eq!(unique.len(), total, "distinct records seen");
    assert!(seen.windows(2).all(|w| w[0].2 < w[1].2), "ids increase");
}

/// Records go to the partition of the day they are stored; retention drops whole days, older first, and
/// the rest reads on.
#[test]
fn records_are_partitioned_by_day_and_retention_drops_days() {
    let store = FreshPg::new();
    let day = partitions::today() - 3;
    start(&*store, "p", execs("p", 1..=5), day * DAY_NS + 10).unwrap();
    extend(&*store, "p", execs("p", 6..=9), (day + 1) * DAY_NS + 10).unwrap();
    extend(&*store, "p", execs("p", 10..=12), (day + 3) * DAY_NS + 10).unwrap();
    let days = store.partition_days().unwrap();
    for d in [day, day + 1, day + 3, day + 4] {
        assert!(days.contains(&d), "{d} in {days:?}");
    }
    let counts = server()
        .psql(
            store.url.rsplit('/').next().unwrap(),
            &format!(
                "SELECT count(*) FROM {}; SELECT count(*) FROM {};",
                partitions::name(day),
                partitions::name(day + 1)
            ),
        )
        .unwrap();
    assert_eq!(
        counts.split_whitespace().collect::<Vec<_>>(),
        ["5", "4"],
        "{counts}"
    );
    assert_eq!(store.drop_stored_before((day + 1) * DAY_NS).unwrap(), 1);
    assert_eq!(seqs_of(&*store, "p"), (6..=12).collect::<Vec<_>>());
    assert!(!store.partition_days().unwrap().contains(&day));
    // The chain goes on where it was: retention drops old records, not the host's position.
    extend(&*store, "p", execs("p", 13..=13), (day + 3) * DAY_NS + 20).unwrap();
    assert_eq!(seqs_of(&*store, "p").last(), Some(&13));
}

/// A replica's `changes` move when another replica commits an alert, changes an alert's state or records
/// a verdict: the notification crosses processes through the database.
#[test]
fn changes_cross_replicas() {
    let a = FreshPg::new();
    let b = a.replica();
    let mut changes = b.changes().unwrap();
    // The first value arrives once the listener is connected.
    wait_change(&mut changes);
    let mut batch = Batch::new("n", 1, None, execs("n", 1..=2), 3);
    batch.alerts = vec![alert(AlertKind::Gap, Some(1), "n")];
    batch.commit(&*a).unwrap();
    wait_change(&mut changes);
    let mut quiet = Batch::new("n", 1, Some(3), execs("n", 3..=4), 4);
    quiet.alerts = Vec::new();
    quiet.commit(&*a).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !changes.has_changed().unwrap(),
        "a batch without alerts or holds notifies nobody"
    );
}

fn wait_change(changes: &mut tokio::sync::watch::Receiver<u64>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !changes.has_changed().unwrap() {
        assert!(std::time::Instant::now() < deadline, "no change notified");
        std::thread::sleep(Duration::from_millis(10));
    }
    changes.borrow_and_update();
}

/// A database whose schema is newer than this collector's is refused, naming both versions; one without
/// the schema gets it; a URL that does not parse or a server that does not answer is an error that names
/// it, without the password.
#[test]
fn the_schema_version_is_checked_and_errors_name_the_server() {
    let fresh = FreshPg::new();
    let db = fresh.url.rsplit('/').next().unwrap().to_owned();
    server()
        .psql(&db, "INSERT INTO auditloop_schema (version) VALUES (99)")
        .unwrap();
    let err = PgStore::connect(&fresh.url).err().unwrap().to_string();
    assert!(
        err.contains("schema version 99") && err.contains("version 1"),
        "{err}"
    );
    let err = PgStore::connect("postgres://u:secret@127.0.0.1:1/nothing")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("127.0.0.1:1/nothing"), "{err}");
    assert!(!err.contains("secret"), "{err}");
    let err = PgStore::connect("postgres://[").err().unwrap().to_string();
    assert!(err.contains("database URL"), "{err}");
}

/// The server restarts under a store: calls during the outage fail (nothing half-stored), and once it is
/// back the same store goes on, its pool reconnecting.
#[test]
fn a_store_survives_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = PgServer::start(dir.path()).unwrap();
    let url = server.create_database("restart").unwrap();
    let store = Arc::new(PgStore::connect(&url).unwrap());
    start(&*store, "r", execs("r", 1..=3), 1).unwrap();
    server.stop_immediately();
    let down = extend(&*store, "r", execs("r", 4..=6), 2);
    assert!(down.is_err(), "{down:?}");
    server.start_again().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match extend(&*store, "r", execs("r", 4..=6), 3) {
            Ok(()) => break,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "never recovered: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    assert_eq!(seqs_of(&*store, "r"), (1..=6).collect::<Vec<_>>());
}

/// A day partition dropped behind a store's back (another replica's retention, with this replica's clock
/// days behind) is made again by the next commit of that day, which then stores.
#[test]
fn a_partition_dropped_elsewhere_is_made_again() {
    let store = FreshPg::new();
    let day = partitions::today();
    start(&*store, "d", execs("d", 1..=2), day * DAY_NS + 1).unwrap();
    let db = store.url.rsplit('/').next().unwrap().to_owned();
    server()
        .psql(&db, &format!("DROP TABLE {}", partitions::name(day)))
        .unwrap();
    extend(&*store, "d", execs("d", 3..=4), day * DAY_NS + 2).unwrap();
    assert_eq!(seqs_of(&*store, "d"), vec![3, 4]);
}
