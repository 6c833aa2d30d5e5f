//! Who may do what: bearer tokens for agents (shared or per host) and for the admin (queries).
//!
//! Tokens are kept only as SHA-256 digests and compared in constant time; every known token is compared on
//! each request, so the time taken does not tell which one (if any) matched. A per-host token authorizes
//! only its host; the shared agent token authorizes every host; the admin token authorizes only queries.

use std::collections::HashMap;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Longest host name accepted.
pub const MAX_HOST_NAME: usize = 253;

/// The outcome of an access check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Allowed.
    Granted,
    /// No token, or an unknown one (HTTP 401).
    Unauthorized,
    /// A valid token that does not allow this (HTTP 403).
    Forbidden,
}

/// Why a set of tokens is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Two roles share one token.
    #[error("the {0} token and the {1} token are the same; every token must be distinct")]
    Shared(String, String),
    /// A configured host name is not a valid host name.
    #[error("invalid host name {0:?} (1 to 253 of A-Z a-z 0-9 . _ -)")]
    HostName(String),
}

type TokenDigest = [u8; 32];

/// The tokens the collector accepts.
#[derive(Clone)]
pub struct Tokens {
    agent: TokenDigest,
    admin: TokenDigest,
    hosts: HashMap<String, TokenDigest>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("hosts", &self.hosts.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// The shared agent token, the admin token and per-host tokens; all must differ.
    pub fn new(
        agent: &str,
        admin: &str,
        hosts: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Tokens, TokenError> {
        let mut seen: HashMap<TokenDigest, String> = HashMap::new();
        let mut remember = |token: &str, role: String| {
            let d = digest(token);
            match seen.insert(d, role.clone()) {
                Some(other) => Err(TokenError::Shared(other, role)),
                None => Ok(d),
            }
        };
        let agent = remember(agent, "agent".into())?;
        let admin = remember(admin, "admin".into())?;
        let mut per_host = HashMap::new();
        for (host, token) in hosts {
            if !valid_host_name(&host) {
                return Err(TokenError::HostName(host));
            }
            let d = remember(&token, format!("host {host}"))?;
            per_host.insert(host, d);
        }
        Ok(Tokens {
            agent,
            admin,
            hosts: per_host,
        })
    }

    /// May `presented` ship batches for `host`?
    pub fn host_access(&self, host: &str, presented: Option<&str>) -> Access {
        let Some(presented) = presented else {
            return Access::Unauthorized;
        };
        let d = digest(presented);
        let own = self.hosts.get(host).is_some_and(|t| same(t, &d));
        let agent = same(&self.agent, &d);
        let admin = same(&self.admin, &d);
        let any_host = self.hosts.values().fold(false, |acc, t| acc | same(t, &d));
        if own || agent {
            Access::Granted
        } else if admin || any_host {
            Access::Forbidden
        } else {
            Access::Unauthorized
        }
    }

    /// May `presented` use the query API?
    pub fn admin_access(&self, presented: Option<&str>) -> Access {
        let Some(presented) = presented else {
            return Access::Unauthorized;
        };
        let d = digest(presented);
        let admin = same(&self.admin, &d);
        let agent = same(&self.agent, &d);
        let any_host = self.hosts.values().fold(false, |acc, t| acc | same(t, &d));
        if admin {
            Access::Granted
        } else if agent || any_host {
            Access::Forbidden
        } else {
            Access::Unauthorized
        }
    }
}

fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

fn same(a: &TokenDigest, b: &TokenDigest) -> bool {
    a.ct_eq(b).into()
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether `name` may name a host: 1 to [`MAX_HOST_NAME`] of `A-Z a-z 0-9 . _ -`.
pub fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_HOST_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use axum::http::header::AUTHORIZATION;
    use axum::http::{HeaderMap, HeaderValue};

    use super::{Access, TokenError, Tokens, bearer, valid_host_name};

    fn tokens() -> Tokens {
        Tokens::new(
            "agent-t",
            "admin-t",
            [
                ("web".to_owned(), "web-t".to_owned()),
                ("db".to_owned(), "db-t".to_owned()),
            ],
        )
        .unwrap()
    }

    #[test]
    fn host_tokens_authorize_only_their_host() {
        let t = tokens();
        assert_eq!(t.host_access("web", Some("web-t")), Access::Granted);
        assert_eq!(t.host_access("db", Some("web-t")), Access::Forbidden);
        assert_eq!(t.host_access("other", Some("web-t")), Access::Forbidden);
        assert_eq!(t.host_access("web", Some("agent-t")), Access::Granted);
        assert_eq!(t.host_access("anything", Some("agent-t")), Access::Granted);
        assert_eq!(t.host_access("web", Some("admin-t")), Access::Forbidden);
        assert_eq!(t.host_access("web", Some("nope")), Access::Unauthorized);
        assert_eq!(t.host_access("web", None), Access::Unauthorized);
    }

    #[test]
    fn only_the_admin_token_queries() {
        let t = tokens();
        assert_eq!(t.admin_access(Some("admin-t")), Access::Granted);
        assert_eq!(t.admin_access(Some("agent-t")), Access::Forbidden);
        assert_eq!(t.admin_access(Some("db-t")), Access::Forbidden);
        assert_eq!(t.admin_access(Some("x")), Access::Unauthorized);
        assert_eq!(t.admin_access(None), Access::Unauthorized);
    }

    #[test]
    fn tokens_must_be_distinct_and_hosts_valid() {
        let err = Tokens::new("same", "same", []).unwrap_err();
        assert_eq!(err, TokenError::Shared("agent".into(), "admin".into()));
        let err = Tokens::new("a", "b", [("h".to_owned(), "a".to_owned())]).unwrap_err();
        assert!(err.to_string().contains("host h"), "{err}");
        let err = Tokens::new("a", "b", [("bad/name".to_owned(), "c".to_owned())]).unwrap_err();
        assert!(matches!(err, TokenError::HostName(_)));
    }

    #[test]
    fn bearer_headers_parse() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer  abc "));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn host_names() {
        assert!(valid_host_name("web-1.example_org"));
        assert!(!valid_host_name(""));
        assert!(!valid_host_name("a/b"));
        assert!(!valid_host_name(&"a".repeat(254)));
    }
}
