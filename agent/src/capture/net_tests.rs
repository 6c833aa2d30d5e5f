//! Network events through the assembler with synthetic kernel records: a blocking and a non-blocking
//! TCP connect (held until the kernel reports the local port), a listen, an accept with its passive
//! record, and a descriptor's protocol from its `socket` call.

use agent_common::decode::Record;
use agent_common::wire::{
    RecordHeader, RecordKind, SockState, SysExit, Syscall, SyscallOp, TCP_CLOSE, TCP_ESTABLISHED,
    TCP_LISTEN, TCP_SYN_RECV, TCP_SYN_SENT,
};
use auditloop_model::{Event, EventBody, Net, NetOp, NetProtocol};

use crate::capture::assemble::Assembler;
use crate::capture::proctable::ProcessTable;
use crate::clock::Clock;

const PID: u32 = 4321;

fn header(kind: RecordKind, t: u64) -> RecordHeader {
    RecordHeader {
        kind: kind as u32,
        aux: 0,
        ktime_ns: t,
        pid: PID,
        tid: PID,
        uid: 0,
        gid: 0,
        comm: *b"client\0\0\0\0\0\0\0\0\0\0",
        cgroup_id: 0,
    }
}

fn sockaddr_in(ip: [u8; 4], port: u16) -> Vec<u8> {
    let mut b = vec![2, 0];
    b.extend(port.to_be_bytes());
    b.extend(ip);
    b.extend([0; 8]);
    b
}

fn syscall(op: SyscallOp, nr: u32, t: u64, args: [u64; 6], addr: &[u8]) -> Record {
    let mut rec: Syscall = bytemuck::Zeroable::zeroed();
    rec.header = header(RecordKind::Syscall, t);
    rec.op = op as u32;
    rec.nr = nr;
    rec.nargs = 3;
    rec.args = args;
    rec.str_lens[0] = u32::try_from(addr.len()).unwrap();
    rec.strs[0][..addr.len()].copy_from_slice(addr);
    Record::Syscall(Box::new(rec))
}

fn exit(op: SyscallOp, nr: u32, t: u64, ret: i64) -> Record {
    Record::SysExit(SysExit {
        header: header(RecordKind::SysExit, t),
        op: op as u32,
        nr,
        ret,
    })
}

fn state(
    t: u64,
    sk: u64,
    old: u32,
    new: u32,
    local: ([u8; 4], u16),
    remote: ([u8; 4], u16),
) -> Record {
    Record::SockState(SockState {
        header: header(RecordKind::SockState, t),
        skaddr: sk,
        oldstate: old,
        newstate: new,
        sport: local.1,
        dport: remote.1,
        family: 2,
        reserved: 0,
        saddr: local.0,
        daddr: remote.0,
        saddr_v6: [0; 16],
        daddr_v6: [0; 16],
    })
}

const SOCKET: u32 = 41;
const CONNECT: u32 = 42;
const ACCEPT4: u32 = 288;
const LISTEN: u32 = 50;

fn assembler() -> (Assembler, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let procs = ProcessTable::new(64, dir.path());
    (Assembler::new(Clock::with_offset(0), procs), dir)
}

fn nets(out: &[Event]) -> Vec<&Net> {
    out.iter()
        .filter_map(|e| match &e.event {
            EventBody::Net(n) => Some(n),
            _ => None,
        })
        .collect()
}

#[test]
fn a_blocking_connect_has_its_local_end_at_once() {
    let (mut a, _dir) = assembler();
    let mut out = Vec::new();
    a.push(
        syscall(
            SyscallOp::Socket,
            SOCKET,
            1,
            [2, 1 | 0o4000, 0, 0, 0, 0],
            &[],
        ),
        &mut out,
    );
    a.push(exit(SyscallOp::Socket, SOCKET, 2, 3), &mut out);
    assert!(out.is_empty(), "socket is not an event");
    let server = ([10, 0, 0, 2], 22);
    a.push(
        syscall(
            SyscallOp::Connect,
            CONNECT,
            3,
            [3, 0, 16, 0, 0, 0],
            &sockaddr_in(server.0, 22),
        ),
        &mut out,
    );
    a.push(
        state(4, 0xa, TCP_CLOSE, TCP_SYN_SENT, ([10, 0, 0, 1], 0), server),
        &mut out,
    );
    a.push(
        state(
            5,
            0xa,
            TCP_SYN_SENT,
            TCP_ESTABLISHED,
            ([10, 0, 0, 1], 40000),
            server,
        ),
        &mut out,
    );
    a.push(exit(SyscallOp::Connect, CONNECT, 6, 0), &mut out);
    let n = nets(&out);
    assert_eq!(n.len(), 1);
    assert_eq!((n[0].op, n[0].protocol), (NetOp::Connect, NetProtocol::Tcp));
    assert_eq!(
        (n[0].local_address.as_str(), n[0].local_port),
        ("10.0.0.1", 40000)
    );
    assert_eq!(
        (n[0].remote_address.as_str(), n[0].remote_port),
        ("10.0.0.2", 22)
    );
    assert_eq!(a.filtered(), 0, "a socket call is not counted as filtered");
}

#[test]
fn a_connect_under_way_is_held_until_the_kernel_reports_its_port() {
    let (mut a, _dir) = assembler();
    let mut out = Vec::new();
    let server = ([10, 0, 0, 2], 443);
    a.push(
        syscall(
            SyscallOp::Connect,
            CONNECT,
            3,
            [7, 0, 16, 0, 0, 0],
            &sockaddr_in(server.0, 443),
        ),
        &mut out,
    );
    a.push(
        state(4, 0xb, TCP_CLOSE, TCP_SYN_SENT, ([10, 0, 0, 1], 0), server),
        &mut out,
    );
    a.push(exit(SyscallOp::Connect, CONNECT, 5, -115), &mut out);
    assert!(nets(&out).is_empty(), "held");
    assert_eq!(a.pending_execs(), 1);
    a.push(
        state(
            9,
            0xb,
            TCP_SYN_SENT,
            TCP_ESTABLISHED,
            ([10, 0, 0, 1], 50123),
            server,
        ),
        &mut out,
    );
    let n = nets(&out);
    assert_eq!(n.len(), 1);
    assert!(n[0].success && n[0].ret == Some(-115));
    assert_eq!(n[0].local_port, 50123);
    assert_eq!(out[0].mono_ns, 3, "the event keeps the time of the call");
    // One that never completes is emitted after the pairing timeout, without a local end; at shutdown
    // every held connect is emitted.
    out.clear();
    a.push(
        syscall(
            SyscallOp::Connect,
            CONNECT,
            10,
            [8, 0, 16, 0, 0, 0],
            &sockaddr_in(server.0, 443),
        ),
        &mut out,
    );
    a.push(
        state(11, 0xc, TCP_CLOSE, TCP_SYN_SENT, ([10, 0, 0, 1], 0), server),
        &mut out,
    );
    a.push(exit(SyscallOp::Connect, CONNECT, 12, -115), &mut out);
    a.flush_stale(13, &mut out);
    assert!(nets(&out).is_empty());
    a.flush_stale(10 + 6_000_000_000, &mut out);
    let n = nets(&out);
    assert_eq!((n.len(), n[0].local_port, n[0].remote_port), (1, 0, 443));
}

#[test]
fn listen_and_accept_take_the_kernel_s_ends() {
    let (mut a, _dir) = assembler();
    let mut out = Vec::new();
    a.push(
        syscall(SyscallOp::Listen, LISTEN, 1, [5, 128, 0, 0, 0, 0], &[]),
        &mut out,
    );
    a.push(
        state(
            2,
            0xd,
            TCP_CLOSE,
            TCP_LISTEN,
            ([0, 0, 0, 0], 8080),
            ([0, 0, 0, 0], 0),
        ),
        &mut out,
    );
    a.push(exit(SyscallOp::Listen, LISTEN, 3, 0), &mut out);
    // The connection arrives (in softirq: another task's header), then accept names its peer.
    let client = ([192, 0, 2, 7], 51000);
    a.push(
        state(
            4,
            0xe,
            TCP_SYN_RECV,
            TCP_ESTABLISHED,
            ([192, 0, 2, 1], 8080),
            client,
        ),
        &mut out,
    );
    let mut acc: Syscall = bytemuck::Zeroable::zeroed();
    acc.header = header(RecordKind::Syscall, 5);
    acc.op = SyscallOp::Accept as u32;
    acc.nr = ACCEPT4;
    acc.nargs = 2;
    acc.args = [5, 9, 0, 0, 0, 0];
    let peer = sockaddr_in(client.0, client.1);
    acc.str_lens[0] = 16;
    acc.strs[0][..16].copy_from_slice(&peer);
    a.push(Record::Syscall(Box::new(acc)), &mut out);
    a.push(exit(SyscallOp::Accept, ACCEPT4, 6, 9), &mut out);
    let n = nets(&out);
    assert_eq!(n.len(), 2, "{out:?}");
    assert_eq!(
        (n[0].op, n[0].local_address.as_str(), n[0].local_port),
        (NetOp::Listen, "0.0.0.0", 8080)
    );
    assert_eq!(
        (n[0].address.as_str(), n[0].port, n[0].protocol),
        ("0.0.0.0", 8080, NetProtocol::Tcp)
    );
    assert_eq!(n[1].op, NetOp::Accept);
    assert_eq!(
        (n[1].local_address.as_str(), n[1].local_port),
        ("192.0.2.1", 8080),
        "the address dialled"
    );
    assert_eq!(
        (n[1].remote_address.as_str(), n[1].remote_port),
        ("192.0.2.7", 51000)
    );
    assert_eq!(n[1].protocol, NetProtocol::Tcp);
}

#[test]
fn an_accept_without_a_kernel_record_keeps_the_listener_s_port() {
    let (mut a, _dir) = assembler();
    let mut out = Vec::new();
    a.push(
        syscall(
            SyscallOp::Bind,
            49,
            1,
            [5, 0, 16, 0, 0, 0],
            &sockaddr_in([0, 0, 0, 0], 8443),
        ),
        &mut out,
    );
    a.push(exit(SyscallOp::Bind, 49, 2, 0), &mut out);
    let mut acc: Syscall = bytemuck::Zeroable::zeroed();
    acc.header = header(RecordKind::Syscall, 5);
    acc.op = SyscallOp::Accept as u32;
    acc.nr = ACCEPT4;
    acc.nargs = 2;
    acc.args = [5, 9, 0, 0, 0, 0];
    let peer = sockaddr_in([192, 0, 2, 7], 51000);
    acc.str_lens[0] = 16;
    acc.strs[0][..16].copy_from_slice(&peer);
    a.push(Record::Syscall(Box::new(acc)), &mut out);
    a.push(exit(SyscallOp::Accept, ACCEPT4, 6, 9), &mut out);
    let n = nets(&out);
    assert_eq!(
        (n[0].op, n[0].local_address.as_str(), n[0].local_port),
        (NetOp::Bind, "0.0.0.0", 8443)
    );
    assert_eq!(
        (n[1].local_address.as_str(), n[1].local_port),
        ("", 8443),
        "a wildcard address is not a guess of which one was dialled"
    );
}
