//! The hostile cases: a host claiming another's connect, a 4-tuple reused, unknown ends, IPv4-mapped
//! addresses spelled differently, a reused pid, connections that arrive at each other, unknown records, a
//! huge fan-in, and the hop bound.

use auditloop_protocol::api::lineage::{AncestryEnd, Join, Stopped, Unmatched};

use crate::lineage::tests::fixture::{Proc, World};
use crate::lineage::tests::{origin, origin_lineage};
use crate::lineage::{LineageError, LineageOptions};

fn unmatched(join: &Join) -> Unmatched {
    match join {
        Join::Unmatched { reason, .. } => *reason,
        other => panic!("not unmatched: {other:?}"),
    }
}

fn candidates(join: &Join) -> (Vec<(String, u64)>, bool) {
    match join {
        Join::Ambiguous {
            candidates,
            truncated,
        } => (
            candidates.iter().map(|c| (c.host.clone(), c.seq)).collect(),
            *truncated,
        ),
        other => panic!("not ambiguous: {other:?}"),
    }
}

const CLIENT: (&str, u16) = ("10.0.0.1", 40000);
const SERVER: (&str, u16) = ("10.0.0.2", 22);

#[test]
fn a_host_claiming_another_hosts_connect_makes_the_join_ambiguous() {
    let world = World::new();
    let client = Proc::new(100, 1, "/usr/bin/ssh");
    let a = world.ship("a", &[client.connect(10, CLIENT, SERVER)]);
    // A lying host records the same connect, from a process of its own.
    let liar = Proc::new(666, 1, "/usr/bin/innocent");
    let m = world.ship("mallory", &[liar.connect(10, CLIENT, SERVER)]);
    let sshd = Proc::new(10, 0, "/usr/sbin/sshd");
    let b = world.ship("b", &[sshd.accept(11, SERVER, CLIENT)]);
    let l = world.lineage("b", b[0]);
    let (found, truncated) = candidates(&l.arrivals[0].join);
    assert_eq!(found, [("a".into(), a[0]), ("mallory".into(), m[0])]);
    assert!(!truncated);
}

#[test]
fn a_loopback_connection_joins_its_own_host_first() {
    let world = World::new();
    let lo = |port: u16| ("127.0.0.1", port);
    let client = Proc::new(100, 1, "/usr/bin/psql");
    let server = Proc::new(200, 1, "/usr/bin/postgres");
    let b = world.ship(
        "b",
        &[
            client.connect(10, lo(50000), lo(5432)),
            server.accept(10, lo(5432), lo(50000)),
            server.accept(20, lo(5432), lo(50001)),
        ],
    );
    // Another host's loopback connection on the same ports at the same time: not the same connection, and
    // (a lying host's claim or a coincidence) it does not make b's own ambiguous.
    let other = world.ship(
        "a",
        &[
            client.connect(10, lo(50000), lo(5432)),
            client.connect(20, lo(50001), lo(5432)),
        ],
    );
    let l = world.lineage("b", b[1]);
    let from = origin(&l.arrivals[0]);
    assert_eq!((from.connect.host.as_str(), from.connect.seq), ("b", b[0]));
    // With no connect of its own (several agents on one kernel), the other hosts' are looked at.
    let l = world.lineage("b", b[2]);
    let from = origin(&l.arrivals[0]);
    assert_eq!(
        (from.connect.host.as_str(), from.connect.seq),
        ("a", other[1])
    );
}

#[test]
fn a_four_tuple_reused_outside_the_window_is_not_ambiguous_inside_it_is() {
    let world = World::new();
    let client = Proc::new(100, 1, "/usr/bin/curl");
    // The same ends an hour earlier: another connection, outside the 5 s window.
    let a = world.ship(
        "a",
        &[
            client.connect(10, CLIENT, SERVER),
            client.connect(3_600_010, CLIENT, SERVER),
        ],
    );
    let sshd = Proc::new(10, 0, "/usr/sbin/sshd");
    let b = world.ship("b", &[sshd.accept(3_600_011, SERVER, CLIENT)]);
    let l = world.lineage("b", b[0]);
    assert_eq!(origin(&l.arrivals[0]).connect.seq, a[1]);
    // Reused within the window (4 s apart): both could be it.
    let again = world.ship("a", &[client.connect(3_604_000, CLIENT, SERVER)]);
    let l = world.lineage("b", b[0]);
    let (found, _) = candidates(&l.arrivals[0].join);
    assert_eq!(found, [("a".into(), a[1]), ("a".into(), again[0])]);
    // A narrower window tells them apart.
    let narrow = LineageOptions::with_window_ms(1_000);
    let l = world.answer("b", b[0], false, &narrow).unwrap().lineage;
    assert_eq!(origin(&l.arrivals[0]).connect.seq, a[1]);
}

#[test]
fn connections_with_unknown_ends_never_join() {
    let world = World::new();
    let client = Proc::new(100, 1, "/usr/bin/curl");
    // Connects whose local end the agent did not know: empty, or port 0.
    world.ship(
        "a",
        &[
            client.connect(10, ("", 40000), SERVER),
            client.connect(10, ("10.0.0.1", 0), SERVER),
        ],
    );
    let sshd = Proc::new(10, 0, "/usr/sbin/sshd");
    let b = world.ship(
        "b",
        &[
            sshd.accept(11, SERVER, CLIENT),
            // An accept on a wildcard listener whose local address was not known.
            sshd.accept(12, ("", 22), ("10.0.0.1", 40001)),
        ],
    );
    let l = world.lineage("b", b[0]);
    assert_eq!(unmatched(&l.arrivals[0].join), Unmatched::NoConnect);
    let l = world.lineage("b", b[1]);
    assert_eq!(unmatched(&l.arrivals[0].join), Unmatched::UnknownEnds);
    assert_eq!(l.arrivals[0].local, None);
}

#[test]
fn a_reused_pid_is_not_taken_for_an_ancestor() {
    let world = World::new();
    let client = Proc::new(100, 1, "/usr/bin/curl");
    world.ship("a", &[client.connect(10, CLIENT, SERVER)]);
    // pid 200 started at 5 ms forked the child; a later process reused pid 200 (started at 500 ms), ran
    // an exec and accepted the connection.
    let parent = Proc::new(200, 5, "/usr/bin/cron");
    let reused = Proc::new(200, 500, "/usr/sbin/sshd");
    let child = Proc::new(201, 20, "/usr/bin/backup");
    let b = world.ship(
        "b",
        &[
            reused.exec(501, &["sshd"], &[]),
            reused.accept(502, SERVER, CLIENT),
            child.exec(600, &["backup"], &[&parent]),
        ],
    );
    let l = world.lineage("b", b[2]);
    assert_eq!(l.ancestors.len(), 1);
    assert_eq!(l.ancestors[0].exe, "/usr/bin/cron");
    assert_eq!(l.ancestors[0].exec_seq, None, "not the reused pid's exec");
    assert_eq!(l.ancestry_end, AncestryEnd::NotFound);
    assert!(l.arrivals.is_empty(), "not the reused pid's accept");
}

#[test]
fn connections_that_arrive_at_each_other_end_in_a_cycle() {
    let world = World::new();
    // Records (clocks, or a liar) make each process accept from the other's connect.
    let a_proc = Proc::new(100, 1, "/usr/bin/a");
    let b_proc = Proc::new(200, 1, "/usr/bin/b");
    let a = world.ship(
        "a",
        &[
            a_proc.accept(10, ("10.0.0.1", 22), ("10.0.0.2", 5000)),
            a_proc.connect(11, ("10.0.0.1", 6000), ("10.0.0.2", 22)),
        ],
    );
    let b = world.ship(
        "b",
        &[
            b_proc.accept(8, ("10.0.0.2", 22), ("10.0.0.1", 6000)),
            b_proc.connect(9, ("10.0.0.2", 5000), ("10.0.0.1", 22)),
            b_proc.file(12, "/tmp/x"),
        ],
    );
    let l = world.lineage("b", b[2]);
    let hop1 = origin(&l.arrivals[0]);
    assert_eq!((hop1.connect.host.as_str(), hop1.connect.seq), ("a", a[1]));
    let a_lineage = origin_lineage(&l.arrivals[0]);
    let hop2 = origin(&a_lineage.arrivals[0]);
    assert_eq!((hop2.connect.host.as_str(), hop2.connect.seq), ("b", b[1]));
    let b_lineage = origin_lineage(&a_lineage.arrivals[0]);
    let hop3 = origin(&b_lineage.arrivals[0]);
    assert_eq!(hop3.connect.seq, a[1]);
    assert_eq!(hop3.stopped, Some(Stopped::Cycle));
    assert!(hop3.lineage.is_none());
}

#[test]
fn an_unknown_host_or_seq_is_not_found() {
    let world = World::new();
    let p = Proc::new(100, 1, "/usr/bin/x");
    let a = world.ship("a", &[p.file(1, "/x")]);
    let options = LineageOptions::default();
    for (host, seq) in [("a", a[0] + 1), ("nope", 1), ("a", 0)] {
        let err = world.answer(host, seq, true, &options).unwrap_err();
        assert!(matches!(err, LineageError::NotFound { .. }), "{err:?}");
        assert!(err.to_string().contains(host), "{err}");
    }
}

#[test]
fn a_huge_fan_in_stays_bounded() {
    let world = World::new();
    let server = Proc::new(200, 1, "/usr/sbin/nginx");
    // 3,000 connections accepted by one server, then a worker forked after the last.
    let mut events: Vec<_> = (0..3_000u16)
        .map(|i| {
            server.accept(
                10 + u64::from(i),
                ("10.0.0.2", 443),
                ("10.9.0.1", 10_000 + i),
            )
        })
        .collect();
    let worker = Proc::new(201, 4_000, "/usr/sbin/nginx");
    events.push(server.fork(&worker));
    events.push(worker.file(4_001, "/var/cache/x"));
    let b = world.ship("b", &events);
    // And 3,000 connects claiming the last of them.
    let liar = Proc::new(666, 1, "/usr/bin/liar");
    let claims: Vec<_> = (0..3_000u64)
        .map(|i| liar.connect(3_000 + i % 1_000, ("10.9.0.1", 12_999), ("10.0.0.2", 443)))
        .collect();
    world.ship("mallory", &claims);
    world.index();
    let l = world.lineage("b", *b.last().unwrap());
    assert_eq!(l.arrivals.len(), 1);
    let arrival = &l.arrivals[0];
    assert_eq!(arrival.remote.as_ref().map(|e| e.port), Some(12_999));
    assert_eq!(
        arrival.earlier_accepts, 16,
        "counted up to the candidate limit"
    );
    let (found, truncated) = candidates(&arrival.join);
    assert_eq!(found.len(), 16);
    assert!(truncated, "more matched than are listed");
}

#[test]
fn the_walk_stops_at_its_hop_bound() {
    let world = World::new();
    // h0's process connects to h1's, which connects to h2's, …, to h5's.
    let mut last = 0;
    for i in 0..6u16 {
        let p = Proc::new(100, 1, "/usr/bin/relay");
        let mut events = Vec::new();
        if i > 0 {
            let peer = format!("10.0.0.{i}");
            events.push(p.accept(
                u64::from(i) * 10,
                (&format!("10.0.0.{}", i + 1), 22),
                (&peer, 40000),
            ));
        }
        events.push(p.connect(
            u64::from(i) * 10 + 5,
            (&format!("10.0.0.{}", i + 1), 40000),
            (&format!("10.0.0.{}", i + 2), 22),
        ));
        last = *world.ship(&format!("h{i}"), &events).last().unwrap();
    }
    let options = LineageOptions {
        max_hops: 2,
        ..LineageOptions::default()
    };
    let l = world.answer("h5", last, false, &options).unwrap().lineage;
    let hop1 = origin_lineage(&l.arrivals[0]);
    assert_eq!(hop1.host, "h4");
    let hop2 = origin_lineage(&hop1.arrivals[0]);
    assert_eq!(hop2.host, "h3");
    let stop = origin(&hop2.arrivals[0]);
    assert_eq!(stop.connect.host, "h2");
    assert_eq!(stop.stopped, Some(Stopped::Limit));
    // Without the bound it goes back to h0.
    let l = world.lineage("h5", last);
    let mut hosts = vec![l.host.clone()];
    let mut at = &l;
    while let Some(arrival) = at.arrivals.first() {
        at = origin_lineage(arrival);
        hosts.push(at.host.clone());
    }
    assert_eq!(hosts, ["h5", "h4", "h3", "h2", "h1", "h0"]);
}
