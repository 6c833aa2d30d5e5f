//! Conformance cases for reading records: every filter alone and together, paging in ingest order, and
//! records replaced after they were found.

use std::time::Duration;

use auditloop_model::EventKind;

use crate::store::backend::Store;
use crate::store::commit::{NewCheckpoint, SearchColumns};
use crate::store::conformance::fixture::{Batch, Rec, at, execs, extend, find, found, seqs, start};
use crate::store::error::StoreError;
use crate::store::query::{EventQuery, PathFilter, StoredRecord};

/// An event of `host` at `seq` with `pid`, `path`, `summary` and time `1_000 + seq`.
fn event(host: &str, seq: u64, kind: EventKind, pid: u32, path: &str, summary: &str) -> Rec {
    Rec::event(host, seq, kind).with(SearchColumns {
        time_ns: Some(1_000 + seq),
        pid: Some(pid),
        path: (!path.is_empty()).then(|| path.to_owned()),
        summary: (!summary.is_empty()).then(|| summary.to_owned()),
        ..SearchColumns::default()
    })
}

/// Two hosts with varied events: `a` 1..=8 (a segment start, execs and files, a checkpoint), `b` 1..=4.
fn two_hosts(store: &dyn Store) -> Result<(), StoreError> {
    start(
        store,
        "a",
        vec![
            Rec::segment_start("a", 1),
            event("a", 2, EventKind::Exec, 100, "/bin/ls", "bash /bin/ls -l"),
            event(
                "a",
                3,
                EventKind::File,
                100,
                "/etc/passwd",
                "ls /etc/passwd",
            ),
            event(
                "a",
                4,
                EventKind::File,
                101,
                "/etc/shadow",
                "cat /etc/shadow",
            ),
            event("a", 5, EventKind::File, 101, "/etcetera", "cat /etcetera"),
            event("a", 6, EventKind::Exec, 102, "/srv/été/x", "Prog été"),
            event("a", 7, EventKind::Net, 102, "", "prog 10.0.0.1:443"),
            Rec::checkpoint("a", 8),
        ],
        10,
    )?;
    start(
        store,
        "b",
        vec![
            Rec::segment_start("b", 1),
            event("b", 2, EventKind::Exec, 100, "/bin/ls", "bash /bin/ls"),
            event("b", 3, EventKind::File, 7, "/etc/passwd", "vi /etc/passwd"),
            event("b", 4, EventKind::Exit, 7, "", ""),
        ],
        20,
    )
}

fn query() -> EventQuery {
    EventQuery::default()
}

/// By host and by kind; without a kind, events only.
pub fn records_filter_by_host_and_kind(store: &dyn Store) -> Result<(), StoreError> {
    two_hosts(store)?;
    let mut all = at("a", 2..=7);
    all.extend(at("b", 2..=4));
    assert_eq!(found(store, query())?, all);
    let host = |h: &str| EventQuery {
        host: Some(h.to_owned()),
        ..query()
    };
    assert_eq!(found(store, host("b"))?, at("b", 2..=4));
    assert_eq!(found(store, host("nope"))?, Vec::new());
    let kind = |k: &str| EventQuery {
        kind: Some(k.to_owned()),
        ..query()
    };
    assert_eq!(seqs(store, kind("file"))?, [3, 4, 5, 3]);
    assert_eq!(found(store, kind("segment_start"))?, {
        let mut starts = at("a", [1]);
        starts.extend(at("b", [1]));
        starts
    });
    assert_eq!(found(store, kind("checkpoint"))?, at("a", [8]));
    assert_eq!(found(store, kind("nope"))?, Vec::new());
    let both = EventQuery {
        host: Some("a".into()),
        kind: Some("exec".into()),
        ..query()
    };
    assert_eq!(found(store, both)?, at("a", [2, 6]));
    Ok(())
}

/// By event time: `since` inclusive, `until` exclusive.
pub fn records_filter_by_time(store: &dyn Store) -> Result<(), StoreError> {
    two_hosts(store)?;
    // Event times are 1_000 + seq: a at 1_002..=1_007, b at 1_002..=1_004.
    let range = |since: Option<u64>, until: Option<u64>| EventQuery {
        since_ns: since,
        until_ns: until,
        ..query()
    };
    let mut since = at("a", 4..=7);
    since.extend(at("b", [4]));
    assert_eq!(found(store, range(Some(1_004), None))?, since);
    let mut until = at("a", 2..=3);
    until.extend(at("b", 2..=3));
    assert_eq!(found(store, range(None, Some(1_004)))?, until);
    let mut both = at("a", 3..=4);
    both.extend(at("b", 3..=4));
    assert_eq!(found(store, range(Some(1_003), Some(1_005)))?, both);
    assert_eq!(found(store, range(Some(1_005), Some(1_005)))?, Vec::new());
    assert_eq!(found(store, range(Some(2_000), None))?, Vec::new());
    Ok(())
}

/// By path: exactly, or by prefix (compared by code point, so `/etc/` does not match `/etcetera`; an
/// empty prefix matches every record with a path).
pub fn records_filter_by_path(store: &dyn Store) -> Result<(), StoreError> {
    two_hosts(store)?;
    let path = |filter: PathFilter| EventQuery {
        path: Some(filter),
        ..query()
    };
    let exact = |p: &str| path(PathFilter::Exact(p.to_owned()));
    let prefix = |p: &str| path(PathFilter::Prefix(p.to_owned()));
    let mut passwd = at("a", [3]);
    passwd.extend(at("b", [3]));
    assert_eq!(found(store, exact("/etc/passwd"))?, passwd);
    assert_eq!(found(store, exact("/etc"))?, Vec::new(), "exact is exact");
    assert_eq!(found(store, prefix("/etc/"))?, {
        let mut etc = at("a", [3, 4]);
        etc.extend(at("b", [3]));
        etc
    });
    assert_eq!(seqs(store, prefix("/etc"))?, [3, 4, 5, 3]);
    assert_eq!(found(store, prefix("/srv/été"))?, at("a", [6]));
    assert_eq!(found(store, prefix("/srv/ét"))?, at("a", [6]));
    assert_eq!(found(store, prefix("/srv/éu"))?, Vec::new());
    assert_eq!(found(store, prefix("/zz"))?, Vec::new());
    let mut with_path = at("a", 2..=6);
    with_path.extend(at("b", 2..=3));
    assert_eq!(found(store, prefix(""))?, with_path);
    Ok(())
}

/// By process id.
pub fn records_filter_by_pid(store: &dyn Store) -> Result<(), StoreError> {
    two_hosts(store)?;
    let pid = |p: u32| EventQuery {
        pid: Some(p),
        ..query()
    };
    let mut hundred = at("a", [2, 3]);
    hundred.extend(at("b", [2]));
    assert_eq!(found(store, pid(100))?, hundred);
    assert_eq!(found(store, pid(7))?, at("b", 3..=4));
    assert_eq!(found(store, pid(999))?, Vec::new());
    Ok(())
}

/// By a case-sensitive substring of the summary.
pub fn records_filter_by_text(store: &dyn Store) -> Result<(), StoreError> {
    two_hosts(store)?;
    let text = |t: &str| EventQuery {
        text: Some(t.to_owned()),
        ..query()
    };
    let mut ls = at("a", [2, 3]);
    ls.extend(at("b", [2]));
    assert_eq!(found(store, text("ls"))?, ls);
    assert_eq!(found(store, text("/etc/passwd"))?, {
        let mut passwd = at("a", [3]);
        passwd.extend(at("b", [3]));
        passwd
    });
    assert_eq!(found(store, text("Prog"))?, at("a", [6]));
    assert_eq!(found(store, text("prog"))?, at("a", [7]), "case-sensitive");
    assert_eq!(found(store, text("été"))?, at("a", [6]));
    assert_eq!(found(store, text("10.0.0.1:443"))?, at("a", [7]));
    assert_eq!(found(store, text("nowhere"))?, Vec::new());
    Ok(())
}

/// Every filter at once narrows the answer to what matches all of them.
pub fn records_combine_filters(store: &dyn Store) -> Result<(), StoreError> {
    two_hosts(store)?;
    let base = EventQuery {
        host: Some("a".into()),
        kind: Some("file".into()),
        since_ns: Some(1_003),
        until_ns: Some(1_006),
        pid: Some(101),
        path: Some(PathFilter::Prefix("/etc".into())),
        text: Some("cat".into()),
        ..query()
    };
    assert_eq!(found(store, base.clone())?, at("a", [4, 5]));
    let exact = EventQuery {
        path: Some(PathFilter::Exact("/etc/shadow".into())),
        ..base.clone()
    };
    assert_eq!(found(store, exact)?, at("a", [4]));
    let other_host = EventQuery {
        host: Some("b".into()),
        ..base.clone()
    };
    assert_eq!(found(store, other_host)?, Vec::new());
    let other_pid = EventQuery {
        pid: Some(100),
        ..base.clone()
    };
    assert_eq!(found(store, other_pid)?, Vec::new());
    let pid_and_path = EventQuery {
        pid: Some(100),
        path: Some(PathFilter::Exact("/bin/ls".into())),
        ..query()
    };
    let mut ls = at("a", [2]);
    ls.extend(at("b", [2]));
    assert_eq!(found(store, pid_and_path)?, ls);
    let text_and_time = EventQuery {
        text: Some("/etc/passwd".into()),
        since_ns: Some(1_003),
        until_ns: Some(1_004),
        ..query()
    };
    let mut passwd = at("a", [3]);
    passwd.extend(at("b", [3]));
    assert_eq!(found(store, text_and_time)?, passwd);
    Ok(())
}

/// Pages of `limit` records following the `after` cursor (the last record id of the previous page) list
/// every matching record once, in ingest order, across hosts and batches; within one host that is
/// sequence order, also within a time window.
pub fn records_page_in_ingest_order(store: &dyn Store) -> Result<(), StoreError> {
    start(store, "a", execs("a", 1..=3), 1)?;
    start(store, "b", execs("b", 1..=3), 2)?;
    extend(store, "a", execs("a", 4..=6), 3)?;
    let mut with_paths = Vec::new();
    for seq in 4..=7 {
        with_paths.push(event("b", seq, EventKind::File, 9, "/p", "file"));
    }
    extend(store, "b", with_paths, 4)?;
    extend(store, "a", execs("a", 7..=7), 5)?;

    let mut ingest_order = at("a", 1..=3);
    ingest_order.extend(at("b", 1..=3));
    ingest_order.extend(at("a", 4..=6));
    ingest_order.extend(at("b", 4..=7));
    ingest_order.extend(at("a", [7]));
    let all = find(store, query())?;
    let listed: Vec<_> = all.iter().map(|r| (r.host.clone(), r.seq)).collect();
    assert_eq!(listed, ingest_order);
    assert!(
        all.windows(2).all(|w| w[0].id < w[1].id),
        "ids increase in ingest order"
    );

    let filters = [
        query(),
        EventQuery {
            host: Some("a".into()),
            ..query()
        },
        EventQuery {
            host: Some("b".into()),
            ..query()
        },
        EventQuery {
            kind: Some("exec".into()),
            ..query()
        },
        EventQuery {
            pid: Some(9),
            ..query()
        },
        EventQuery {
            path: Some(PathFilter::Prefix("/".into())),
            ..query()
        },
        // One host's time window across its batches: how fleet-wide learns and rules diffs read.
        EventQuery {
            host: Some("a".into()),
            since_ns: Some(1_002),
            until_ns: Some(1_007),
            ..query()
        },
    ];
    let window = EventQuery {
        host: Some("a".into()),
        since_ns: Some(1_002),
        until_ns: Some(1_007),
        ..query()
    };
    assert_eq!(found(store, window)?, at("a", 2..=6));
    for filter in filters {
        let expected = find(store, filter.clone())?;
        for limit in [1, 2, 3, 5] {
            let mut paged = Vec::new();
            let mut after = None;
            loop {
                let page = store.records(&EventQuery {
                    after,
                    limit,
                    ..filter.clone()
                })?;
                assert!(page.len() <= limit as usize, "{filter:?} limit {limit}");
                let Some(last) = page.last() else {
                    break;
                };
                after = Some(last.id);
                paged.extend(page);
            }
            assert_eq!(paged, expected, "{filter:?} limit {limit}");
        }
    }
    // A cursor from another host's record still pages by ingest order.
    let b3 = all[5].id;
    let after_b3 = EventQuery {
        host: Some("a".into()),
        after: Some(b3),
        ..query()
    };
    assert_eq!(found(store, after_b3)?, at("a", 4..=7));
    let last = all[all.len() - 1].id;
    let past_the_end = EventQuery {
        after: Some(last),
        ..query()
    };
    assert_eq!(found(store, past_the_end)?, Vec::new());
    Ok(())
}

/// A record is verified when its seq is at most its host record's `last_checkpoint_seq`, pending
/// otherwise: queries serve verified records only unless they ask for pending ones too, and say which is
/// which, and since when (the time the first stored checkpoint at or after them was stored); a later commit
/// whose checkpoint covers pending records makes them verified. Every filter applies to both.
pub fn records_are_pending_until_a_checkpoint_covers_them(
    store: &dyn Store,
) -> Result<(), StoreError> {
    let mut first = super::fixture::Batch::new("a", 1, None, execs("a", 1..=5), 10);
    first.host_record.last_checkpoint_seq = 3;
    first.checkpoints = vec![crate::store::commit::NewCheckpoint {
        seq: 3,
        epoch: 0,
        head_seq: 2,
    }];
    first.commit(store)?;
    start(store, "b", execs("b", 1..=2), 10)?;
    let a = |pending: bool| EventQuery {
        host: Some("a".to_owned()),
        pending,
        ..query()
    };
    assert_eq!(seqs(store, a(false))?, [1, 2, 3]);
    let with_pending: Vec<_> = find(store, a(true))?
        .into_iter()
        .map(|r| (r.seq, r.verified))
        .collect();
    assert_eq!(
        with_pending,
        [(1, true), (2, true), (3, true), (4, false), (5, false)]
    );
    assert!(find(store, a(false))?.iter().all(|r| r.verified));
    let mut all = at("a", 1..=3);
    all.extend(at("b", 1..=2));
    assert_eq!(found(store, query())?, all, "across hosts too");
    let since = EventQuery {
        since_ns: Some(1_003),
        ..a(false)
    };
    assert_eq!(seqs(store, since.clone())?, [3]);
    assert_eq!(
        seqs(
            store,
            EventQuery {
                pending: true,
                ..since
            }
        )?,
        [3, 4, 5]
    );

    let mut covering =
        super::fixture::Batch::new("a", 1, Some(6), vec![Rec::checkpoint("a", 6)], 20);
    covering.checkpoints = vec![crate::store::commit::NewCheckpoint {
        seq: 6,
        epoch: 0,
        head_seq: 5,
    }];
    covering.commit(store)?;
    assert_eq!(seqs(store, a(false))?, [1, 2, 3, 4, 5]);
    let when: Vec<_> = find(store, a(true))?
        .into_iter()
        .map(|r| (r.seq, r.verified_ns))
        .collect();
    assert_eq!(
        when,
        [
            (1, Some(10)),
            (2, Some(10)),
            (3, Some(10)),
            (4, Some(20)),
            (5, Some(20))
        ],
        "verified when the first checkpoint covering them was stored"
    );
    let kind = EventQuery {
        kind: Some("checkpoint".into()),
        ..a(false)
    };
    assert_eq!(seqs(store, kind)?, [6], "the checkpoint itself is verified");
    Ok(())
}

/// How long [`replaced_records_never_lend_their_ids`] leaves a backend that indexes behind its writer to
/// catch up before it goes on (a backend indexing every few milliseconds has indexed everything by then; the
/// case holds whether it has or not).
const INDEXING_PAUSE: Duration = Duration::from_millis(100);

/// Pages of `limit` records matching `filter` from the cursor `after`, until a page is empty.
fn paged(
    store: &dyn Store,
    filter: &EventQuery,
    after: Option<i64>,
    limit: u32,
) -> Result<Vec<StoredRecord>, StoreError> {
    let mut all = Vec::new();
    let mut after = after;
    loop {
        let page = store.records(&EventQuery {
            after,
            limit,
            ..filter.clone()
        })?;
        assert!(page.len() <= limit as usize, "{filter:?} limit {limit}");
        let Some(last) = page.last() else {
            return Ok(all);
        };
        after = Some(last.id);
        all.extend(page);
    }
}

/// Pending records a commit replaces ([`Commit::replace_from`](crate::store::Commit::replace_from)) are
/// gone for good, and their ids with them: no record stored later gets the id of a deleted one (ids keep
/// increasing in ingest order, past every id ever handed out), every filter finds the new records and never
/// the deleted ones, and paging with `after` lists every record once, from the start or from a cursor taken
/// before the deletion (even one naming a deleted record).
pub fn replaced_records_never_lend_their_ids(store: &dyn Store) -> Result<(), StoreError> {
    let file = |host: &str, seq: u64, pid: u32, path: &str| {
        event(
            host,
            seq,
            EventKind::File,
            pid,
            path,
            &format!("open {path}"),
        )
    };
    // Verified records of a and b, then pending ones of a: the newest records stored.
    let mut kept: Vec<Rec> = (1..=3).map(|seq| file("a", seq, 10, "/kept")).collect();
    kept.push(Rec::checkpoint("a", 4));
    start(store, "a", kept, 10)?;
    start(
        store,
        "b",
        vec![file("b", 1, 20, "/b"), file("b", 2, 20, "/b")],
        20,
    )?;
    let mut pending = Batch::new(
        "a",
        1,
        Some(5),
        (5..=7).map(|seq| file("a", seq, 30, "/gone")).collect(),
        30,
    );
    pending.host_record.last_checkpoint_seq = 4;
    pending.commit(store)?;
    std::thread::sleep(INDEXING_PAUSE);

    let everything = EventQuery {
        pending: true,
        ..query()
    };
    let before = find(store, everything.clone())?;
    let mut listed = at("a", 1..=3);
    listed.extend(at("b", 1..=2));
    listed.extend(at("a", 5..=7));
    assert_eq!(
        before
            .iter()
            .map(|r| (r.host.clone(), r.seq))
            .collect::<Vec<_>>(),
        listed
    );
    let highest = before.iter().map(|r| r.id).max().unwrap_or(0);
    // The cursor a reader holds after paging to the end: the id of a record about to be deleted.
    let cursor = before.last().map_or(0, |r| r.id);

    // The host signs other records in their place (fewer of them), then more are stored.
    let mut replacing = Batch::new(
        "a",
        1,
        Some(8),
        vec![file("a", 5, 40, "/new"), Rec::checkpoint("a", 6)],
        40,
    );
    replacing.replace_from = Some(5);
    replacing.checkpoints = vec![NewCheckpoint {
        seq: 6,
        epoch: 0,
        head_seq: 5,
    }];
    replacing.commit(store)?;
    std::thread::sleep(INDEXING_PAUSE);
    extend(
        store,
        "b",
        vec![file("b", 3, 20, "/b"), file("b", 4, 40, "/new")],
        50,
    )?;
    extend(store, "a", vec![file("a", 7, 40, "/new")], 60)?;
    std::thread::sleep(INDEXING_PAUSE);

    let after = find(store, everything.clone())?;
    let mut listed = at("a", 1..=3);
    listed.extend(at("b", 1..=2));
    listed.extend(at("a", [5]));
    listed.extend(at("b", 3..=4));
    listed.extend(at("a", [7]));
    assert_eq!(
        after
            .iter()
            .map(|r| (r.host.clone(), r.seq))
            .collect::<Vec<_>>(),
        listed
    );
    assert!(
        after.windows(2).all(|w| w[0].id < w[1].id),
        "ids increase in ingest order"
    );
    let new: Vec<&StoredRecord> = after.iter().filter(|r| r.stored_ns >= 40).collect();
    assert_eq!(new.len(), 4);
    assert!(
        new.iter().all(|r| r.id > highest),
        "a record stored after the deletion has an id above every id handed out before it: {new:?}, \
         highest before {highest}"
    );

    // Every filter finds the new records and none of the deleted ones.
    let mut new_ones = at("a", [5]);
    new_ones.extend(at("b", [4]));
    new_ones.extend(at("a", [7]));
    let path = |p: &str| EventQuery {
        path: Some(PathFilter::Exact(p.into())),
        ..everything.clone()
    };
    let pid = |p: u32| EventQuery {
        pid: Some(p),
        ..everything.clone()
    };
    let text = |t: &str| EventQuery {
        text: Some(t.into()),
        ..everything.clone()
    };
    assert_eq!(found(store, path("/new"))?, new_ones);
    assert_eq!(found(store, pid(40))?, new_ones);
    assert_eq!(found(store, text("/new"))?, new_ones);
    assert_eq!(found(store, path("/gone"))?, Vec::new());
    assert_eq!(found(store, pid(30))?, Vec::new());
    assert_eq!(found(store, text("/gone"))?, Vec::new());
    let prefix = EventQuery {
        path: Some(PathFilter::Prefix("/".into())),
        ..everything.clone()
    };
    assert_eq!(found(store, prefix.clone())?, listed);
    assert_eq!(
        found(
            store,
            EventQuery {
                host: Some("a".into()),
                ..path("/new")
            }
        )?,
        at("a", [5, 7])
    );

    // Paging lists every record once, from the start or from the cursor taken before the deletion.
    let filters = [
        everything.clone(),
        EventQuery {
            host: Some("a".into()),
            ..everything.clone()
        },
        EventQuery {
            host: Some("b".into()),
            ..everything.clone()
        },
        path("/new"),
        pid(40),
        prefix,
    ];
    for filter in filters {
        let expected = find(store, filter.clone())?;
        let since_cursor: Vec<StoredRecord> = expected
            .iter()
            .filter(|r| r.stored_ns >= 40)
            .cloned()
            .collect();
        for limit in [1, 2, 3] {
            assert_eq!(
                paged(store, &filter, None, limit)?,
                expected,
                "{filter:?} limit {limit}"
            );
            assert_eq!(
                paged(store, &filter, Some(cursor), limit)?,
                since_cursor,
                "{filter:?} limit {limit} after the deleted record {cursor}"
            );
        }
    }
    Ok(())
}
