//! Network events with both ends: `connect`, `bind`, `listen` and `accept` records turned into `net`
//! bodies, and `socket` records remembered.
//!
//! Where each end comes from:
//! - the syscall's own address: the peer of `connect` and `accept`, the local end of `bind`;
//! - the socket table ([`SocketTable`]): family, type and protocol from `socket`, the local end from
//!   `bind` (so `listen` and `accept` know it), an accepted socket's kind from its listener;
//! - for TCP, the kernel's state changes ([`TcpStates`]): the local end of a `connect` (the port the kernel
//!   picked; a `connect` still under way is held until the kernel reports it), the address a `listen`
//!   bound, the local end of an accepted connection (the address the peer dialled, also on a wildcard
//!   listener);
//! - for UDP and unix sockets, the kernel's socket tables under `/proc/<pid>/net` (by the descriptor's
//!   socket inode) where the records do not tell (a UDP `connect` or `bind` to port 0, a unix socket bound
//!   before the agent started), within a rate budget. A socket found there must agree with the record (the
//!   peer of a `connect`), so a descriptor closed and reused in between is not mistaken for the one the
//!   syscall used. TCP tables are never read: reading one walks the kernel's whole connection hash.

use std::net::IpAddr;

use agent_common::decode::syscall_bytes;
use agent_common::wire::Syscall;
use auditloop_model::{self as model, EventBody, NetOp, NetProtocol};

use super::canon::Last;
use super::netproc::{self, Found, Table};
use super::resolve::AT_FDCWD;
use super::sockaddr::{self, AF_INET, AF_INET6, AF_UNIX, SockAddr};
use super::sockets::{Endpoint, SOCK_DGRAM, SOCK_STREAM, SockInfo};
use super::tables::{Tables, resolve_at};
use super::tcpstate::End;

/// `-EINPROGRESS`: a non-blocking connect under way.
const EINPROGRESS: i64 = -115;
const SOCK_TYPE_MASK: u64 = 0xf;

fn fd_arg(v: u64) -> i64 {
    i64::from(v as u32 as i32)
}

/// A successful `socket(domain, type, protocol)`: remembers the new descriptor's kind.
pub(super) fn on_socket(rec: &Syscall, ret: Option<i64>, t: &mut Tables<'_>) {
    let Some(fd) = ret.filter(|r| *r >= 0) else {
        return;
    };
    t.socks.insert(
        rec.header.pid,
        fd,
        SockInfo {
            domain: u16::try_from(rec.args[0]).unwrap_or(0),
            sock_type: (rec.args[1] & SOCK_TYPE_MASK) as u16,
            protocol: rec.args[2] as u32 as i32,
            local: None,
        },
    );
}

/// The body of a `connect`, `bind`, `listen` or `accept` record and its result.
pub(super) fn body(rec: &Syscall, op: NetOp, ret: Option<i64>, t: &mut Tables<'_>) -> EventBody {
    let pid = rec.header.pid;
    let fd = fd_arg(rec.args[0]);
    let success =
        matches!(ret, Some(r) if r >= 0) || (op == NetOp::Connect && ret == Some(EINPROGRESS));
    let named = if op == NetOp::Listen {
        sockaddr::decode(&[])
    } else {
        sockaddr::decode(syscall_bytes(rec, 0))
    };
    let known = t.socks.get(pid, fd).cloned();
    let mut sock = known.clone().unwrap_or_default();
    if named.domain != 0 && (op != NetOp::Accept || sock.domain == 0) {
        sock.domain = named.domain;
    }
    let mut n = model::Net {
        op,
        fd,
        backlog: if op == NetOp::Listen {
            fd_arg(rec.args[1])
        } else {
            0
        },
        ret,
        success,
        ..model::Net::default()
    };
    match op {
        NetOp::Connect => connect(rec, &named, &mut sock, &mut n, t),
        NetOp::Bind => bind(rec, &named, &mut sock, &mut n, t),
        NetOp::Listen => listen(rec, &mut sock, &mut n, t),
        NetOp::Accept => accept(rec, &named, &mut sock, &mut n, t),
    }
    n.family = sockaddr::family_name(sock.domain);
    if n.protocol == NetProtocol::Unknown {
        n.protocol = sock.transport();
    }
    if success && known.as_ref() != Some(&sock) {
        t.socks.insert(pid, fd, sock);
    }
    EventBody::Net(n)
}

/// Fills the local end of a parked connect once the kernel reported it.
pub(super) fn complete_connect(n: &mut model::Net, local: End) {
    (n.local_address, n.local_port) = (local.0.to_string(), local.1);
}

fn connect(
    rec: &Syscall,
    named: &SockAddr,
    sock: &mut SockInfo,
    n: &mut model::Net,
    t: &mut Tables<'_>,
) {
    (n.address, n.port) = (named.address.clone(), named.port);
    (n.remote_address, n.remote_port) = (named.address.clone(), named.port);
    if let Some(local) = &sock.local {
        (n.local_address, n.local_port) = (local.address.clone(), local.port);
    }
    let remote = named
        .address
        .parse::<IpAddr>()
        .ok()
        .map(|ip| (ip, named.port));
    match (sock.domain, remote) {
        (AF_UNIX, _) => n.path = unix_path(rec, &named.address, Last::Follow, t),
        (AF_INET | AF_INET6, Some(remote)) if n.success => {
            let (tid, since) = (rec.header.tid, rec.header.ktime_ns);
            if let Some(skaddr) = t.tcp.take_connect(tid, since, remote) {
                learn_type(sock, true);
                match t.tcp.active(skaddr) {
                    Some((local, _)) => complete_connect(n, local),
                    // Under way (non-blocking): held until the kernel reports the local end.
                    None => t.tcp.park(skaddr),
                }
            } else if sock.sock_type != SOCK_STREAM
                && let Some((tcp, found)) = lookup_inet(rec.header.pid, n.fd, sock, t)
                && found.remote == remote
            {
                (n.local_address, n.local_port) = (found.local.0.to_string(), found.local.1);
                learn_type(sock, tcp);
            }
        }
        _ => {}
    }
}

fn bind(
    rec: &Syscall,
    named: &SockAddr,
    sock: &mut SockInfo,
    n: &mut model::Net,
    t: &mut Tables<'_>,
) {
    (n.address, n.port) = (named.address.clone(), named.port);
    let mut local = Endpoint {
        address: named.address.clone(),
        port: named.port,
        path: String::new(),
    };
    match sock.domain {
        AF_UNIX => local.path = unix_path(rec, &named.address, Last::NoFollow, t),
        // A UDP port the kernel picked; a TCP one is known at `listen` or `connect`.
        AF_INET | AF_INET6 if n.success && named.port == 0 && sock.sock_type != SOCK_STREAM => {
            if let Some((tcp, found)) = lookup_inet(rec.header.pid, n.fd, sock, t) {
                local.port = found.local.1;
                learn_type(sock, tcp);
            }
        }
        _ => {}
    }
    (n.local_address, n.local_port, n.path) =
        (local.address.clone(), local.port, local.path.clone());
    if n.success {
        sock.local = Some(local);
    }
}

fn listen(rec: &Syscall, sock: &mut SockInfo, n: &mut model::Net, t: &mut Tables<'_>) {
    let pid = rec.header.pid;
    if let Some((ip, port)) = t.tcp.take_listen(rec.header.tid, rec.header.ktime_ns) {
        sock.domain = if ip.is_ipv4() { AF_INET } else { AF_INET6 };
        learn_type(sock, true);
        sock.local = Some(Endpoint {
            address: ip.to_string(),
            port,
            path: String::new(),
        });
    } else if sock.local.is_none() && matches!(sock.domain, AF_UNIX | 0) {
        // A unix socket bound before the agent saw it.
        if let Some(Found::Unix(u)) = lookup(pid, n.fd, &[Table::Unix], t) {
            sock.domain = AF_UNIX;
            sock.sock_type = u.sock_type;
            let path = unix_path(rec, &u.path, Last::NoFollow, t);
            sock.local = Some(Endpoint {
                address: u.path,
                port: 0,
                path,
            });
        }
    }
    if let Some(local) = &sock.local {
        (n.address, n.port) = (local.address.clone(), local.port);
        (n.local_address, n.local_port, n.path) =
            (local.address.clone(), local.port, local.path.clone());
    }
}

fn accept(
    rec: &Syscall,
    peer: &SockAddr,
    listener: &mut SockInfo,
    n: &mut model::Net,
    t: &mut Tables<'_>,
) {
    let pid = rec.header.pid;
    (n.address, n.port) = (peer.address.clone(), peer.port);
    (n.remote_address, n.remote_port) = (peer.address.clone(), peer.port);
    let Some(new_fd) = n.ret.filter(|r| *r >= 0) else {
        return;
    };
    let mut conn = SockInfo {
        local: listener.local.clone(),
        ..listener.clone()
    };
    let peer_ip = peer.address.parse::<IpAddr>().ok();
    match (conn.domain, peer_ip) {
        (AF_UNIX, _) => {
            if conn.local.is_none()
                && let Some(Found::Unix(u)) = lookup(pid, new_fd, &[Table::Unix], t)
            {
                let path = unix_path(rec, &u.path, Last::NoFollow, t);
                conn.local = Some(Endpoint {
                    address: u.path,
                    port: 0,
                    path,
                });
            }
        }
        (_, Some(ip)) => {
            let port = conn.local.as_ref().map(|l| l.port).filter(|p| *p != 0);
            if let Some((local_ip, local_port)) = t.tcp.take_accepted((ip, peer.port), port) {
                conn.domain = if local_ip.is_ipv4() {
                    AF_INET
                } else {
                    AF_INET6
                };
                learn_type(&mut conn, true);
                learn_type(listener, true);
                conn.local = Some(Endpoint {
                    address: local_ip.to_string(),
                    port: local_port,
                    path: String::new(),
                });
            } else if let Some(local) = conn.local.as_mut()
                && local
                    .address
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_unspecified())
            {
                // The port is the listener's; which of the host's addresses was dialled is not known.
                local.address.clear();
            }
        }
        _ => {}
    }
    if let Some(local) = &conn.local {
        (n.local_address, n.local_port, n.path) =
            (local.address.clone(), local.port, local.path.clone());
    }
    n.protocol = conn.transport();
    if listener.domain == 0 {
        listener.domain = conn.domain;
    }
    t.socks.insert(pid, new_fd, conn);
}

/// Records the transport the socket turned out to have.
fn learn_type(sock: &mut SockInfo, tcp: bool) {
    if sock.sock_type == 0 {
        sock.sock_type = if tcp { SOCK_STREAM } else { SOCK_DGRAM };
    }
}

/// The socket of `fd` in the UDP tables of its family (never the TCP ones, see the module doc).
fn lookup_inet(
    pid: u32,
    fd: i64,
    sock: &SockInfo,
    t: &mut Tables<'_>,
) -> Option<(bool, netproc::InetSocket)> {
    let tables: &[Table] = match sock.domain {
        AF_INET => &[Table::Udp],
        AF_INET6 => &[Table::Udp6],
        _ => &[Table::Udp, Table::Udp6],
    };
    match lookup(pid, fd, tables, t)? {
        Found::Inet { tcp, socket } => Some((tcp, socket)),
        Found::Unix(_) => None,
    }
}

/// The socket `fd` of `pid` refers to, in the first of `tables` that holds it; `None` also when the
/// lookup budget is spent.
fn lookup(pid: u32, fd: i64, tables: &[Table], t: &mut Tables<'_>) -> Option<Found> {
    if !t.socks.allow_lookup() {
        return None;
    }
    let root = t.procs.proc_root();
    let inode = netproc::socket_inode(root, pid, fd)?;
    netproc::find(root, pid, inode, tables)
}

/// The canonical path of a unix socket address (empty for abstract and unnamed ones).
fn unix_path(rec: &Syscall, address: &str, last: Last, t: &mut Tables<'_>) -> String {
    if address.is_empty() || address.starts_with('@') {
        return String::new();
    }
    let p = resolve_at(rec.header.pid, rec.header.tid, address, AT_FDCWD, last, t);
    if p.resolved { p.path } else { String::new() }
}
