//! Which watched files are secret, and what may be said about a change of one.
//!
//! A file is secret when its path matches `watch.redact` (the built-in entries, `/etc/shadow`,
//! `/etc/gshadow` and the SSH host private keys, always among them) or when its content looks like a
//! private key. A change of a secret file leaves the content store as hashes, size, metadata and, for
//! `name:…` line formats (shadow, gshadow, passwd-like), the names whose lines changed: never content,
//! never a diff, never a field other than the name. The store itself still keeps the content (0600), for
//! rollback.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::watch::WatchError;

/// Paths that are always redacted: password hashes (and the backups the shadow tools keep) and SSH host
/// private keys.
const BUILT_IN: [&str; 5] = [
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/ssh/ssh_host_*_key",
];

/// The longest name `changed_entries` reports (longer first fields mean the file is not in that format).
const MAX_ENTRY_NAME: usize = 256;

/// The set of secret paths.
///
/// An entry is an absolute path or glob (`*`, `?`, `[…]`, `{a,b}`; `*` does not cross `/`). It matches
/// the path itself and, like a [`crate::watch::WatchList`] directory, the files directly inside it.
#[derive(Clone, Debug)]
pub struct Redaction {
    set: GlobSet,
}

impl Redaction {
    /// The built-in entries (`/etc/shadow`, `/etc/gshadow`, their `-` backups, `/etc/ssh/ssh_host_*_key`).
    pub fn default_patterns() -> Vec<String> {
        BUILT_IN.map(String::from).to_vec()
    }

    /// `patterns` plus the built-in entries. Fails on an entry that is not absolute or not a glob.
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<Redaction, WatchError> {
        let mut builder = GlobSetBuilder::new();
        for pattern in patterns.into_iter().chain(BUILT_IN) {
            let invalid = |message: String| WatchError::RedactPattern {
                pattern: pattern.to_owned(),
                message,
            };
            if !pattern.starts_with('/') {
                return Err(invalid("not an absolute path".into()));
            }
            let glob = GlobBuilder::new(pattern.trim_end_matches('/'))
                .literal_separator(true)
                .build()
                .map_err(|err| invalid(err.kind().to_string()))?;
            builder.add(glob);
        }
        let set = builder.build().map_err(|err| WatchError::RedactPattern {
            pattern: err.glob().unwrap_or_default().to_owned(),
            message: err.kind().to_string(),
        })?;
        Ok(Redaction { set })
    }

    /// Whether `path` (normalised) or the directory directly above it is an entry.
    pub fn covers(&self, path: &Path) -> bool {
        self.set.is_match(path) || path.parent().is_some_and(|dir| self.set.is_match(dir))
    }
}

/// Whether `bytes` hold a PEM private key block (`-----BEGIN … PRIVATE KEY-----`, including
/// `-----BEGIN OPENSSH PRIVATE KEY-----`).
pub(crate) fn looks_like_private_key(bytes: &[u8]) -> bool {
    const BEGIN: &[u8] = b"-----BEGIN ";
    bytes
        .windows(BEGIN.len())
        .enumerate()
        .filter(|(_, window)| *window == BEGIN)
        .any(|(at, _)| {
            let rest = bytes.get(at + BEGIN.len()..).unwrap_or_default();
            let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
            let label = line.strip_suffix(b"\r").unwrap_or(line);
            label
                .strip_suffix(b"-----")
                .is_some_and(|label| label.ends_with(b"PRIVATE KEY"))
        })
}

/// For `name:…` line formats: the names whose lines differ between `old` and `new` (`None`: the side does
/// not exist), sorted. Empty when either side is not in that format: every line that is not blank or a
/// `#` comment must start with a name (letters, digits and `._-@+$`) and a `:`.
pub(crate) fn changed_entries(old: Option<&str>, new: Option<&str>) -> Vec<String> {
    let (Some(old), Some(new)) = (entries(old.unwrap_or("")), entries(new.unwrap_or(""))) else {
        return Vec::new();
    };
    let names: BTreeSet<&str> = old.keys().chain(new.keys()).copied().collect();
    names
        .into_iter()
        .filter(|name| old.get(name) != new.get(name))
        .map(str::to_owned)
        .collect()
}

/// The lines of `text` by name, or `None` when it is not in `name:…` format.
fn entries(text: &str) -> Option<BTreeMap<&str, Vec<&str>>> {
    let mut map: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, _) = line.split_once(':')?;
        let valid = !name.is_empty()
            && name.len() <= MAX_ENTRY_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-@+$".contains(&b));
        if !valid {
            return None;
        }
        map.entry(name).or_default().push(line);
    }
    Some(map)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{Redaction, changed_entries, looks_like_private_key};

    #[test]
    fn built_in_and_configured_entries() {
        let redact = Redaction::new(["/srv/app/secret.conf", "/srv/keys", "/opt/*/token"]).unwrap();
        for secret in [
            "/etc/shadow",
            "/etc/gshadow-",
            "/etc/ssh/ssh_host_ed25519_key",
            "/srv/app/secret.conf",
            "/srv/keys/api",
            "/opt/x/token",
        ] {
            assert!(redact.covers(Path::new(secret)), "{secret}");
        }
        for public in [
            "/etc/passwd",
            "/etc/ssh/ssh_host_ed25519_key.pub",
            "/etc/ssh/sshd_config",
            "/srv/app/other.conf",
            "/srv/keys/sub/api",
            "/opt/x/y/token",
        ] {
            assert!(!redact.covers(Path::new(public)), "{public}");
        }
        let built_in = Redaction::new([]).unwrap();
        assert!(built_in.covers(Path::new("/etc/shadow")));
        assert!(!built_in.covers(Path::new("/etc/passwd")));
        assert_eq!(Redaction::default_patterns().len(), 5);
    }

    #[test]
    fn bad_entries_are_errors() {
        let err = Redaction::new(["etc/shadow"]).unwrap_err();
        assert!(err.to_string().contains("not an absolute path"), "{err}");
        let err = Redaction::new(["/etc/[shadow"]).unwrap_err();
        assert!(err.to_string().contains("/etc/[shadow"), "{err}");
    }

    #[test]
    fn private_keys_are_recognised() {
        assert!(looks_like_private_key(
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
        ));
        assert!(looks_like_private_key(
            b"cert\n-----BEGIN RSA PRIVATE KEY-----\r\nMIIE\n"
        ));
        assert!(looks_like_private_key(b"-----BEGIN PRIVATE KEY-----"));
        assert!(looks_like_private_key(
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
        ));
        assert!(!looks_like_private_key(b"-----BEGIN CERTIFICATE-----\n"));
        assert!(!looks_like_private_key(b"-----BEGIN PUBLIC KEY-----\n"));
        assert!(!looks_like_private_key(b"PRIVATE KEY\n-----BEGIN \n"));
    }

    #[test]
    fn changed_entries_name_only_changed_lines() {
        let old = "root:$6$a$x:1::::::\nalice:$6$b$y:1::::::\nbob:!:1::::::\n";
        let new = "root:$6$a$x:1::::::\nalice:$6$c$z:1::::::\ncarol:!:2::::::\n";
        assert_eq!(
            changed_entries(Some(old), Some(new)),
            ["alice", "bob", "carol"]
        );
        assert_eq!(changed_entries(None, Some("a:x\n# c\n\nb:y\n")), ["a", "b"]);
        assert_eq!(changed_entries(Some(old), None).len(), 3);
        assert!(changed_entries(Some(old), Some(old)).is_empty());
        // Not `name:…` on either side: nothing, not even a first field.
        assert!(changed_entries(Some(old), Some("root:x\nsecret value\n")).is_empty());
        assert!(changed_entries(Some("key = s3cret\n"), Some("key = other\n")).is_empty());
        assert!(changed_entries(Some("a b:x\n"), Some("a b:y\n")).is_empty());
    }
}
