//! Sockets the agent has seen created (`socket`, `accept`) or bound, by process and descriptor: their
//! family, type and protocol, and the local end once known, so later network events on the descriptor
//! carry the protocol and both ends. Bounded: the oldest entries are evicted first; a process's entries
//! go when it exits.

use auditloop_model::NetProtocol;

use crate::bounded::BoundedMap;

use super::budget::Budget;
use super::sockaddr::{AF_INET, AF_INET6, AF_UNIX};

/// Lookups in the kernel's socket tables allowed per second (see `super::budget`).
pub const LOOKUPS_PER_SECOND: u32 = 200;

/// `SOCK_STREAM`.
pub const SOCK_STREAM: u16 = 1;
/// `SOCK_DGRAM`.
pub const SOCK_DGRAM: u16 = 2;
const IPPROTO_TCP: i32 = 6;
const IPPROTO_UDP: i32 = 17;

/// One end of a socket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// IP address text or unix socket path (`@name` for abstract).
    pub address: String,
    /// Port (inet, inet6), else 0.
    pub port: u16,
    /// For a unix socket bound to a file: its canonical path.
    pub path: String,
}

/// What the agent knows of one socket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SockInfo {
    /// `AF_*` family; 0 when unknown.
    pub domain: u16,
    /// `SOCK_*` type without the flag bits; 0 when unknown.
    pub sock_type: u16,
    /// Protocol number as passed to `socket` (0: the family's default).
    pub protocol: i32,
    /// The local end, once bound or looked up.
    pub local: Option<Endpoint>,
}

impl SockInfo {
    /// The transport, as far as it is known.
    pub fn transport(&self) -> NetProtocol {
        transport(self.domain, self.sock_type, self.protocol)
    }
}

/// The transport of a socket of family `domain`, type `sock_type` and protocol `protocol`.
pub fn transport(domain: u16, sock_type: u16, protocol: i32) -> NetProtocol {
    match (domain, sock_type, protocol) {
        (0, _, _) => NetProtocol::Unknown,
        (AF_UNIX, _, _) => NetProtocol::Unix,
        (AF_INET | AF_INET6, 0, _) => NetProtocol::Unknown,
        (AF_INET | AF_INET6, SOCK_STREAM, 0 | IPPROTO_TCP) => NetProtocol::Tcp,
        (AF_INET | AF_INET6, SOCK_DGRAM, 0 | IPPROTO_UDP) => NetProtocol::Udp,
        _ => NetProtocol::Other,
    }
}

/// (pid, fd) → socket.
#[derive(Debug)]
pub struct SocketTable {
    entries: BoundedMap<(u32, i64), SockInfo>,
    lookups: Budget,
}

impl SocketTable {
    /// An empty table of at most `capacity` sockets.
    pub fn new(capacity: usize) -> SocketTable {
        SocketTable {
            entries: BoundedMap::new(capacity),
            lookups: Budget::new(LOOKUPS_PER_SECOND),
        }
    }

    /// Whether a lookup in the kernel's socket tables fits the budget now (and spends it).
    pub fn allow_lookup(&mut self) -> bool {
        self.lookups.take()
    }

    /// Remembers a socket (replacing what the descriptor referred to before).
    pub fn insert(&mut self, pid: u32, fd: i64, info: SockInfo) {
        self.entries.insert((pid, fd), info);
    }

    /// What is known of `fd` of `pid`.
    pub fn get(&self, pid: u32, fd: i64) -> Option<&SockInfo> {
        self.entries.get(&(pid, fd))
    }

    /// Number of sockets known.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Forgets every socket of an ended process.
    pub fn remove_process(&mut self, pid: u32) {
        for key in self.entries.keys_where(|(p, _)| *p == pid) {
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports() {
        assert_eq!(transport(AF_INET, SOCK_STREAM, 0), NetProtocol::Tcp);
        assert_eq!(transport(AF_INET6, SOCK_DGRAM, 17), NetProtocol::Udp);
        assert_eq!(transport(AF_UNIX, SOCK_DGRAM, 0), NetProtocol::Unix);
        assert_eq!(transport(AF_INET, 3, 1), NetProtocol::Other);
        assert_eq!(transport(AF_INET, SOCK_STREAM, 132), NetProtocol::Other);
        assert_eq!(transport(16, 3, 0), NetProtocol::Other);
        assert_eq!(transport(0, 0, 0), NetProtocol::Unknown);
        assert_eq!(transport(AF_INET, 0, 0), NetProtocol::Unknown);
    }

    #[test]
    fn bounded_and_forgotten_with_the_process() {
        let mut t = SocketTable::new(2);
        let info = SockInfo {
            domain: AF_INET,
            sock_type: SOCK_STREAM,
            ..SockInfo::default()
        };
        t.insert(1, 3, info.clone());
        t.insert(1, 4, info.clone());
        t.insert(2, 3, info);
        assert_eq!(t.len(), 2);
        assert!(t.get(1, 3).is_none(), "oldest evicted");
        t.remove_process(1);
        assert!(t.get(1, 4).is_none());
        assert_eq!(t.get(2, 3).map(SockInfo::transport), Some(NetProtocol::Tcp));
    }
}
