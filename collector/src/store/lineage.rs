//! What the store keeps and answers for process lineage: connection ends ([`Endpoint`]), what a record
//! tells about a process ([`LineageKey`]), and the two lookups the lineage walk makes ([`ProcessQuery`],
//! [`FlowQuery`]).
//!
//! A record's [`LineageKey`] is derived with its other searchable columns (`columns.rs`): a successful exec
//! names the process that ran it, a fork the process it created, a TCP connect or accept whose ends are
//! both known the process that made it. Backends index these keys so that each lookup is an index range,
//! not a scan.

use std::net::IpAddr;

/// One end of a connection: an address, normalized ([`normalize_address`]), and a port, both known.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// The address: an IP address in canonical text, or a unix socket path.
    pub address: String,
    /// The port (never 0).
    pub port: u16,
}

impl Endpoint {
    /// The end `address`:`port`, normalized; `None` when it is not known (an empty address, or port 0).
    pub fn known(address: &str, port: u16) -> Option<Endpoint> {
        (!address.is_empty() && port != 0).then(|| Endpoint {
            address: normalize_address(address),
            port,
        })
    }

    /// Whether the address is a loopback address (`127.0.0.0/8`, `::1`): an end that never leaves its
    /// host's kernel.
    pub fn is_loopback(&self) -> bool {
        self.address
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
    }
}

/// An address as stored and compared: an IP address in its canonical text (an IPv4-mapped IPv6 address as
/// the IPv4 address it maps, `::ffff:10.0.0.1` as `10.0.0.1`; IPv6 compressed and lower-case); anything
/// else (a unix socket path, an address with a zone) as given.
pub fn normalize_address(address: &str) -> String {
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => address.to_owned(),
    }
}

/// Which end of a TCP connection an event is: the active open or the passive one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowSide {
    /// A `connect`: its local end is the connection's client end, its remote end the server end.
    Connect,
    /// An `accept`: its remote end is the client end, its local end the server end.
    Accept,
}

/// What a record tells the lineage walk about a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LineageRole {
    /// A successful exec by the process.
    Exec,
    /// The fork that created the process (the record's own process is its parent).
    Fork,
    /// A TCP connect or accept by the process, with both ends known.
    Flow(FlowSide),
}

impl LineageRole {
    /// The role's name, as stored (`exec`, `fork`, `connect`, `accept`).
    pub fn as_str(self) -> &'static str {
        match self {
            LineageRole::Exec => "exec",
            LineageRole::Fork => "fork",
            LineageRole::Flow(FlowSide::Connect) => "connect",
            LineageRole::Flow(FlowSide::Accept) => "accept",
        }
    }

    /// The role called `name`, if any.
    pub fn parse(name: &str) -> Option<LineageRole> {
        [
            LineageRole::Exec,
            LineageRole::Fork,
            LineageRole::Flow(FlowSide::Connect),
            LineageRole::Flow(FlowSide::Accept),
        ]
        .into_iter()
        .find(|role| role.as_str() == name)
    }
}

/// The process a record is about for the lineage walk, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LineageKey {
    /// What the record tells.
    pub role: LineageRole,
    /// The process: for a fork, the child; otherwise the record's own process.
    pub pid: u32,
    /// When that process started (ns since the Unix epoch; for a fork, the fork's time), if known.
    pub start_ns: Option<u64>,
}

/// The records of one process of one host that play `role` (a process is its host, pid and start time:
/// a reused pid is another process).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessQuery {
    /// The host.
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// The role.
    pub role: LineageRole,
    /// The process started at or after this time (ns since the Unix epoch).
    pub start_from_ns: u64,
    /// … and at or before this one (equal to `start_from_ns` for one exact start time).
    pub start_to_ns: u64,
    /// Event time at or after (ns since the Unix epoch).
    pub since_ns: Option<u64>,
    /// Event time at or before (ns since the Unix epoch).
    pub through_ns: Option<u64>,
    /// Whether pending records are included; without it, only verified ones.
    pub pending: bool,
    /// At most this many records.
    pub limit: u32,
}

/// The connects or accepts of TCP connections between two ends, within a time range, on any host (or one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowQuery {
    /// Which side to find.
    pub side: FlowSide,
    /// Only this host's; `None`: every host's.
    pub host: Option<String>,
    /// The client end (a connect's local end, an accept's remote end).
    pub client: Endpoint,
    /// The server end (a connect's remote end, an accept's local end); `None`: any.
    pub server: Option<Endpoint>,
    /// Event time at or after (ns since the Unix epoch).
    pub since_ns: u64,
    /// Event time at or before (ns since the Unix epoch).
    pub through_ns: u64,
    /// Whether pending records are included; without it, only verified ones.
    pub pending: bool,
    /// At most this many records.
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::{Endpoint, FlowSide, LineageRole, normalize_address};

    #[test]
    fn addresses_normalize_to_one_text() {
        assert_eq!(normalize_address("::ffff:10.0.0.1"), "10.0.0.1");
        assert_eq!(normalize_address("::FFFF:0a00:0001"), "10.0.0.1");
        assert_eq!(normalize_address("2001:DB8:0:0::1"), "2001:db8::1");
        assert_eq!(normalize_address("127.0.0.1"), "127.0.0.1");
        assert_eq!(normalize_address("/run/x.sock"), "/run/x.sock");
        assert_eq!(normalize_address("fe80::1%eth0"), "fe80::1%eth0");
        // An IPv4-compatible address (deprecated) is an IPv6 address, not the IPv4 one.
        assert_eq!(normalize_address("::10.0.0.1"), "::a00:1");
    }

    #[test]
    fn loopback_ends_are_told() {
        let end = |a: &str| Endpoint::known(a, 1).unwrap();
        assert!(end("127.0.0.1").is_loopback());
        assert!(end("127.1.2.3").is_loopback());
        assert!(end("::ffff:127.0.0.1").is_loopback());
        assert!(end("::1").is_loopback());
        assert!(!end("10.0.0.1").is_loopback());
        assert!(!end("/run/x.sock").is_loopback());
    }

    #[test]
    fn unknown_ends_are_none() {
        assert_eq!(Endpoint::known("", 80), None);
        assert_eq!(Endpoint::known("10.0.0.1", 0), None);
        assert_eq!(
            Endpoint::known("::ffff:10.0.0.1", 80),
            Some(Endpoint {
                address: "10.0.0.1".into(),
                port: 80
            })
        );
    }

    #[test]
    fn roles_round_trip() {
        for role in [
            LineageRole::Exec,
            LineageRole::Fork,
            LineageRole::Flow(FlowSide::Connect),
            LineageRole::Flow(FlowSide::Accept),
        ] {
            assert_eq!(LineageRole::parse(role.as_str()), Some(role));
        }
        assert_eq!(LineageRole::parse("bind"), None);
    }
}
