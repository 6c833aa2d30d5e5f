//! Which collector addresses the shipper may talk to in plain HTTP.
//!
//! Over plain HTTP the bearer token and the acknowledgements that let retention delete records cross the
//! network unprotected, so `http://` is accepted only to a loopback collector (`localhost`, `127.0.0.0/8`,
//! `::1`) unless the operator sets `ship.insecure_http: true` (e.g. behind a TLS-terminating sidecar on
//! another address).

use std::net::IpAddr;

/// Why a collector URL is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Not an `http://` or `https://` URL with a host.
    #[error("collector `{0}` is not an http(s) URL with a host")]
    NotHttp(String),
    /// Plain HTTP to an address that is not loopback.
    #[error(
        "collector `{0}` is plain HTTP to a non-loopback address: the token and the acknowledgements that \
         let retention delete records would cross the network unprotected; use https:// or set \
         ship.insecure_http: true"
    )]
    InsecureHttp(String),
}

/// Checks `collector` is `https://`, or `http://` to loopback, or `http://` anywhere with `insecure_http`.
pub fn check(collector: &str, insecure_http: bool) -> Result<(), TransportError> {
    let url =
        reqwest::Url::parse(collector).map_err(|_| TransportError::NotHttp(collector.into()))?;
    let host = url
        .host()
        .ok_or_else(|| TransportError::NotHttp(collector.into()))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if insecure_http || is_loopback(&host) => Ok(()),
        "http" => Err(TransportError::InsecureHttp(collector.into())),
        _ => Err(TransportError::NotHttp(collector.into())),
    }
}

/// Whether `host` names this machine's loopback interface without a name lookup.
fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        url::Host::Ipv6(ip) => {
            IpAddr::V6(*ip).is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback_unless_told() {
        for ok in [
            "https://collector.example:8443",
            "https://10.0.0.5",
            "http://127.0.0.1:9000",
            "http://127.8.9.10",
            "http://localhost:1",
            "http://LOCALHOST",
            "http://[::1]:9000",
            "http://[::ffff:127.0.0.1]:9000",
        ] {
            assert_eq!(check(ok, false), Ok(()), "{ok}");
        }
        for bad in [
            "http://10.0.0.5:9000",
            "http://collector.example",
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.io",
            "http://0.0.0.0:9000",
            "http://[::]:9000",
            "http://2130706433", // 127.0.0.1 spelled as a number: url normalizes it, so it is loopback
        ] {
            let r = check(bad, false);
            if bad == "http://2130706433" {
                assert_eq!(r, Ok(()), "url parses decimal IPv4 hosts");
                continue;
            }
            assert_eq!(r, Err(TransportError::InsecureHttp(bad.into())), "{bad}");
            assert_eq!(check(bad, true), Ok(()), "{bad} with insecure_http");
        }
        for not in [
            "ftp://x",
            "collector:9000",
            "http://",
            "file:///tmp/x",
            "unix:/run/x",
        ] {
            assert!(
                matches!(check(not, true), Err(TransportError::NotHttp(_))),
                "{not}"
            );
        }
    }
}
