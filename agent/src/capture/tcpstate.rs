//! TCP connection ends from the kernel's state-change records ([`SockState`]), kept until the syscall
//! they belong to is converted:
//!
//! - a `SYN_SENT` in a task is the socket its pending `connect` uses (by thread, with the address dialled);
//! - `SYN_SENT → ESTABLISHED` (or `→ CLOSE`) gives that socket's local end, by socket;
//! - `→ LISTEN` in a task is the bound address of its pending `listen`, by thread;
//! - `SYN_RECV → ESTABLISHED` is a connection some listener will accept: its local end by (peer, local
//!   port), taken by the `accept` that names that peer.
//!
//! Every table is bounded (oldest first out), so records no syscall claims (io_uring connects, sockets of
//! ignored processes) cannot grow them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use agent_common::wire::{
    SockState, TCP_CLOSE, TCP_ESTABLISHED, TCP_LISTEN, TCP_SYN_RECV, TCP_SYN_SENT,
};

use crate::bounded::BoundedMap;

use super::sockaddr::AF_INET6;

/// Entries each table keeps.
const CAPACITY: usize = 1 << 14;

/// An address and port.
pub type End = (IpAddr, u16);

/// A `SYN_SENT` seen in a task: when, which socket, which peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SynSent {
    ktime_ns: u64,
    skaddr: u64,
    remote: End,
}

/// The kernel's TCP state changes, by the syscall that will claim them.
#[derive(Debug)]
pub struct TcpStates {
    syn_sent: BoundedMap<u32, SynSent>,
    listening: BoundedMap<u32, (u64, End)>,
    active: BoundedMap<u64, (End, End)>,
    passive: BoundedMap<(IpAddr, u16, u16), IpAddr>,
    /// A connect whose local end is not known yet (set by the conversion, taken by the assembler).
    park: Option<u64>,
}

impl Default for TcpStates {
    fn default() -> TcpStates {
        TcpStates {
            syn_sent: BoundedMap::new(CAPACITY),
            listening: BoundedMap::new(CAPACITY),
            active: BoundedMap::new(CAPACITY),
            passive: BoundedMap::new(CAPACITY),
            park: None,
        }
    }
}

/// Local and remote end of a record.
fn ends(rec: &SockState) -> (End, End) {
    let (local, remote) = if rec.family == AF_INET6 {
        (
            IpAddr::V6(Ipv6Addr::from(rec.saddr_v6)),
            IpAddr::V6(Ipv6Addr::from(rec.daddr_v6)),
        )
    } else {
        (
            IpAddr::V4(Ipv4Addr::from(rec.saddr)),
            IpAddr::V4(Ipv4Addr::from(rec.daddr)),
        )
    };
    ((local, rec.sport), (remote, rec.dport))
}

impl TcpStates {
    /// Takes in one record; returns the socket whose active end just became known (a parked connect may
    /// be waiting for it).
    pub fn on_record(&mut self, rec: &SockState) -> Option<u64> {
        let (local, remote) = ends(rec);
        match (rec.oldstate, rec.newstate) {
            (_, TCP_SYN_SENT) => {
                let sent = SynSent {
                    ktime_ns: rec.header.ktime_ns,
                    skaddr: rec.skaddr,
                    remote,
                };
                self.syn_sent.insert(rec.header.tid, sent);
                None
            }
            (_, TCP_LISTEN) => {
                self.listening
                    .insert(rec.header.tid, (rec.header.ktime_ns, local));
                None
            }
            (TCP_SYN_SENT, TCP_ESTABLISHED | TCP_CLOSE) => {
                self.active.insert(rec.skaddr, (local, remote));
                Some(rec.skaddr)
            }
            (TCP_SYN_RECV, TCP_ESTABLISHED) => {
                self.passive.insert((remote.0, remote.1, local.1), local.0);
                None
            }
            _ => None,
        }
    }

    /// The socket thread `tid`'s `connect` (entered at `since_ns`, to `remote`) uses, when the kernel
    /// reported it.
    pub fn take_connect(&mut self, tid: u32, since_ns: u64, remote: End) -> Option<u64> {
        let sent = self.syn_sent.remove(&tid)?;
        (sent.ktime_ns >= since_ns && sent.remote == remote).then_some(sent.skaddr)
    }

    /// The ends of socket `skaddr` once its connection was set up (or failed after the port was picked).
    pub fn active(&mut self, skaddr: u64) -> Option<(End, End)> {
        self.active.remove(&skaddr)
    }

    /// The address thread `tid`'s `listen` (entered at `since_ns`) bound, when the kernel reported it.
    pub fn take_listen(&mut self, tid: u32, since_ns: u64) -> Option<End> {
        let (at, local) = self.listening.remove(&tid)?;
        (at >= since_ns).then_some(local)
    }

    /// The local end of the connection from `peer` an `accept` returned: the one on `local_port` when it
    /// is known, else the only one from that peer (several are ambiguous: none).
    pub fn take_accepted(&mut self, peer: End, local_port: Option<u16>) -> Option<End> {
        let key = match local_port {
            Some(port) => (peer.0, peer.1, port),
            None => {
                let mut keys = self
                    .passive
                    .keys_where(|(ip, port, _)| *ip == peer.0 && *port == peer.1);
                match keys.as_slice() {
                    [_] => keys.pop()?,
                    _ => return None,
                }
            }
        };
        let ip = self.passive.remove(&key)?;
        Some((ip, key.2))
    }

    /// Asks the assembler to hold the connect being converted until socket `skaddr`'s local end is known.
    pub fn park(&mut self, skaddr: u64) {
        self.park = Some(skaddr);
    }

    /// The socket the connect just converted waits for, if any.
    pub fn take_park(&mut self) -> Option<u64> {
        self.park.take()
    }
}

#[cfg(test)]
mod tests {
    use agent_common::wire::{RecordHeader, RecordKind};

    use super::*;

    fn rec(tid: u32, t: u64, sk: u64, old: u32, new: u32, sport: u16, dport: u16) -> SockState {
        SockState {
            header: RecordHeader {
                kind: RecordKind::SockState as u32,
                aux: 0,
                ktime_ns: t,
                pid: tid,
                tid,
                uid: 0,
                gid: 0,
                comm: [0; 16],
                cgroup_id: 0,
            },
            skaddr: sk,
            oldstate: old,
            newstate: new,
            sport,
            dport,
            family: 2,
            reserved: 0,
            saddr: [10, 0, 0, 1],
            daddr: [10, 0, 0, 2],
            saddr_v6: [0; 16],
            daddr_v6: [0; 16],
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_connect_learns_its_socket_then_its_local_port() {
        let mut t = TcpStates::default();
        assert_eq!(
            t.on_record(&rec(5, 10, 0xa, TCP_CLOSE, TCP_SYN_SENT, 0, 22)),
            None
        );
        assert_eq!(
            t.take_connect(5, 11, (ip("10.0.0.2"), 22)),
            None,
            "seen before the connect"
        );
        t.on_record(&rec(5, 10, 0xa, TCP_CLOSE, TCP_SYN_SENT, 0, 22));
        assert_eq!(
            t.take_connect(5, 9, (ip("10.0.0.3"), 22)),
            None,
            "another peer"
        );
        t.on_record(&rec(5, 10, 0xa, TCP_CLOSE, TCP_SYN_SENT, 0, 22));
        assert_eq!(t.take_connect(5, 9, (ip("10.0.0.2"), 22)), Some(0xa));
        let est = rec(0, 12, 0xa, TCP_SYN_SENT, TCP_ESTABLISHED, 40000, 22);
        assert_eq!(t.on_record(&est), Some(0xa));
        assert_eq!(
            t.active(0xa),
            Some(((ip("10.0.0.1"), 40000), (ip("10.0.0.2"), 22)))
        );
        assert_eq!(t.active(0xa), None, "taken once");
    }

    #[test]
    fn listens_and_accepts() {
        let mut t = TcpStates::default();
        t.on_record(&rec(7, 20, 0xb, TCP_CLOSE, TCP_LISTEN, 8080, 0));
        assert_eq!(t.take_listen(7, 19), Some((ip("10.0.0.1"), 8080)));
        assert_eq!(t.take_listen(7, 19), None);
        // Two connections from one peer port to two local ports: by port, or not at all.
        t.on_record(&rec(0, 30, 0xc, TCP_SYN_RECV, TCP_ESTABLISHED, 8080, 5000));
        t.on_record(&rec(0, 31, 0xd, TCP_SYN_RECV, TCP_ESTABLISHED, 9090, 5000));
        let peer = (ip("10.0.0.2"), 5000);
        assert_eq!(t.take_accepted(peer, None), None, "ambiguous");
        assert_eq!(
            t.take_accepted(peer, Some(9090)),
            Some((ip("10.0.0.1"), 9090))
        );
        assert_eq!(t.take_accepted(peer, None), Some((ip("10.0.0.1"), 8080)));
        assert_eq!(t.take_accepted(peer, None), None);
        // Other transitions are not kept.
        assert_eq!(
            t.on_record(&rec(0, 40, 0xe, TCP_ESTABLISHED, TCP_CLOSE, 1, 2)),
            None
        );
    }

    #[test]
    fn the_tables_are_bounded() {
        let mut t = TcpStates::default();
        for i in 0..(CAPACITY as u64 + 100) {
            t.on_record(&rec(i as u32, i, i, TCP_CLOSE, TCP_SYN_SENT, 0, 1));
            t.on_record(&rec(0, i, i, TCP_SYN_SENT, TCP_ESTABLISHED, 1, 1));
        }
        assert!(t.syn_sent.len() <= CAPACITY && t.active.len() <= CAPACITY);
    }
}
