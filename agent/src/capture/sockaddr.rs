//! Decoding socket addresses copied from user memory (connect, bind, accept).

use std::net::{Ipv4Addr, Ipv6Addr};

/// `AF_UNIX`.
pub const AF_UNIX: u16 = 1;
/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;

/// The family name of an `AF_*` number (`none` for 0).
pub fn family_name(domain: u16) -> String {
    match domain {
        0 => "none".into(),
        AF_UNIX => "unix".into(),
        AF_INET => "inet".into(),
        AF_INET6 => "inet6".into(),
        other => format!("family {other}"),
    }
}

/// A decoded socket address: family name, address text (IP or unix path), port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SockAddr {
    /// The `AF_*` number (0 when the bytes were too short to hold one).
    pub domain: u16,
    /// `inet`, `inet6`, `unix`, `none` or `family <n>`.
    pub family: String,
    /// IP address, unix path (`@name` for the abstract namespace), or empty.
    pub address: String,
    /// Port (inet, inet6), else 0.
    pub port: u16,
}

/// Decodes `bytes` (a `struct sockaddr_*` as the process passed it); short or unknown input gives what can
/// be told, never a panic.
pub fn decode(bytes: &[u8]) -> SockAddr {
    let none = |domain: u16, family: String| SockAddr {
        domain,
        family,
        address: String::new(),
        port: 0,
    };
    let Some(family) = bytes.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]])) else {
        return none(0, "none".into());
    };
    let port = || {
        bytes
            .get(2..4)
            .map_or(0, |p| u16::from_be_bytes([p[0], p[1]]))
    };
    match family {
        AF_INET => match bytes.get(4..8) {
            Some(a) => SockAddr {
                domain: family,
                family: "inet".into(),
                address: Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string(),
                port: port(),
            },
            None => none(family, "inet".into()),
        },
        AF_INET6 => match bytes.get(8..24).and_then(|a| <[u8; 16]>::try_from(a).ok()) {
            Some(a) => SockAddr {
                domain: family,
                family: "inet6".into(),
                address: Ipv6Addr::from(a).to_string(),
                port: port(),
            },
            None => none(family, "inet6".into()),
        },
        AF_UNIX => {
            let path = bytes.get(2..).unwrap_or(&[]);
            let address = match path.first() {
                Some(0) => {
                    let name = &path[1..];
                    let end = name.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                    format!("@{}", String::from_utf8_lossy(&name[..end]))
                }
                _ => {
                    let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
                    String::from_utf8_lossy(&path[..end]).into_owned()
                }
            };
            SockAddr {
                domain: family,
                family: "unix".into(),
                address,
                port: 0,
            }
        }
        other => none(other, family_name(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_inet6_unix() {
        let mut v4 = vec![2, 0, 0x1f, 0x90, 127, 0, 0, 1];
        v4.extend([0; 8]);
        assert_eq!(
            decode(&v4),
            SockAddr {
                domain: AF_INET,
                family: "inet".into(),
                address: "127.0.0.1".into(),
                port: 8080
            }
        );
        let mut v6 = vec![10, 0, 0, 22, 0, 0, 0, 0];
        v6.extend(Ipv6Addr::LOCALHOST.octets());
        assert_eq!(decode(&v6).address, "::1");
        assert_eq!(decode(&v6).port, 22);
        let mut unix = vec![1, 0];
        unix.extend(b"/run/x.sock\0");
        assert_eq!(decode(&unix).address, "/run/x.sock");
        assert_eq!(decode(&[1, 0, 0, b'a', b'b']).address, "@ab");
    }

    #[test]
    fn short_input_is_not_a_panic() {
        assert_eq!(decode(&[]).family, "none");
        assert_eq!(decode(&[2, 0, 1]).family, "inet");
        assert_eq!(decode(&[10, 0, 1, 2, 3]).address, "");
        assert_eq!(decode(&[99, 0]).family, "family 99");
    }
}
