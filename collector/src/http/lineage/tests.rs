//! `GET /v1/lineage` over HTTP: a join across two hosts' shipped batches, and the requests it refuses; the
//! network and login filters of `GET /v1/events`.

use auditloop_model::{Event, EventBody, Net, NetOp, NetProtocol, Process, WallTime};
use axum::http::StatusCode;
use serde_json::Value;

use crate::http::testutil::{ADMIN, ENROLL_TOKEN, TestApp};
use crate::testutil::TestJournal;

/// A TCP `op` by `pid` (`comm`) at `time_ns` from `local` to `remote`.
fn tcp(
    pid: u32,
    comm: &str,
    op: NetOp,
    time_ns: u64,
    local: (&str, u16),
    remote: (&str, u16),
) -> Event {
    Event {
        seq: 0,
        time: WallTime(time_ns),
        mono_ns: 0,
        process: Process {
            pid,
            tid: pid,
            comm: comm.into(),
            exe: format!("/usr/bin/{comm}"),
            start: Some(WallTime(1_700_000_000_000_000_000)),
            loginuid: Some(1000),
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

/// Host `a` connects 10.0.0.1:40000 → 10.0.0.2:22 (curl, pid 100); host `b` accepts it (sshd, pid 10).
/// Both shipped and covered by a checkpoint; returns the app and the two events' seqs.
async fn joined() -> (TestApp, u64, u64) {
    let app = TestApp::new();
    let t = 1_700_000_000_100_000_000;
    let mut a = TestJournal::new("a");
    app.enroll("a", &mut a).await;
    let connect = a.append(tcp(
        100,
        "curl",
        NetOp::Connect,
        t,
        ("10.0.0.1", 40000),
        ("10.0.0.2", 22),
    ));
    a.checkpoint();
    let mut b = TestJournal::new("b");
    app.enroll("b", &mut b).await;
    let accept = b.append(tcp(
        10,
        "sshd",
        NetOp::Accept,
        t + 1_000_000,
        ("::ffff:10.0.0.2", 22),
        ("10.0.0.1", 40000),
    ));
    b.checkpoint();
    for (host, journal) in [("a", &mut a), ("b", &mut b)] {
        let batch = journal.batch(1, journal.last_seq());
        assert_eq!(app.post(host, &batch).await.0, StatusCode::OK);
    }
    (app, connect, accept)
}

#[tokio::test]
async fn lineage_names_the_connecting_process_of_the_other_host() {
    let (app, connect, accept) = joined().await;
    let (status, body) = app.get(&format!("/v1/lineage?host=b&seq={accept}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["window_ns"], 5_000_000_000u64);
    let lineage = &body["lineage"];
    assert_eq!(lineage["host"], "b");
    assert_eq!(lineage["process"]["pid"], 10);
    let arrival = &lineage["arrivals"][0];
    assert_eq!(arrival["via"], "ssh", "{body}");
    assert_eq!(
        arrival["local"]["address"], "10.0.0.2",
        "normalized: {body}"
    );
    assert_eq!(arrival["join"]["status"], "matched", "{body}");
    let origin = &arrival["join"]["origin"];
    assert_eq!(origin["connect"]["host"], "a");
    assert_eq!(origin["connect"]["seq"], connect);
    assert_eq!(origin["connect"]["pid"], 100);
    assert_eq!(origin["connect"]["exe"], "/usr/bin/curl");
    assert_eq!(origin["lineage"]["process"]["comm"], "curl");
    assert_eq!(origin["stopped"], Value::Null);
}

#[tokio::test]
async fn lineage_requests_are_checked() {
    let (app, _, accept) = joined().await;
    let bad = |body: &Value, name: &str| {
        assert!(body["error"].as_str().unwrap().contains(name), "{body}");
    };
    let (status, body) = app.get("/v1/lineage?seq=2").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    bad(&body, "host");
    let (status, body) = app.get("/v1/lineage?host=b").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    bad(&body, "seq");
    let (status, body) = app.get("/v1/lineage?host=b&seq=two").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    bad(&body, "seq");
    let (status, body) = app.get("/v1/lineage?host=b&seq=2&pending=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    bad(&body, "pending");
    for uri in ["/v1/lineage?host=nope&seq=2", "/v1/lineage?host=b&seq=999"] {
        let (status, body) = app.get(uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {body}");
    }
    // Seq 1 is the journal's segment start.
    let (status, body) = app.get("/v1/lineage?host=b&seq=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    bad(&body, "not an event");
    let uri = format!("/v1/lineage?host=b&seq={accept}");
    assert_eq!(
        app.get_as(&uri, Some(&app.token("b"))).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get_as(&uri, Some(ENROLL_TOKEN)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.get_as(&uri, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get_as(&uri, Some(ADMIN)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn events_filter_by_login_and_network_ends() {
    let (app, connect, accept) = joined().await;
    let seqs = |body: &Value| -> Vec<(String, u64)> {
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["host"].as_str().unwrap().to_owned(),
                    e["seq"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    for (query, want) in [
        ("local_address=10.0.0.1", vec![("a", connect)]),
        ("local_address=::ffff:10.0.0.2", vec![("b", accept)]),
        (
            "remote_address=10.0.0.1&remote_port=40000",
            vec![("b", accept)],
        ),
        ("local_port=40000", vec![("a", connect)]),
        ("remote_port=22", vec![("a", connect)]),
        ("loginuid=1000&host=a", vec![("a", connect)]),
        ("loginuid=0", vec![]),
        ("q=10.0.0.2", vec![("a", connect), ("b", accept)]),
    ] {
        let (status, body) = app.get(&format!("/v1/events?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        let want: Vec<(String, u64)> = want.into_iter().map(|(h, s)| (h.into(), s)).collect();
        assert_eq!(seqs(&body), want, "{query}");
    }
    for (query, name) in [
        ("loginuid=alice", "loginuid"),
        ("loginuid=-1", "loginuid"),
        ("local_port=0", "local_port"),
        ("remote_port=70000", "remote_port"),
        ("local_address=example.com", "local_address"),
        ("remote_address=10.0.0", "remote_address"),
    ] {
        let (status, body) = app.get(&format!("/v1/events?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(name),
            "{query}: {body}"
        );
    }
}
