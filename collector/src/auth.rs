//! Who may do what: three roles of bearer token, and who a presented token belongs to.
//!
//! - **admin** (`--admin-token-file`): queries and host administration; it may enroll hosts too.
//! - **enrollment** (`--enroll-token-file`, optional): creates new hosts only (`POST /v1/enroll`); it can
//!   never append to a host.
//! - **approver** (`--approver-token-file`, optional): reads everything, decides holds and changes alert
//!   states; no host administration.
//! - **viewer** (`--viewer-token-file`, optional): reads everything, changes nothing.
//! - **host**: one per host, issued by the collector when the host is enrolled ([`HostToken::generate`]);
//!   it authorizes batches of that host only.
//!
//! Tokens are kept only as SHA-256 digests ([`TokenDigest`]): the admin and enrollment digests here, host
//! digests in the store, never in a file the collector reads. Digests are compared in constant time
//! ([`same`]); the admin and enrollment digests are both compared on each request, so the time taken does
//! not tell which one (if any) matched. This module never touches the store: the HTTP layer looks host
//! digests up.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Longest host name accepted.
pub const MAX_HOST_NAME: usize = 253;

/// The SHA-256 digest of a token: all the collector keeps of it.
pub type TokenDigest = [u8; 32];

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

/// Whose token a request carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// The admin token.
    Admin,
    /// The enrollment token.
    Enrollment,
    /// The approver token.
    Approver,
    /// The viewer token.
    Viewer,
    /// The token of this host.
    Host(String),
}

/// What a person (a console user or an API client with a person's token) may do, least first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Read pages and queries.
    Viewer,
    /// Also decide holds and change alert states.
    Approver,
    /// Everything, host administration included.
    Admin,
}

impl Role {
    /// The role's name (`viewer`, `approver`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// The role called `name`.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "viewer" => Some(Role::Viewer),
            "approver" => Some(Role::Approver),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// The person's role a token identity gives, if it is a person's token (not a host's or the
    /// enrollment token).
    pub fn of(identity: &Identity) -> Option<Role> {
        match identity {
            Identity::Admin => Some(Role::Admin),
            Identity::Approver => Some(Role::Approver),
            Identity::Viewer => Some(Role::Viewer),
            Identity::Enrollment | Identity::Host(_) => None,
        }
    }
}

impl Identity {
    /// The token's name as alerts show it: the host id, `enrollment` or `admin`.
    pub fn name(&self) -> &str {
        match self {
            Identity::Admin => "admin",
            Identity::Approver => "approver",
            Identity::Viewer => "viewer",
            Identity::Enrollment => "enrollment",
            Identity::Host(host) => host,
        }
    }

    /// The token's role: `host`, `enrollment` or `admin` (a host may be called `admin`; the role tells).
    pub fn role(&self) -> &'static str {
        match self {
            Identity::Admin => "admin",
            Identity::Approver => "approver",
            Identity::Viewer => "viewer",
            Identity::Enrollment => "enrollment",
            Identity::Host(_) => "host",
        }
    }
}

/// Why a set of tokens is unusable, or a new one could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Two roles share one token.
    #[error("the {0} token and the {1} token are the same; every token must be distinct")]
    Shared(String, String),
    /// The operating system's random source failed.
    #[error("making a token: the random source failed: {0}")]
    Random(String),
}

/// The admin and enrollment tokens the collector accepts.
#[derive(Clone)]
pub struct Tokens {
    admin: TokenDigest,
    enroll: Option<TokenDigest>,
    approver: Option<TokenDigest>,
    viewer: Option<TokenDigest>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("enrollment", &self.enroll.is_some())
            .field("approver", &self.approver.is_some())
            .field("viewer", &self.viewer.is_some())
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// The admin token and, if enrollment by token is on, the enrollment token; they must differ.
    pub fn new(admin: &str, enroll: Option<&str>) -> Result<Tokens, TokenError> {
        let admin = digest(admin);
        let enroll = enroll.map(digest);
        if enroll.is_some_and(|e| same(&e, &admin)) {
            return Err(TokenError::Shared("admin".into(), "enrollment".into()));
        }
        Ok(Tokens {
            admin,
            enroll,
            approver: None,
            viewer: None,
        })
    }

    /// The same tokens with the people's approver and viewer tokens (each optional); every token must
    /// differ from every other.
    pub fn with_people(
        mut self,
        approver: Option<&str>,
        viewer: Option<&str>,
    ) -> Result<Tokens, TokenError> {
        self.approver = approver.map(digest);
        self.viewer = viewer.map(digest);
        let named = [
            ("admin", Some(self.admin)),
            ("enrollment", self.enroll),
            ("approver", self.approver),
            ("viewer", self.viewer),
        ];
        for (i, (a, da)) in named.iter().enumerate() {
            for (b, db) in &named[i + 1..] {
                if let (Some(da), Some(db)) = (da, db)
                    && same(da, db)
                {
                    return Err(TokenError::Shared((*a).into(), (*b).into()));
                }
            }
        }
        Ok(self)
    }

    /// The identity of `presented` if it is one of these tokens (every one is compared, so the time taken
    /// does not tell which matched).
    pub fn identify(&self, presented: &TokenDigest) -> Option<Identity> {
        let admin = same(&self.admin, presented);
        let enroll = self.enroll.is_some_and(|e| same(&e, presented));
        let approver = self.approver.is_some_and(|e| same(&e, presented));
        let viewer = self.viewer.is_some_and(|e| same(&e, presented));
        if admin {
            Some(Identity::Admin)
        } else if enroll {
            Some(Identity::Enrollment)
        } else if approver {
            Some(Identity::Approver)
        } else if viewer {
            Some(Identity::Viewer)
        } else {
            None
        }
    }

    /// The key console sessions are signed with: derived from the admin token's digest, so every replica
    /// given the same admin token accepts the same sessions, and a new admin token ends them all.
    pub fn session_key(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"auditloop-collector console session v1\0");
        h.update(self.admin);
        h.finalize().into()
    }

    /// Whether enrollment by token is on.
    pub fn enrollment_enabled(&self) -> bool {
        self.enroll.is_some()
    }
}

/// A new host token: shown once, kept only as its digest.
pub struct HostToken {
    /// The token (64 hex digits).
    pub token: String,
    /// Its digest, which the store keeps.
    pub digest: TokenDigest,
}

impl std::fmt::Debug for HostToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never prints the token.
        f.debug_struct("HostToken").finish_non_exhaustive()
    }
}

impl HostToken {
    /// 32 bytes from the operating system's random source, in hex.
    pub fn generate() -> Result<HostToken, TokenError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
        let token = hex::encode(bytes);
        Ok(HostToken {
            digest: digest(&token),
            token,
        })
    }
}

/// The digest of `token`.
pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether two digests are equal, in constant time.
pub fn same(a: &TokenDigest, b: &TokenDigest) -> bool {
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

    use super::{HostToken, Identity, TokenError, Tokens, bearer, digest, same, valid_host_name};

    #[test]
    fn admin_and_enrollment_tokens_are_told_apart() {
        let t = Tokens::new("admin-t", Some("enroll-t")).unwrap();
        assert_eq!(t.identify(&digest("admin-t")), Some(Identity::Admin));
        assert_eq!(t.identify(&digest("enroll-t")), Some(Identity::Enrollment));
        assert_eq!(t.identify(&digest("nope")), None);
        assert!(t.enrollment_enabled());
        let admin_only = Tokens::new("admin-t", None).unwrap();
        assert_eq!(admin_only.identify(&digest("enroll-t")), None);
        assert!(!admin_only.enrollment_enabled());
    }

    #[test]
    fn tokens_must_be_distinct() {
        let err = Tokens::new("same", Some("same")).unwrap_err();
        assert_eq!(err, TokenError::Shared("admin".into(), "enrollment".into()));
    }

    #[test]
    fn host_tokens_are_random_and_kept_as_digests() {
        let a = HostToken::generate().unwrap();
        let b = HostToken::generate().unwrap();
        assert_eq!(a.token.len(), 64);
        assert!(a.token.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.token, b.token);
        assert!(same(&a.digest, &digest(&a.token)));
        assert!(!same(&a.digest, &b.digest));
        assert!(!format!("{a:?}").contains(&a.token));
    }

    #[test]
    fn identities_name_their_token() {
        assert_eq!(
            (
                Identity::Host("admin".into()).name(),
                Identity::Host("admin".into()).role()
            ),
            ("admin", "host")
        );
        assert_eq!(
            (Identity::Admin.name(), Identity::Admin.role()),
            ("admin", "admin")
        );
        assert_eq!(Identity::Enrollment.name(), "enrollment");
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
        assert!(!valid_host_name("a@replaced-1"));
        assert!(!valid_host_name(&"a".repeat(254)));
    }
}
