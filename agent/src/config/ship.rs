//! The `ship` section: where and how the journal is shipped.
//!
//! `ship.collector` is one URL or a list of them (replicas of one collector over a shared database, tried
//! in order; see [`crate::ship::failover`]). Every entry is checked as a single URL always was, and an
//! error names the entry by its index and URL.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use super::ConfigError;
use crate::ship::transport::{self, TransportError};

/// Shipping the journal to a collector.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShipConfig {
    /// Collector base URLs (`http://` or `https://`): one URL, or a list of the replicas of one collector
    /// in order of preference; absent = no shipping.
    #[serde(deserialize_with = "one_or_many")]
    pub collector: Option<Vec<String>>,
    /// File holding the bearer token (required with `collector`).
    pub token_file: Option<PathBuf>,
    /// This host's id at the collector; default: the contents of `/etc/machine-id`.
    pub host_id: Option<String>,
    /// Extra CA certificate (PEM) to trust for the collector.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and private key (PEM, one file) for mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// Largest batch, in bytes of journal records (before compression).
    pub batch_max_bytes: usize,
    /// Longest a record waits for its batch to fill, in milliseconds.
    pub batch_max_ms: u64,
    /// HTTP request timeout in seconds.
    pub timeout_secs: u64,
    /// Allow plain `http://` to a collector that is not on loopback (the token and the acknowledgements
    /// that let retention delete records then cross the network unprotected).
    pub insecure_http: bool,
}

impl ShipConfig {
    /// The collector URLs, in order (empty: no shipping).
    pub fn collectors(&self) -> &[String] {
        self.collector.as_deref().unwrap_or_default()
    }

    /// Checks the shipping settings (the token file is checked when shipping starts).
    pub fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: &'static str, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            field,
            message,
        };
        if let Some(urls) = &self.collector {
            check_collectors(urls, self.insecure_http)
                .map_err(|(field, message)| invalid(field, message))?;
        }
        if !(4096..=16 * 1024 * 1024).contains(&self.batch_max_bytes) {
            return Err(invalid(
                "ship.batch_max_bytes",
                format!("{} is outside 4096..=16777216", self.batch_max_bytes),
            ));
        }
        if !(1..=60_000).contains(&self.batch_max_ms) {
            return Err(invalid(
                "ship.batch_max_ms",
                format!("{} is outside 1..=60000", self.batch_max_ms),
            ));
        }
        if !(1..=3600).contains(&self.timeout_secs) {
            return Err(invalid(
                "ship.timeout_secs",
                format!("{} is outside 1..=3600", self.timeout_secs),
            ));
        }
        Ok(())
    }
}

impl Default for ShipConfig {
    fn default() -> ShipConfig {
        ShipConfig {
            collector: None,
            token_file: None,
            host_id: None,
            ca_file: None,
            client_cert: None,
            batch_max_bytes: 1024 * 1024,
            batch_max_ms: 200,
            timeout_secs: 30,
            insecure_http: false,
        }
    }
}

/// Checks a list of collector URLs: not empty, each usable ([`transport::check`]), none twice. The error
/// is the field to name and the message, which names the entry (`ship.collector[i]`) of a longer list.
fn check_collectors(urls: &[String], insecure_http: bool) -> Result<(), (&'static str, String)> {
    if urls.is_empty() {
        return Err((
            "ship.collector",
            "the list is empty: give at least one collector URL, or leave ship.collector out to ship \
             nowhere"
                .into(),
        ));
    }
    let entry = |i: usize, message: String| {
        if urls.len() > 1 {
            format!("ship.collector[{i}]: {message}")
        } else {
            message
        }
    };
    let mut seen: Vec<(usize, Endpoint)> = Vec::with_capacity(urls.len());
    for (i, url) in urls.iter().enumerate() {
        match transport::check(url, insecure_http) {
            Ok(()) => {}
            Err(e @ TransportError::InsecureHttp(_)) => {
                return Err(("ship.insecure_http", entry(i, e.to_string())));
            }
            Err(e) => return Err(("ship.collector", entry(i, e.to_string()))),
        }
        let Some(endpoint) = Endpoint::of(url) else {
            return Err((
                "ship.collector",
                entry(i, TransportError::NotHttp(url.clone()).to_string()),
            ));
        };
        if let Some((j, _)) = seen.iter().find(|(_, e)| *e == endpoint) {
            let first = urls.get(*j).map_or("", String::as_str);
            return Err((
                "ship.collector",
                format!(
                    "ship.collector[{i}] `{url}` is the same collector as ship.collector[{j}] `{first}`"
                ),
            ));
        }
        seen.push((i, endpoint));
    }
    Ok(())
}

/// What makes two collector URLs the same collector: scheme, host, port (the scheme's default when not
/// written) and path without trailing slashes; so `https://c` and `https://C:443/` are one.
#[derive(Debug, PartialEq, Eq)]
struct Endpoint {
    scheme: String,
    host: String,
    port: Option<u16>,
    path: String,
}

impl Endpoint {
    fn of(url: &str) -> Option<Endpoint> {
        let url = reqwest::Url::parse(url).ok()?;
        Some(Endpoint {
            scheme: url.scheme().to_owned(),
            host: url.host_str()?.to_owned(),
            port: url.port_or_known_default(),
            path: url.path().trim_end_matches('/').to_owned(),
        })
    }
}

/// `ship.collector`: a URL string or a list of URL strings (`null` = absent).
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    struct Urls;

    impl<'de> Visitor<'de> for Urls {
        type Value = Option<Vec<String>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a collector URL or a list of collector URLs")
        }

        fn visit_str<E: de::Error>(self, url: &str) -> Result<Self::Value, E> {
            Ok(Some(vec![url.to_owned()]))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(Urls)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut urls = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
            while let Some(url) = seq.next_element::<String>()? {
                urls.push(url);
            }
            Ok(Some(urls))
        }
    }

    d.deserialize_any(Urls)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Config, ConfigError};

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/auditloop/config.yaml"), text)
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_single_url_reads_as_before() {
        let c = parse("ship:\n  collector: https://c1:8470\n").unwrap();
        assert_eq!(c.ship.collectors(), ["https://c1:8470"]);
        assert_eq!(parse("ship:\n  collector:\n").unwrap().ship.collector, None);
        assert!(Config::default().ship.collectors().is_empty());
        assert_eq!(
            error("ship:\n  collector: ftp://c1\n"),
            "/etc/auditloop/config.yaml: field `ship.collector`: collector `ftp://c1` is not an http(s) \
             URL with a host"
        );
    }

    #[test]
    fn a_list_reads_in_order() {
        let c =
            parse("ship:\n  collector:\n    - https://c1:8470\n    - https://c2:8470\n").unwrap();
        assert_eq!(c.ship.collectors(), ["https://c1:8470", "https://c2:8470"]);
        let c = parse("ship:\n  collector: [https://c2:8470, http://127.0.0.1:9]\n").unwrap();
        assert_eq!(
            c.ship.collectors(),
            ["https://c2:8470", "http://127.0.0.1:9"]
        );
    }

    #[test]
    fn a_bad_entry_is_named_by_field_index_and_url() {
        assert_eq!(
            error("ship:\n  collector: [https://c1:8470, ftp://c2]\n"),
            "/etc/auditloop/config.yaml: field `ship.collector`: ship.collector[1]: collector `ftp://c2` \
             is not an http(s) URL with a host"
        );
        let text = error("ship:\n  collector: [https://c1:8470, http://10.0.0.5:8470]\n");
        assert!(
            text.starts_with(
                "/etc/auditloop/config.yaml: field `ship.insecure_http`: ship.collector[1]: collector \
                 `http://10.0.0.5:8470` is plain HTTP"
            ),
            "{text}"
        );
        let c = parse(
            "ship:\n  collector: [https://c1:8470, http://10.0.0.5:8470]\n  insecure_http: true\n",
        )
        .unwrap();
        assert_eq!(c.ship.collectors().len(), 2);
        // A bare YAML scalar is read as text and refused as a URL; a mapping is not a URL at all (the
        // parser's error, located).
        let text = error("ship:\n  collector: [https://c1:8470, 8470]\n");
        assert!(
            text.ends_with("ship.collector[1]: collector `8470` is not an http(s) URL with a host"),
            "{text}"
        );
        let text = error("ship:\n  collector: {url: https://c1}\n");
        assert!(
            text.starts_with("/etc/auditloop/config.yaml:2:")
                && text.contains("a collector URL or a list of collector URLs"),
            "{text}"
        );
    }

    #[test]
    fn duplicates_and_an_empty_list_are_errors() {
        assert_eq!(
            error("ship:\n  collector: []\n"),
            "/etc/auditloop/config.yaml: field `ship.collector`: the list is empty: give at least one \
             collector URL, or leave ship.collector out to ship nowhere"
        );
        assert_eq!(
            error("ship:\n  collector: [https://c1:8470, https://c2, https://C1:8470/]\n"),
            "/etc/auditloop/config.yaml: field `ship.collector`: ship.collector[2] `https://C1:8470/` is \
             the same collector as ship.collector[0] `https://c1:8470`"
        );
        assert!(
            error("ship:\n  collector: [https://c1, https://c1:443]\n")
                .contains("ship.collector[1]")
        );
        // Another port or path is another collector.
        parse("ship:\n  collector: [https://c1, https://c1:8470, https://c1/replica-b]\n").unwrap();
    }
}
