//! Lineage cases on a real SQLite store: joins across hosts and on one host, ancestry through exec and
//! fork events, SSH arrivals, pending records (here), and the hostile cases (`tests/hostile.rs`).

mod fixture;
mod hostile;

use auditloop_protocol::api::lineage::{
    AncestryEnd, Arrival, Join, Lineage, Origin, Unmatched, Via,
};

use crate::lineage::LineageOptions;
use crate::lineage::tests::fixture::{Proc, World, ms};

/// The origin of a matched join; fails the test otherwise.
pub(super) fn origin(arrival: &Arrival) -> &Origin {
    match &arrival.join {
        Join::Matched { origin } => origin,
        other => panic!("not matched: {other:?}"),
    }
}

/// The lineage of a matched join's connect.
pub(super) fn origin_lineage(arrival: &Arrival) -> &Lineage {
    origin(arrival)
        .lineage
        .as_ref()
        .unwrap_or_else(|| panic!("the walk stopped: {arrival:?}"))
}

/// Host `a`: `bash` (pid 90) runs `curl` (pid 100), which connects 10.0.0.1:40000 → 10.0.0.2:8080 at
/// 20 ms. Host `b`: `srv` (pid 200, a child of init) accepts it at 21 ms, then forks pid 201 at 30 ms, which
/// runs `/bin/true`. Returns the seqs of a's connect, b's accept and b's exec of `/bin/true`.
fn client_and_server(world: &World) -> (u64, u64, u64) {
    let init = Proc::new(1, 0, "/sbin/init");
    let bash = Proc::new(90, 0, "/usr/bin/bash");
    let curl = Proc::new(100, 10, "/usr/bin/curl");
    let a = world.ship(
        "a",
        &[
            bash.exec(1, &["bash"], &[]),
            curl.exec(11, &["curl", "http://10.0.0.2:8080/"], &[&bash]),
            curl.connect(20, ("10.0.0.1", 40000), ("10.0.0.2", 8080)),
        ],
    );
    let srv = Proc::new(200, 5, "/usr/bin/srv");
    let child = Proc::new(201, 30, "/usr/bin/srv");
    let truth = Proc {
        exe: "/bin/true".into(),
        ..child.clone()
    };
    let b = world.ship(
        "b",
        &[
            srv.exec(6, &["srv", "--port", "8080"], &[&init]),
            srv.accept(21, ("10.0.0.2", 8080), ("10.0.0.1", 40000)),
            srv.fork(&child),
            truth.exec(31, &["/bin/true"], &[&srv, &init]),
        ],
    );
    (a[2], b[1], b[3])
}

#[test]
fn an_accept_joins_the_connect_of_another_host_and_names_its_process() {
    let world = World::new();
    let (connect, accept, child) = client_and_server(&world);
    let l = world.lineage("b", child);
    assert_eq!(
        (l.host.as_str(), l.seq, l.kind.as_str()),
        ("b", child, "exec")
    );
    assert_eq!(l.process.pid, 201);
    assert_eq!(l.process.exe, "/bin/true");
    assert_eq!(l.process.exec_seq, Some(child));
    let pids: Vec<u32> = l.ancestors.iter().map(|a| a.pid).collect();
    assert_eq!(pids, [200, 1]);
    assert_eq!(l.ancestors[0].exec_seq, Some(child - 3));
    assert_eq!(l.ancestors[0].argv, ["srv", "--port", "8080"]);
    assert_eq!(l.ancestry_end, AncestryEnd::Root);
    assert_eq!(l.arrivals.len(), 1, "{:?}", l.arrivals);
    let arrival = &l.arrivals[0];
    assert_eq!(
        (arrival.depth, arrival.pid, arrival.via),
        (1, 200, Via::Tcp)
    );
    assert_eq!(arrival.accept_seq, Some(accept));
    assert_eq!(arrival.earlier_accepts, 0);
    let from = origin(arrival);
    assert_eq!(from.connect.host, "a");
    assert_eq!(from.connect.seq, connect);
    assert_eq!(
        (
            from.connect.pid,
            from.connect.exe.as_str(),
            from.connect.comm.as_str()
        ),
        (100, "/usr/bin/curl", "curl")
    );
    assert_eq!(from.connect.local.port, 40000);
    let a = origin_lineage(arrival);
    assert_eq!(a.process.argv, ["curl", "http://10.0.0.2:8080/"]);
    assert_eq!(a.ancestors.len(), 1);
    assert_eq!(a.ancestors[0].exe, "/usr/bin/bash");
    // bash's own exec names no ancestors, and no fork of it is stored.
    assert_eq!(a.ancestry_end, AncestryEnd::NotFound);
    assert!(a.arrivals.is_empty());

    // The accept itself arrived over the connection it accepted.
    let l = world.lineage("b", accept);
    assert_eq!(l.arrivals.len(), 1);
    assert_eq!(l.arrivals[0].depth, 0);
    assert_eq!(origin(&l.arrivals[0]).connect.seq, connect);
    // The same answers from the search file's indexes.
    world.index();
    let l = world.lineage("b", child);
    assert_eq!(origin(&l.arrivals[0]).connect.seq, connect);
}

#[test]
fn a_connection_captured_twice_by_one_host_joins_itself() {
    let world = World::new();
    let client = Proc::new(300, 1, "/usr/bin/nc");
    let server = Proc::new(301, 1, "/usr/bin/python3");
    let seqs = world.ship(
        "a",
        &[
            client.connect(10, ("127.0.0.1", 51000), ("127.0.0.1", 9000)),
            server.accept(10, ("127.0.0.1", 9000), ("127.0.0.1", 51000)),
        ],
    );
    let l = world.lineage("a", seqs[1]);
    let from = origin(&l.arrivals[0]);
    assert_eq!(
        (from.connect.host.as_str(), from.connect.seq),
        ("a", seqs[0])
    );
    assert_eq!(from.connect.exe, "/usr/bin/nc");
}

#[test]
fn ipv4_mapped_addresses_join_their_ipv4_form() {
    let world = World::new();
    let client = Proc::new(100, 1, "/usr/bin/curl");
    let server = Proc::new(200, 1, "/usr/sbin/nginx");
    let a = world.ship(
        "a",
        &[client.connect(10, ("10.0.0.1", 40000), ("10.0.0.2", 443))],
    );
    // A dual-stack listener sees the IPv4 peer as an IPv4-mapped IPv6 address.
    let b = world.ship(
        "b",
        &[server.accept(11, ("::ffff:10.0.0.2", 443), ("::FFFF:10.0.0.1", 40000))],
    );
    let l = world.lineage("b", b[0]);
    let arrival = &l.arrivals[0];
    assert_eq!(
        arrival.remote.as_ref().map(|e| e.address.as_str()),
        Some("10.0.0.1")
    );
    assert_eq!(origin(arrival).connect.seq, a[0]);
}

#[test]
fn a_process_that_never_ran_an_exec_is_followed_through_its_fork() {
    let world = World::new();
    let client = Proc::new(100, 1, "/usr/bin/curl");
    let a = world.ship(
        "a",
        &[client.connect(10, ("10.0.0.1", 40000), ("10.0.0.2", 80))],
    );
    let server = Proc::new(200, 1, "/usr/sbin/httpd");
    let worker = Proc::new(201, 12, "/usr/sbin/httpd");
    let b = world.ship(
        "b",
        &[
            server.exec(2, &["httpd"], &[]),
            server.accept(11, ("10.0.0.2", 80), ("10.0.0.1", 40000)),
            server.fork(&worker),
            worker.file(13, "/var/www/upload"),
        ],
    );
    let l = world.lineage("b", b[3]);
    assert_eq!(l.process.exec_seq, None);
    assert_eq!(l.ancestors.len(), 1);
    assert_eq!(
        (l.ancestors[0].pid, l.ancestors[0].exec_seq),
        (200, Some(b[0]))
    );
    assert_eq!(l.arrivals.len(), 1);
    assert_eq!(l.arrivals[0].depth, 1);
    assert_eq!(origin(&l.arrivals[0]).connect.seq, a[0]);
    // The bound on ancestors ends the chain at the bound.
    let options = LineageOptions {
        max_ancestors: 0,
        ..LineageOptions::default()
    };
    let bounded = world.answer("b", b[3], false, &options).unwrap().lineage;
    assert!(bounded.ancestors.is_empty());
    assert_eq!(bounded.ancestry_end, AncestryEnd::Limit);
}

/// Host `a`: `ssh` (pid 300) connects 10.0.0.1:50000 → 10.0.0.2:22 at 99 ms. Host `b`: sshd (pid 10)
/// accepts it at 100 ms (when `with_accept`), its session process (pid 11, `sshd-session`) starts at
/// 101 ms, and the user's shell (pid 12, carrying the SSH client end) at 2 s writes a file. Returns a's
/// connect seq and b's seqs.
fn ssh_session(world: &World, with_accept: bool) -> (u64, Vec<u64>) {
    let ssh = Proc::new(300, 50, "/usr/bin/ssh");
    let a = world.ship(
        "a",
        &[ssh.connect(99, ("10.0.0.1", 50000), ("10.0.0.2", 22))],
    );
    let sshd = Proc::new(10, 0, "/usr/sbin/sshd");
    let session = Proc::new(11, 101, "/usr/sbin/sshd-session");
    let shell = Proc::new(12, 2_000, "/usr/bin/bash").with_ssh_client("10.0.0.1", 50000);
    let mut events = vec![sshd.exec(1, &["sshd", "-D"], &[])];
    if with_accept {
        events.push(sshd.accept(100, ("10.0.0.2", 22), ("10.0.0.1", 50000)));
    }
    events.extend([
        session.exec(101, &["sshd-session"], &[&sshd]),
        shell.exec(2_000, &["-bash"], &[&session, &sshd]),
        shell.file(2_500, "/home/alice/.bashrc"),
    ]);
    (a[0], world.ship("b", &events))
}

#[test]
fn an_ssh_session_arrives_over_its_sshd() {
    let world = World::new();
    let (connect, b) = ssh_session(&world, true);
    let l = world.lineage("b", *b.last().unwrap());
    assert_eq!(
        l.arrivals.len(),
        1,
        "one arrival, not two: {:?}",
        l.arrivals
    );
    let arrival = &l.arrivals[0];
    assert_eq!((arrival.depth, arrival.pid, arrival.via), (2, 10, Via::Ssh));
    assert_eq!(arrival.accept_seq, Some(b[1]));
    let from = origin(arrival);
    assert_eq!(
        (from.connect.host.as_str(), from.connect.seq),
        ("a", connect)
    );
    assert_eq!(from.connect.exe, "/usr/bin/ssh");
}

#[test]
fn an_ssh_client_end_alone_joins_the_connect() {
    let world = World::new();
    // The sshd's accept was not captured (it ran before the agent): the shell's SSH client end remains.
    let (connect, b) = ssh_session(&world, false);
    let l = world.lineage("b", *b.last().unwrap());
    assert_eq!(l.arrivals.len(), 1);
    let arrival = &l.arrivals[0];
    assert_eq!((arrival.depth, arrival.pid, arrival.via), (1, 11, Via::Ssh));
    assert_eq!(arrival.accept_seq, None);
    assert_eq!(
        arrival
            .remote
            .as_ref()
            .map(|e| (e.address.as_str(), e.port)),
        Some(("10.0.0.1", 50000))
    );
    assert_eq!(origin(arrival).connect.seq, connect);
}

#[test]
fn pending_records_take_part_only_when_asked() {
    let world = World::new();
    let client = Proc::new(100, 1, "/usr/bin/curl");
    let server = Proc::new(200, 1, "/usr/sbin/nginx");
    let a = world.ship_pending(
        "a",
        &[client.connect(10, ("10.0.0.1", 40000), ("10.0.0.2", 443))],
    );
    let b = world.ship(
        "b",
        &[server.accept(11, ("10.0.0.2", 443), ("10.0.0.1", 40000))],
    );
    let l = world.lineage("b", b[0]);
    match &l.arrivals[0].join {
        Join::Unmatched { reason, .. } => assert_eq!(*reason, Unmatched::Pending),
        other => panic!("{other:?}"),
    }
    let with_pending = world
        .answer("b", b[0], true, &LineageOptions::default())
        .unwrap();
    let from = origin(&with_pending.lineage.arrivals[0]);
    assert_eq!(from.connect.seq, a[0]);
    assert!(!from.connect.verified);
    // A pending event itself is not found unless pending records are asked for.
    let c = world.ship_pending("c", &[client.file(12, "/tmp/x")]);
    assert!(
        world
            .answer("c", c[0], false, &LineageOptions::default())
            .is_err()
    );
    assert!(
        world
            .answer("c", c[0], true, &LineageOptions::default())
            .is_ok()
    );
    // The answer says which bounds it used.
    assert_eq!(with_pending.window_ns, 5_000_000_000);
    assert_eq!(with_pending.max_candidates, 16);
    assert_eq!(ms(0) % 1_000_000, 0);
}
