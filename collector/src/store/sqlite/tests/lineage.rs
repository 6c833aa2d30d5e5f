//! The lineage lookups and the address filter on SQLite: the same answers from the search file's indexes
//! as from the records after its mark, the query plans they use, and version 4 files whose stored events
//! get their lineage and network columns when migrated.

use auditloop_journal::record::encode_event;
use auditloop_model::{
    Event, EventBody, EventKind, Exec, Net, NetOp, NetProtocol, Process, WallTime,
};

use super::{FreshSqlite, store_rows, user_version};
use crate::store::backend::Store;
use crate::store::columns::of_event;
use crate::store::commit::RecordKind;
use crate::store::lineage::{Endpoint, FlowQuery, FlowSide, LineageRole, ProcessQuery};
use crate::store::query::EventQuery;
use crate::store::sqlite::SqliteStore;
use crate::store::sqlite::lineage::{flow_sql, process_sql};
use crate::store::sqlite::schema::SCHEMA_VERSION;

/// A TCP `op` event by pid 50 (started at 5) at `time_ns` from `local` to `remote`.
fn tcp(op: NetOp, time_ns: u64, local: (&str, u16), remote: (&str, u16)) -> Event {
    Event {
        seq: 0,
        time: WallTime(time_ns),
        mono_ns: 0,
        process: Process {
            pid: 50,
            start: Some(WallTime(5)),
            comm: "client".into(),
            ..Process::default()
        },
        event: EventBody::Net(Net {
            op,
            protocol: NetProtocol::Tcp,
            success: true,
            local_address: local.0.into(),
            local_port: local.1,
            remote_address: remote.0.into(),
            remote_port: remote.1,
            ..Net::default()
        }),
    }
}

/// `events` as rows to store: their kind, derived columns and encoded payload.
fn rows(events: &[Event]) -> Vec<(RecordKind, crate::store::commit::SearchColumns, Vec<u8>)> {
    events
        .iter()
        .map(|e| {
            (
                RecordKind::Event(e.kind()),
                of_event(e),
                encode_event(e).unwrap(),
            )
        })
        .collect()
}

fn connects(store: &SqliteStore, client: (&str, u16)) -> Vec<u64> {
    let query = FlowQuery {
        side: FlowSide::Connect,
        host: None,
        client: Endpoint {
            address: client.0.into(),
            port: client.1,
        },
        server: None,
        since_ns: 0,
        through_ns: u64::MAX >> 1,
        pending: false,
        limit: 100,
    };
    store
        .flow_records(&query)
        .unwrap()
        .into_iter()
        .map(|r| r.seq)
        .collect()
}

fn accepts(store: &SqliteStore) -> Vec<u64> {
    let query = ProcessQuery {
        host: "h".into(),
        pid: 50,
        role: LineageRole::Flow(FlowSide::Accept),
        start_from_ns: 5,
        start_to_ns: 5,
        since_ns: None,
        through_ns: None,
        pending: false,
        limit: 100,
    };
    store
        .process_records(&query)
        .unwrap()
        .into_iter()
        .map(|r| r.seq)
        .collect()
}

fn by_local_address(store: &SqliteStore, address: &str) -> Vec<u64> {
    let query = EventQuery {
        local_address: Some(address.into()),
        limit: 100,
        ..EventQuery::default()
    };
    store
        .records(&query)
        .unwrap()
        .into_iter()
        .map(|r| r.seq)
        .collect()
}

#[test]
fn lineage_lookups_are_complete_before_and_after_indexing() {
    let fresh = FreshSqlite::indexing(None);
    let store = &*fresh;
    let events = [
        tcp(NetOp::Connect, 100, ("10.0.0.1", 4000), ("10.0.0.2", 22)),
        tcp(NetOp::Accept, 110, ("10.0.0.2", 22), ("10.0.0.1", 4000)),
        tcp(NetOp::Connect, 120, ("10.0.0.1", 4001), ("10.0.0.2", 22)),
        tcp(NetOp::Accept, 130, ("10.0.0.2", 22), ("10.0.0.3", 4000)),
    ];
    store_rows(store, "h", rows(&events), 1);
    let check = |store: &SqliteStore, extra: &[u64]| {
        let mut want = vec![1];
        want.extend_from_slice(extra);
        assert_eq!(connects(store, ("10.0.0.1", 4000)), want);
        assert_eq!(connects(store, ("10.0.0.1", 4001)), [3]);
        let mut newest = extra.iter().rev().map(|s| s + 1).collect::<Vec<_>>();
        newest.extend([4, 2]);
        assert_eq!(accepts(store), newest);
        assert_eq!(by_local_address(store, "10.0.0.2").len(), 2 + extra.len());
    };
    check(store, &[]);
    assert_eq!(store.index_pending(1).unwrap(), 4);
    check(store, &[]);
    // Indexed records and newer ones together.
    let newer = [
        tcp(NetOp::Connect, 140, ("10.0.0.1", 4000), ("10.0.0.2", 22)),
        tcp(NetOp::Accept, 150, ("10.0.0.2", 22), ("10.0.0.9", 1)),
    ];
    store_rows(store, "h", rows(&newer), 2);
    check(store, &[5]);
    assert_eq!(store.index_pending(1).unwrap(), 2);
    check(store, &[5]);
}

#[test]
fn lineage_lookups_use_their_indexes() {
    let fresh = FreshSqlite::indexing(None);
    let store = &*fresh;
    let plan = |sql: crate::store::sqlite::read::Sql| -> String {
        store
            .read(|conn| {
                let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {}", sql.text))?;
                let rows = stmt.query_map(rusqlite::params_from_iter(sql.args), |row| {
                    row.get::<_, String>(3)
                })?;
                Ok(rows.map(Result::unwrap).collect::<Vec<_>>().join("; "))
            })
            .unwrap()
    };
    let exact = ProcessQuery {
        host: "h".into(),
        pid: 7,
        role: LineageRole::Exec,
        start_from_ns: 5,
        start_to_ns: 5,
        since_ns: Some(5),
        through_ns: Some(9),
        pending: false,
        limit: 1,
    };
    let process = plan(process_sql(1, &exact));
    assert!(
        process.contains(
            "SEARCH search.proc_index USING PRIMARY KEY (host_id=? AND pid=? AND role=? AND start_ns=? \
             AND time_ns>? AND time_ns<?)"
        ) && process.contains("SEARCH records USING INTEGER PRIMARY KEY (rowid>?)")
            && process.contains("SEARCH r USING INTEGER PRIMARY KEY (rowid=?)"),
        "{process}"
    );
    let fork = ProcessQuery {
        start_to_ns: 6,
        ..exact
    };
    let fork = plan(process_sql(1, &fork));
    assert!(
        fork.contains(
            "SEARCH search.proc_index USING PRIMARY KEY (host_id=? AND pid=? AND role=? AND start_ns>? \
             AND start_ns<?)"
        ),
        "{fork}"
    );
    let flow = FlowQuery {
        side: FlowSide::Connect,
        host: None,
        client: Endpoint {
            address: "10.0.0.1".into(),
            port: 4000,
        },
        server: None,
        since_ns: 1,
        through_ns: 2,
        pending: false,
        limit: 17,
    };
    let flow = plan(flow_sql(&flow));
    assert!(
        flow.contains(
            "SEARCH search.flow_index USING PRIMARY KEY (addr=? AND port=? AND time_ns>? AND time_ns<?)"
        ) && flow.contains("SEARCH records USING INTEGER PRIMARY KEY (rowid>?)")
            && flow.contains("SEARCH r USING INTEGER PRIMARY KEY (rowid=?)"),
        "{flow}"
    );
}

#[test]
fn a_version_4_database_gets_the_new_columns_of_its_stored_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let connect = tcp(
        NetOp::Connect,
        100,
        ("::ffff:10.0.0.1", 4000),
        ("10.0.0.2", 22),
    );
    let mut exec = Event {
        event: EventBody::Exec(Exec {
            filename: "/usr/bin/ssh".into(),
            success: true,
            cwd: "/home/alice".into(),
            ..Exec::default()
        }),
        ..tcp(NetOp::Connect, 90, ("", 0), ("", 0))
    };
    exec.process.loginuid = Some(1000);
    {
        // A version 4 file: today's schema without version 5's columns, holding two events and a record
        // whose payload is not an event.
        let store = SqliteStore::open_indexing(&path, None).unwrap();
        store
            .enroll(&crate::store::host::Enrollment {
                host: "h",
                genesis_key: [3; 32],
                token_digest: [1; 32],
                replace: false,
                now_ns: 1,
            })
            .unwrap();
        drop(store);
        let conn = rusqlite::Connection::open(&path).unwrap();
        for column in [
            "loginuid",
            "local_addr",
            "local_port",
            "remote_addr",
            "remote_port",
            "role",
            "role_pid",
            "role_start_ns",
        ] {
            conn.execute_batch(&format!("ALTER TABLE records DROP COLUMN {column};"))
                .unwrap();
        }
        for (seq, kind, payload) in [
            (1i64, "exec", encode_event(&exec).unwrap()),
            (2, "net", encode_event(&connect).unwrap()),
            (3, "file", vec![0]),
        ] {
            conn.execute(
                "INSERT INTO records (host_id, seq, hash, kind, time_ns, pid, path, summary, payload, \
                 stored_ns) VALUES (1, ?1, ?2, ?3, 100, 50, NULL, 'old summary', ?4, 1)",
                rusqlite::params![seq, vec![seq as u8; 32], kind, payload],
            )
            .unwrap();
        }
        conn.execute_batch(
            "UPDATE hosts SET next_seq = 4, last_checkpoint_seq = 3; PRAGMA user_version = 4;",
        )
        .unwrap();
        // Its search file as version 4 collectors kept it: no version, past every record.
        let search = rusqlite::Connection::open(dir.path().join("c.search.db")).unwrap();
        search
            .execute_batch("PRAGMA user_version = 0; UPDATE search_state SET upto = 3;")
            .unwrap();
    }
    let store = SqliteStore::open_indexing(&path, None).unwrap();
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    // The search file started over (its mark is back at 0), so every record is found before indexing…
    assert_eq!(connects(&store, ("10.0.0.1", 4000)), [2]);
    assert_eq!(by_local_address(&store, "10.0.0.1"), [2]);
    let login = EventQuery {
        loginuid: Some(1000),
        limit: 10,
        ..EventQuery::default()
    };
    assert_eq!(store.records(&login).unwrap().len(), 1);
    let text = EventQuery {
        text: Some("/home/alice".into()),
        limit: 10,
        ..EventQuery::default()
    };
    assert_eq!(
        store.records(&text).unwrap().len(),
        1,
        "summaries derived again"
    );
    let kept = EventQuery {
        kind: Some(EventKind::File.as_str().into()),
        text: Some("old summary".into()),
        limit: 10,
        ..EventQuery::default()
    };
    assert_eq!(store.records(&kept).unwrap().len(), 1, "undecodable: kept");
    // … and after.
    assert_eq!(store.index_pending(1).unwrap(), 3);
    assert_eq!(connects(&store, ("10.0.0.1", 4000)), [2]);
    assert_eq!(by_local_address(&store, "10.0.0.1"), [2]);
    drop(store);
    let store = SqliteStore::open_indexing(&path, None).unwrap();
    assert_eq!(
        store.index_pending(1).unwrap(),
        0,
        "reopening keeps the index"
    );
    assert_eq!(connects(&store, ("10.0.0.1", 4000)), [2]);
}
