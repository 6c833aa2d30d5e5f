//! Console sessions: what a person's login gives their browser, and the CSRF token of every form.
//!
//! Logging in with a person's token (admin, approver or viewer) sets the cookie [`COOKIE`]: the role, an
//! expiry, a random nonce and an HMAC-SHA256 over them with the collector's session key
//! ([`Tokens::session_key`](crate::auth::Tokens::session_key)). Nothing is kept server-side, so any
//! replica with the same admin token accepts it. The cookie is `HttpOnly` (no script reads it) and
//! `SameSite=Strict` (no other site's page sends it). Every state-changing request made with the cookie
//! must carry the session's CSRF token ([`csrf_token`]: an HMAC of the cookie), as the form field `csrf` or
//! the header [`CSRF_HEADER`]; requests with a bearer token need none (a browser never adds one by itself).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::auth::Role;

/// The session cookie's name.
pub const COOKIE: &str = "auditloop_session";
/// The header a script sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field forms send it in.
pub const CSRF_FIELD: &str = "csrf";
/// How long a session lasts: 12 hours.
pub const SESSION_NS: u64 = 12 * 3600 * 1_000_000_000;

type HmacSha256 = Hmac<Sha256>;

/// A valid session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The role logged in with.
    pub role: Role,
    /// When it ends (ns since the Unix epoch).
    pub expires_ns: u64,
}

fn mac(key: &[u8; 32], label: &str, value: &str) -> [u8; 32] {
    // An HMAC takes a key of any length; this cannot fail.
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(label.as_bytes());
    m.update(b"\0");
    m.update(value.as_bytes());
    m.finalize().into_bytes().into()
}

/// A new session cookie value for `role`, valid from `now_ns` for [`SESSION_NS`]; `None` when the random
/// source fails.
pub fn issue(key: &[u8; 32], role: Role, now_ns: u64) -> Option<String> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).ok()?;
    let body = format!(
        "{}.{}.{}",
        role.as_str(),
        now_ns.saturating_add(SESSION_NS),
        hex::encode(nonce)
    );
    let tag = hex::encode(mac(key, "session", &body));
    Some(format!("{body}.{tag}"))
}

/// The session `value` names, if its MAC is right and it has not expired at `now_ns`.
pub fn check(key: &[u8; 32], value: &str, now_ns: u64) -> Option<Session> {
    let (body, tag) = value.rsplit_once('.')?;
    let tag = hex::decode(tag).ok()?;
    let expected = mac(key, "session", body);
    if !bool::from(expected.as_slice().ct_eq(tag.as_slice())) {
        return None;
    }
    let mut parts = body.split('.');
    let role = Role::parse(parts.next()?)?;
    let expires_ns: u64 = parts.next()?.parse().ok()?;
    let _nonce = parts.next()?;
    if parts.next().is_some() || now_ns >= expires_ns {
        return None;
    }
    Some(Session { role, expires_ns })
}

/// The CSRF token of the session whose cookie is `value`.
pub fn csrf_token(key: &[u8; 32], value: &str) -> String {
    hex::encode(mac(key, "csrf", value))
}

/// Whether `presented` is the CSRF token of the session whose cookie is `value` (constant time).
pub fn csrf_ok(key: &[u8; 32], value: &str, presented: &str) -> bool {
    let expected = csrf_token(key, value);
    expected.len() == presented.len() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// The value of cookie `name` in a `Cookie` header's value.
pub fn cookie<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The `Set-Cookie` value that starts a session (`secure` adds `Secure`, for collectors serving TLS).
pub fn set_cookie(value: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_NS / 1_000_000_000,
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends it.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::{Role, check, cookie, csrf_ok, csrf_token, issue};

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn sessions_round_trip_and_expire() {
        let v = issue(&KEY, Role::Approver, 100).unwrap();
        let s = check(&KEY, &v, 101).unwrap();
        assert_eq!(s.role, Role::Approver);
        assert!(check(&KEY, &v, s.expires_ns).is_none(), "expired");
        assert!(check(&[8; 32], &v, 101).is_none(), "another key");
    }

    #[test]
    fn forged_sessions_are_refused() {
        let v = issue(&KEY, Role::Viewer, 100).unwrap();
        // Raising the role or the expiry breaks the MAC.
        let raised = v.replacen("viewer", "admin", 1);
        assert!(check(&KEY, &raised, 101).is_none());
        let (body, tag) = v.rsplit_once('.').unwrap();
        let mut parts: Vec<&str> = body.split('.').collect();
        parts[1] = "18446744073709551615";
        assert!(check(&KEY, &format!("{}.{tag}", parts.join(".")), 101).is_none());
        for junk in [
            "",
            ".",
            "admin",
            "admin.1.2.3",
            "admin.1.2.zz",
            &format!("{v}.x"),
        ] {
            assert!(check(&KEY, junk, 101).is_none(), "{junk:?}");
        }
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let a = issue(&KEY, Role::Admin, 1).unwrap();
        let b = issue(&KEY, Role::Admin, 1).unwrap();
        let t = csrf_token(&KEY, &a);
        assert!(csrf_ok(&KEY, &a, &t));
        assert!(!csrf_ok(&KEY, &b, &t), "another session's token");
        assert!(!csrf_ok(&KEY, &a, ""));
        assert!(!csrf_ok(&KEY, &a, &t[..10]));
    }

    #[test]
    fn cookies_are_found_by_name() {
        assert_eq!(
            cookie("a=1; auditloop_session=xyz; b=2", "auditloop_session"),
            Some("xyz")
        );
        assert_eq!(cookie("xauditloop_session=1", "auditloop_session"), None);
        assert_eq!(cookie("", "auditloop_session"), None);
    }
}
