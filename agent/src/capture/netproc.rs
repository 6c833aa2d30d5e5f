//! The kernel's socket tables as `/proc/<pid>/net/{tcp,tcp6,udp,udp6,unix}` show them (in the process's
//! network namespace), looked up by socket inode: the getsockname/getpeername of a descriptor the agent
//! cannot ask the kernel about directly (no kernel reads under lockdown).
//!
//! A lookup reads one table, costing time in proportion to the sockets of that namespace; callers look up
//! only what the syscall records do not already tell. Parsing never panics on odd lines.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// One of the kernel's socket tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// `net/tcp`.
    Tcp,
    /// `net/tcp6`.
    Tcp6,
    /// `net/udp`.
    Udp,
    /// `net/udp6`.
    Udp6,
    /// `net/unix`.
    Unix,
}

impl Table {
    fn file(self) -> &'static str {
        match self {
            Table::Tcp => "tcp",
            Table::Tcp6 => "tcp6",
            Table::Udp => "udp",
            Table::Udp6 => "udp6",
            Table::Unix => "unix",
        }
    }
}

/// TCP state `ESTABLISHED` in the `st` column.
pub const TCP_ESTABLISHED: u8 = 0x01;

/// An inet socket: both ends and the state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InetSocket {
    /// Local address and port.
    pub local: (IpAddr, u16),
    /// Remote address and port (unspecified and 0 when not connected).
    pub remote: (IpAddr, u16),
    /// The `st` column (TCP states; 07 for an unconnected UDP socket, 01 for a connected one).
    pub state: u8,
    /// Socket inode.
    pub inode: u64,
}

/// A unix socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnixSocket {
    /// Socket inode.
    pub inode: u64,
    /// `SOCK_STREAM` (1), `SOCK_DGRAM` (2), `SOCK_SEQPACKET` (5).
    pub sock_type: u16,
    /// Its bound path (`@name` for abstract ones); empty when unnamed.
    pub path: String,
}

/// A socket found in one of the tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// In `tcp`/`tcp6` (`tcp` true) or `udp`/`udp6`.
    Inet {
        /// From a TCP table.
        tcp: bool,
        /// The socket.
        socket: InetSocket,
    },
    /// In `unix`.
    Unix(UnixSocket),
}

/// The socket inode descriptor `fd` of `pid` refers to (`socket:[N]`), while it is open.
pub fn socket_inode(proc_root: &Path, pid: u32, fd: i64) -> Option<u64> {
    let link = std::fs::read_link(proc_root.join(format!("{pid}/fd/{fd}"))).ok()?;
    parse_socket_link(link.to_str()?)
}

/// `socket:[12345]` → 12345.
pub fn parse_socket_link(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The socket with `inode` in the first of `tables` that holds it, as `pid`'s network namespace shows it.
pub fn find(proc_root: &Path, pid: u32, inode: u64, tables: &[Table]) -> Option<Found> {
    tables.iter().find_map(|&table| {
        let file =
            std::fs::File::open(proc_root.join(format!("{pid}/net/{}", table.file()))).ok()?;
        let lines = BufReader::new(file).lines().skip(1).map_while(Result::ok);
        match table {
            Table::Unix => lines
                .filter_map(|l| parse_unix_line(&l))
                .find(|s| s.inode == inode)
                .map(Found::Unix),
            Table::Tcp | Table::Tcp6 | Table::Udp | Table::Udp6 => lines
                .filter_map(|l| parse_inet_line(&l))
                .find(|s| s.inode == inode)
                .map(|socket| Found::Inet {
                    tcp: matches!(table, Table::Tcp | Table::Tcp6),
                    socket,
                }),
        }
    })
}

/// Every socket of `tables` whose inode is in `inodes`, as `pid`'s network namespace shows them.
pub fn find_all(proc_root: &Path, pid: u32, inodes: &[u64], tables: &[Table]) -> Vec<InetSocket> {
    let mut out = Vec::new();
    for table in tables.iter().filter(|t| **t != Table::Unix) {
        let Ok(file) = std::fs::File::open(proc_root.join(format!("{pid}/net/{}", table.file())))
        else {
            continue;
        };
        out.extend(
            BufReader::new(file)
                .lines()
                .skip(1)
                .map_while(Result::ok)
                .filter_map(|l| parse_inet_line(&l))
                .filter(|s| inodes.contains(&s.inode)),
        );
    }
    out
}

/// One line of `net/tcp`, `tcp6`, `udp` or `udp6`:
/// `sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …`.
pub fn parse_inet_line(line: &str) -> Option<InetSocket> {
    let mut cols = line.split_whitespace();
    let _slot = cols.next()?;
    let local = parse_endpoint(cols.next()?)?;
    let remote = parse_endpoint(cols.next()?)?;
    let state = u8::from_str_radix(cols.next()?, 16).ok()?;
    let inode = cols.nth(5)?.parse().ok()?;
    Some(InetSocket {
        local,
        remote,
        state,
        inode,
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6): the address as the kernel's 32-bit words in
/// host byte order, the port in hex.
fn parse_endpoint(text: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = addr.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some((ip, port))
}

/// One line of `net/unix`: `Num RefCount Protocol Flags Type St Inode [Path]`.
pub fn parse_unix_line(line: &str) -> Option<UnixSocket> {
    let mut cols = line.split_whitespace();
    let _num = cols.next()?;
    let sock_type = u16::from_str_radix(cols.nth(3)?, 16).ok()?;
    let _state = cols.next()?;
    let inode = cols.next()?.parse().ok()?;
    // The path is the rest of the line after the seventh column (it may hold spaces).
    let mut rest = line.trim_start();
    for _ in 0..7 {
        rest = rest
            .find(char::is_whitespace)
            .map_or("", |end| rest[end..].trim_start());
    }
    let path = rest.trim_end().to_owned();
    Some(UnixSocket {
        inode,
        sock_type,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_inet_lines_of_both_families() {
        let v4 = "   0: 0100007F:B920 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 345678 1 0000000000000000 20 4 30 10 -1";
        let s = parse_inet_line(v4).unwrap();
        assert_eq!(s.local, ("127.0.0.1".parse().unwrap(), 47392));
        assert_eq!(s.remote, ("127.0.0.1".parse().unwrap(), 8080));
        assert_eq!((s.state, s.inode), (TCP_ESTABLISHED, 345678));
        let v6 = "   1: 0000000000000000FFFF00000100007F:0016 00000000000000000000000001000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 100 0 0 10 0";
        let s = parse_inet_line(v6).unwrap();
        assert_eq!(s.local, ("::ffff:127.0.0.1".parse().unwrap(), 22));
        assert_eq!(s.remote, ("::1".parse().unwrap(), 0));
        assert_eq!((s.state, s.inode), (0x0a, 99));
        assert_eq!(
            parse_inet_line("  sl  local_address rem_address   st"),
            None
        );
        assert_eq!(parse_inet_line("0: 0100007F 0100007F:1 01"), None);
        assert_eq!(parse_inet_line(""), None);
    }

    #[test]
    fn parses_unix_lines_with_and_without_paths() {
        let named = "0000000000000000: 00000002 00000000 00010000 0001 01 4242 /run/my app.sock";
        let s = parse_unix_line(named).unwrap();
        assert_eq!(
            (s.inode, s.sock_type, s.path.as_str()),
            (4242, 1, "/run/my app.sock")
        );
        let unnamed = "0000000000000000: 00000003 00000000 00000000 0002 03 77";
        assert_eq!(parse_unix_line(unnamed).unwrap().path, "");
        let abs = "0000000000000000: 00000002 00000000 00010000 0005 01 8 @/tmp/.X11-unix/X0";
        assert_eq!(parse_unix_line(abs).unwrap().sock_type, 5);
        assert_eq!(parse_unix_line("Num RefCount"), None);
    }

    #[test]
    fn socket_links() {
        assert_eq!(parse_socket_link("socket:[123]"), Some(123));
        assert_eq!(parse_socket_link("pipe:[123]"), None);
        assert_eq!(parse_socket_link("/etc/passwd"), None);
    }

    #[test]
    fn finds_this_process_s_own_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
        let root = Path::new("/proc");
        let me = std::process::id();
        let inode = socket_inode(root, me, i64::from(fd)).unwrap();
        let Some(Found::Inet { tcp, socket }) = find(root, me, inode, &[Table::Udp, Table::Tcp])
        else {
            panic!("listener not found")
        };
        assert!(tcp);
        assert_eq!(socket.local, ("127.0.0.1".parse().unwrap(), port));
        assert_eq!(socket.state, 0x0a, "listening");
    }
}
