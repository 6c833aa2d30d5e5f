//! Conformance cases for the lookups of the lineage walk and the network and login filters: one record by
//! host and seq, the records of one process (its pid and start time: a reused pid is another process), the
//! connects and accepts of a connection's client end within a time range (never one whose ends are not all
//! known), and the filters by login uid, address and port.

use auditloop_model::EventKind;

use crate::store::backend::Store;
use crate::store::commit::SearchColumns;
use crate::store::conformance::fixture::{Batch, Rec, at, found, start};
use crate::store::error::StoreError;
use crate::store::lineage::{Endpoint, FlowQuery, FlowSide, LineageKey, LineageRole, ProcessQuery};
use crate::store::query::{EventQuery, StoredRecord};

/// An event of `host` at `seq` and time `time_ns`, whose lineage key is `role` of process `pid` started at
/// `start_ns`.
fn keyed(host: &str, seq: u64, time_ns: u64, role: LineageRole, pid: u32, start_ns: u64) -> Rec {
    let kind = match role {
        LineageRole::Exec => EventKind::Exec,
        LineageRole::Fork => EventKind::Fork,
        LineageRole::Flow(_) => EventKind::Net,
    };
    Rec::event(host, seq, kind).with(SearchColumns {
        time_ns: Some(time_ns),
        pid: Some(pid),
        lineage: Some(LineageKey {
            role,
            pid,
            start_ns: Some(start_ns),
        }),
        ..SearchColumns::default()
    })
}

/// A TCP `side` event of `host` at `seq` and `time_ns` by `pid` from `local` to `remote` (`None`: that end
/// unknown).
fn flow(
    host: &str,
    seq: u64,
    time_ns: u64,
    side: FlowSide,
    local: Option<(&str, u16)>,
    remote: Option<(&str, u16)>,
) -> Rec {
    let mut rec = keyed(host, seq, time_ns, LineageRole::Flow(side), 50, 1);
    rec.columns.local_address = local.map(|l| l.0.to_owned());
    rec.columns.local_port = local.map(|l| l.1);
    rec.columns.remote_address = remote.map(|r| r.0.to_owned());
    rec.columns.remote_port = remote.map(|r| r.1);
    rec
}

fn end(address: &str, port: u16) -> Endpoint {
    Endpoint {
        address: address.to_owned(),
        port,
    }
}

fn pairs(records: &[StoredRecord]) -> Vec<(String, u64)> {
    records.iter().map(|r| (r.host.clone(), r.seq)).collect()
}

/// A record as read back: host, seq, whether verified, payload.
type Read = (String, u64, bool, Vec<u8>);

/// `record` reads one record by host and seq, pending or verified, and says which; an unknown host or
/// seq reads nothing.
pub fn a_record_is_read_by_host_and_seq(store: &dyn Store) -> Result<(), StoreError> {
    let mut batch = Batch::new("a", 1, None, super::fixture::execs("a", 1..=3), 10);
    batch.host_record.last_checkpoint_seq = 2;
    batch.commit(store)?;
    start(store, "b", super::fixture::execs("b", 1..=1), 10)?;
    let read = |host: &str, seq: u64| -> Result<Option<Read>, StoreError> {
        Ok(store
            .record(host, seq)?
            .map(|r| (r.host, r.seq, r.verified, r.payload)))
    };
    assert_eq!(
        read("a", 2)?,
        Some(("a".into(), 2, true, b"a 2 exec".to_vec()))
    );
    assert_eq!(
        read("a", 3)?,
        Some(("a".into(), 3, false, b"a 3 exec".to_vec()))
    );
    assert_eq!(read("b", 1)?.map(|r| r.3), Some(b"b 1 exec".to_vec()));
    assert_eq!(read("a", 4)?, None);
    assert_eq!(read("nope", 1)?, None);
    Ok(())
}

/// The records of one process: same host, pid, role and start time (in the range asked); event time in
/// range, both ends included; newest first; verified ones unless pending are asked for; at most `limit`.
pub fn process_records_match_pid_start_and_role(store: &dyn Store) -> Result<(), StoreError> {
    let accept = LineageRole::Flow(FlowSide::Accept);
    let mut batch = Batch::new(
        "a",
        1,
        None,
        vec![
            keyed("a", 1, 100, LineageRole::Exec, 7, 90),
            keyed("a", 2, 110, accept, 7, 90),
            keyed("a", 3, 120, accept, 7, 90),
            // The same pid, reused by a process started later: another process.
            keyed("a", 4, 130, accept, 7, 125),
            keyed("a", 5, 140, LineageRole::Exec, 7, 125),
            keyed("a", 6, 150, accept, 8, 90),
            keyed("a", 7, 160, accept, 7, 90),
        ],
        10,
    );
    batch.host_record.last_checkpoint_seq = 6;
    batch.commit(store)?;
    start(store, "b", vec![keyed("b", 1, 115, accept, 7, 90)], 10)?;
    let q = |role: LineageRole, start: (u64, u64)| ProcessQuery {
        host: "a".into(),
        pid: 7,
        role,
        start_from_ns: start.0,
        start_to_ns: start.1,
        since_ns: None,
        through_ns: None,
        pending: false,
        limit: 100,
    };
    let seqs = |query: ProcessQuery| -> Result<Vec<u64>, StoreError> {
        Ok(store
            .process_records(&query)?
            .into_iter()
            .map(|r| r.seq)
            .collect())
    };
    assert_eq!(seqs(q(accept, (90, 90)))?, [3, 2], "newest first, verified");
    assert_eq!(
        seqs(ProcessQuery {
            pending: true,
            ..q(accept, (90, 90))
        })?,
        [7, 3, 2]
    );
    assert_eq!(seqs(q(accept, (125, 125)))?, [4], "the reused pid");
    assert_eq!(seqs(q(accept, (89, 125)))?, [4, 3, 2], "a start range");
    assert_eq!(seqs(q(LineageRole::Exec, (90, 90)))?, [1]);
    assert_eq!(
        seqs(q(LineageRole::Fork, (0, u64::MAX)))?,
        Vec::<u64>::new()
    );
    let timed = ProcessQuery {
        since_ns: Some(110),
        through_ns: Some(120),
        ..q(accept, (90, 90))
    };
    assert_eq!(seqs(timed.clone())?, [3, 2], "both ends included");
    assert_eq!(
        seqs(ProcessQuery {
            through_ns: Some(119),
            ..timed.clone()
        })?,
        [2]
    );
    assert_eq!(seqs(ProcessQuery { limit: 1, ..timed })?, [3]);
    assert_eq!(
        seqs(ProcessQuery {
            host: "b".into(),
            ..q(accept, (90, 90))
        })?,
        [1]
    );
    assert_eq!(
        seqs(ProcessQuery {
            host: "nope".into(),
            ..q(accept, (90, 90))
        })?,
        Vec::<u64>::new()
    );
    Ok(())
}

/// The connects (or accepts) of a client end on every host (or one), within the time range (both ends
/// included), to the server end when one is given; oldest first; verified unless pending are asked for; at most
/// `limit`. A connect or accept with any end unknown is never found.
pub fn flow_records_match_both_ends_within_the_range(store: &dyn Store) -> Result<(), StoreError> {
    let (client, server) = (Some(("10.0.0.1", 40000)), Some(("10.0.0.2", 22)));
    start(
        store,
        "a",
        vec![
            flow("a", 1, 1_000, FlowSide::Connect, client, server),
            flow("a", 2, 9_000, FlowSide::Connect, client, server),
            flow(
                "a",
                3,
                1_500,
                FlowSide::Connect,
                client,
                Some(("10.0.0.3", 22)),
            ),
            // Unknown ends never join.
            flow("a", 4, 1_000, FlowSide::Connect, client, None),
            flow(
                "a",
                5,
                1_000,
                FlowSide::Connect,
                Some(("10.0.0.1", 40001)),
                server,
            ),
            flow("a", 6, 1_000, FlowSide::Connect, None, server),
        ],
        10,
    )?;
    let mut b = Batch::new(
        "b",
        1,
        None,
        vec![
            flow("b", 1, 1_010, FlowSide::Accept, server, client),
            flow("b", 2, 1_020, FlowSide::Connect, client, server),
            flow("b", 3, 1_030, FlowSide::Connect, client, server),
        ],
        10,
    );
    b.host_record.last_checkpoint_seq = 2;
    b.commit(store)?;
    let q = |side: FlowSide, since: u64, through: u64| FlowQuery {
        side,
        host: None,
        client: end("10.0.0.1", 40000),
        server: Some(end("10.0.0.2", 22)),
        since_ns: since,
        through_ns: through,
        pending: false,
        limit: 100,
    };
    let mut connects = at("a", [1]);
    connects.extend(at("b", [2]));
    assert_eq!(
        pairs(&store.flow_records(&q(FlowSide::Connect, 0, 5_000))?),
        connects
    );
    assert_eq!(
        pairs(&store.flow_records(&q(FlowSide::Connect, 1_000, 1_020))?),
        connects,
        "both ends of the range included"
    );
    assert_eq!(
        pairs(&store.flow_records(&q(FlowSide::Connect, 1_001, 1_019))?),
        Vec::new()
    );
    let with_pending = FlowQuery {
        pending: true,
        ..q(FlowSide::Connect, 0, 5_000)
    };
    connects.extend(at("b", [3]));
    assert_eq!(pairs(&store.flow_records(&with_pending)?), connects);
    let any_server = FlowQuery {
        server: None,
        ..q(FlowSide::Connect, 0, 2_000)
    };
    let mut to_any = at("a", [1]);
    to_any.extend(at("b", [2]));
    to_any.extend(at("a", [3]));
    assert_eq!(pairs(&store.flow_records(&any_server)?), to_any);
    assert_eq!(
        pairs(&store.flow_records(&FlowQuery {
            limit: 1,
            ..any_server
        })?),
        at("a", [1])
    );
    assert_eq!(
        pairs(&store.flow_records(&q(FlowSide::Accept, 0, 5_000))?),
        at("b", [1])
    );
    let only_b = FlowQuery {
        host: Some("b".into()),
        ..q(FlowSide::Connect, 0, 5_000)
    };
    assert_eq!(pairs(&store.flow_records(&only_b)?), at("b", [2]));
    let other_client = FlowQuery {
        client: end("10.0.0.9", 40000),
        ..q(FlowSide::Connect, 0, 50_000)
    };
    assert_eq!(pairs(&store.flow_records(&other_client)?), Vec::new());
    Ok(())
}

/// By login uid, by local or remote address (exactly, as stored: normalized), by local or remote port;
/// together with the other filters.
pub fn records_filter_by_login_and_network_ends(store: &dyn Store) -> Result<(), StoreError> {
    let mut login = Rec::event("a", 1, EventKind::Exec);
    login.columns.loginuid = Some(1000);
    let mut root = Rec::event("a", 2, EventKind::File);
    root.columns.loginuid = Some(0);
    start(
        store,
        "a",
        vec![
            login,
            root,
            flow(
                "a",
                3,
                1_003,
                FlowSide::Connect,
                Some(("10.0.0.1", 4)),
                Some(("10.0.0.2", 22)),
            ),
            flow(
                "a",
                4,
                1_004,
                FlowSide::Accept,
                Some(("10.0.0.1", 22)),
                Some(("10.0.0.2", 5)),
            ),
            flow(
                "a",
                5,
                1_005,
                FlowSide::Connect,
                Some(("10.0.0.1", 6)),
                Some(("10.0.0.1", 22)),
            ),
        ],
        10,
    )?;
    let q = EventQuery::default;
    let uid = |u: u32| EventQuery {
        loginuid: Some(u),
        ..q()
    };
    assert_eq!(found(store, uid(1000))?, at("a", [1]));
    assert_eq!(found(store, uid(0))?, at("a", [2]));
    assert_eq!(found(store, uid(7))?, Vec::new());
    let local = |a: &str| EventQuery {
        local_address: Some(a.to_owned()),
        ..q()
    };
    let remote = |a: &str| EventQuery {
        remote_address: Some(a.to_owned()),
        ..q()
    };
    assert_eq!(found(store, local("10.0.0.1"))?, at("a", [3, 4, 5]));
    assert_eq!(found(store, remote("10.0.0.1"))?, at("a", [5]));
    assert_eq!(found(store, remote("10.0.0.2"))?, at("a", [3, 4]));
    assert_eq!(found(store, local("10.0.0.2"))?, Vec::new());
    let ports = |local: Option<u16>, remote: Option<u16>| EventQuery {
        local_port: local,
        remote_port: remote,
        ..q()
    };
    assert_eq!(found(store, ports(Some(22), None))?, at("a", [4]));
    assert_eq!(found(store, ports(None, Some(22)))?, at("a", [3, 5]));
    assert_eq!(found(store, ports(Some(6), Some(22)))?, at("a", [5]));
    let both = EventQuery {
        remote_port: Some(22),
        ..local("10.0.0.1")
    };
    assert_eq!(found(store, both.clone())?, at("a", [3, 5]));
    let timed = EventQuery {
        since_ns: Some(1_004),
        ..both
    };
    assert_eq!(found(store, timed)?, at("a", [5]));
    Ok(())
}
