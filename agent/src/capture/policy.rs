//! The userspace half of the kernel's path filters. The kernel decides on a path only when its raw
//! spelling is provably canonical; a record it could not decide on (`SYS_PATH_UNSURE`) is judged here on
//! its canonical path, with the same lists: `capture.ignore.path_prefixes` and `capture.sensitive_paths`.
//!
//! An entry ending in `/` matches everything below that directory, one ending in `*` every path starting
//! with what precedes the `*`, any other entry exactly that path (the kernel's LPM keys mean the same).

use crate::config::CaptureConfig;

/// One list entry.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    /// This path only.
    Exact(String),
    /// Every path starting with this (a directory ending in `/`, or a name prefix from `…*`).
    Prefix(String),
}

impl Pattern {
    fn of(entry: &str) -> Pattern {
        if let Some(prefix) = entry.strip_suffix('*') {
            Pattern::Prefix(prefix.to_owned())
        } else if entry.ends_with('/') {
            Pattern::Prefix(entry.to_owned())
        } else {
            Pattern::Exact(entry.to_owned())
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Pattern::Exact(p) => path == p,
            Pattern::Prefix(p) => path.starts_with(p.as_str()),
        }
    }
}

/// The path lists, for canonical paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathPolicy {
    ignore: Vec<Pattern>,
    sensitive: Vec<Pattern>,
}

impl PathPolicy {
    /// The lists of `config`.
    pub fn new(config: &CaptureConfig) -> PathPolicy {
        PathPolicy {
            ignore: config
                .ignore
                .path_prefixes
                .iter()
                .map(|e| Pattern::of(e))
                .collect(),
            sensitive: config
                .sensitive_paths
                .iter()
                .map(|e| Pattern::of(e))
                .collect(),
        }
    }

    /// Whether file events on `path` are not recorded.
    pub fn ignored(&self, path: &str) -> bool {
        self.ignore.iter().any(|p| p.matches(path))
    }

    /// Whether read-only opens of `path` are recorded.
    pub fn sensitive(&self, path: &str) -> bool {
        self.sensitive.iter().any(|p| p.matches(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_match_like_the_kernel_keys() {
        let mut config = CaptureConfig::default();
        config.ignore.path_prefixes = vec!["/proc/".into(), "/dev/null".into()];
        config.sensitive_paths = vec![
            "/etc/shadow".into(),
            "/etc/sudoers.d/".into(),
            "/etc/ssh/ssh_host_*".into(),
        ];
        let p = PathPolicy::new(&config);
        assert!(p.ignored("/proc/1/status") && p.ignored("/dev/null"));
        assert!(!p.ignored("/dev/nullx") && !p.ignored("/etc/proc/x"));
        assert!(p.sensitive("/etc/shadow") && !p.sensitive("/etc/shadow-"));
        assert!(p.sensitive("/etc/sudoers.d/admins"));
        assert!(p.sensitive("/etc/ssh/ssh_host_ed25519_key"));
        assert!(!p.sensitive("/etc/ssh/sshd_config"));
    }
}
