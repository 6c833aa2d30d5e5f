//! Strict modes: the agent refuses files that someone other than root could have changed, like sshd's
//! `StrictModes`. The config, rules, token, CA and client-certificate files and the state directory must be
//! owned by root and not writable by group or others, and so must every directory on their paths (a
//! root-owned directory with the sticky bit, such as `/tmp`, is accepted: nobody else can rename or
//! remove what root put there). Symlinks are checked where they sit and where they point. Secrets (the
//! token and the client certificate's key) must also not be readable by group or others.
//!
//! `auditloop run --no-strict-modes` skips these checks (tests and development only).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a file is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HygieneError {
    /// The file or a directory on its path is not owned by root.
    #[error(
        "{path} ({what}): owned by uid {uid}, not root: only root may be able to change what the agent \
         trusts (fix: chown root {path}; or pass --no-strict-modes)"
    )]
    Owner {
        /// The file or directory.
        path: PathBuf,
        /// What the agent uses it for.
        what: &'static str,
        /// Its owner.
        uid: u32,
    },
    /// The file or a directory on its path is writable by group or others.
    #[error(
        "{path} ({what}): writable by group or others (mode {mode:04o}) (fix: chmod go-w {path}; or pass \
         --no-strict-modes)"
    )]
    Writable {
        /// The file or directory.
        path: PathBuf,
        /// What the agent uses it for.
        what: &'static str,
        /// Its permission bits.
        mode: u32,
    },
    /// A secret is readable by group or others.
    #[error(
        "{path} ({what}): readable by group or others (mode {mode:04o}) (fix: chmod 600 {path}; or pass \
         --no-strict-modes)"
    )]
    Readable {
        /// The file.
        path: PathBuf,
        /// What the agent uses it for.
        what: &'static str,
        /// Its permission bits.
        mode: u32,
    },
    /// The file could not be examined.
    #[error("{path} ({what}): {source}")]
    Stat {
        /// The file.
        path: PathBuf,
        /// What the agent uses it for.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// What a checked path is, for the checks that apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only root may change it.
    Trusted,
    /// Only root may change or read it.
    Secret,
}

/// Checks `path` (used as `what`) and every directory on its way, both as spelled and after symlinks
/// are resolved. A path that does not exist is accepted when the directories that would hold it pass (an
/// absent config file means defaults; an absent state directory is created by root).
pub fn check(path: &Path, what: &'static str, kind: Kind) -> Result<(), HygieneError> {
    let absolute = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map_err(|source| HygieneError::Stat {
                path: path.to_owned(),
                what,
                source,
            })?
            .join(path)
    };
    // The directories as spelled: a symlink in a directory others can write could be repointed.
    check_ancestors(&absolute, what)?;
    let resolved = match std::fs::canonicalize(&absolute) {
        Ok(resolved) => resolved,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(HygieneError::Stat {
                path: absolute,
                what,
                source,
            });
        }
    };
    if resolved != absolute {
        check_ancestors(&resolved, what)?;
    }
    let meta = stat(&resolved, what)?;
    check_one(&resolved, &meta, what, false)?;
    if kind == Kind::Secret && !meta.is_dir() && meta.mode() & 0o077 != 0 {
        return Err(HygieneError::Readable {
            path: resolved,
            what,
            mode: meta.permissions().mode() & 0o7777,
        });
    }
    Ok(())
}

/// Checks every file directly in the directory `dir` (a rules directory).
pub fn check_dir_files(dir: &Path, what: &'static str) -> Result<(), HygieneError> {
    check(dir, what, Kind::Trusted)?;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotADirectory => return Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(HygieneError::Stat {
                path: dir.to_owned(),
                what,
                source,
            });
        }
    };
    for entry in entries.flatten() {
        check(&entry.path(), what, Kind::Trusted)?;
    }
    Ok(())
}

/// Checks each existing directory above `path` (lexically, without resolving symlinks in between: each
/// is looked at with `lstat`, and a symlinked directory is checked where it points as well).
fn check_ancestors(path: &Path, what: &'static str) -> Result<(), HygieneError> {
    for dir in path.ancestors().skip(1) {
        let meta = match std::fs::symlink_metadata(dir) {
            Ok(meta) => meta,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(HygieneError::Stat {
                    path: dir.to_owned(),
                    what,
                    source,
                });
            }
        };
        if meta.file_type().is_symlink() {
            // Who may repoint the link is decided by the directory holding it (checked next); where it
            // points is checked as its own chain.
            if let Ok(target) = std::fs::canonicalize(dir) {
                check_one(&target, &stat(&target, what)?, what, true)?;
                check_ancestors(&target, what)?;
            }
            continue;
        }
        check_one(dir, &meta, what, true)?;
    }
    Ok(())
}

fn stat(path: &Path, what: &'static str) -> Result<std::fs::Metadata, HygieneError> {
    std::fs::metadata(path).map_err(|source| HygieneError::Stat {
        path: path.to_owned(),
        what,
        source,
    })
}

/// Owner root and no group/other write (a sticky directory owned by root may be world-writable).
fn check_one(
    path: &Path,
    meta: &std::fs::Metadata,
    what: &'static str,
    ancestor: bool,
) -> Result<(), HygieneError> {
    if meta.uid() != 0 {
        return Err(HygieneError::Owner {
            path: path.to_owned(),
            what,
            uid: meta.uid(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    let sticky_dir = ancestor && meta.is_dir() && mode & 0o1000 != 0;
    if mode & 0o022 != 0 && !sticky_dir {
        return Err(HygieneError::Writable {
            path: path.to_owned(),
            what,
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// These tests create root-owned files and chown them: they fail, not skip, without root.
    fn require_root() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the strict-modes tests must run as root"
        );
    }

    #[test]
    fn refuses_group_or_world_writable_files_and_directories() {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, "").unwrap();
        chmod(&file, 0o644);
        check(&file, "config file", Kind::Trusted).unwrap();
        chmod(&file, 0o664);
        let err = check(&file, "config file", Kind::Trusted).unwrap_err();
        assert!(matches!(err, HygieneError::Writable { .. }), "{err}");
        assert!(
            err.to_string().contains("config.yaml (config file)"),
            "{err}"
        );
        assert!(err.to_string().contains("0664"), "{err}");
        chmod(&file, 0o644);
        // A writable directory on the way.
        chmod(dir.path(), 0o777);
        let err = check(&file, "config file", Kind::Trusted).unwrap_err();
        assert!(matches!(err, HygieneError::Writable { .. }), "{err}");
        // Even for a file that does not exist yet: someone could create it.
        let err = check(&dir.path().join("absent"), "config file", Kind::Trusted).unwrap_err();
        assert!(matches!(err, HygieneError::Writable { .. }), "{err}");
        // A sticky, root-owned directory is fine (like /tmp).
        chmod(dir.path(), 0o1777);
        check(&file, "config file", Kind::Trusted).unwrap();
        chmod(dir.path(), 0o755);
    }

    #[test]
    fn refuses_files_owned_by_someone_else_and_readable_secrets() {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        let token = dir.path().join("token");
        std::fs::write(&token, "t").unwrap();
        chmod(&token, 0o644);
        let err = check(&token, "token file", Kind::Secret).unwrap_err();
        assert!(matches!(err, HygieneError::Readable { .. }), "{err}");
        chmod(&token, 0o600);
        check(&token, "token file", Kind::Secret).unwrap();
        nix::unistd::chown(&token, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let err = check(&token, "token file", Kind::Secret).unwrap_err();
        assert!(
            matches!(err, HygieneError::Owner { uid: 65534, .. }),
            "{err}"
        );
    }

    #[test]
    fn follows_symlinks_and_checks_where_they_point() {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        chmod(&open, 0o777);
        let real = open.join("rules.yaml");
        std::fs::write(&real, "").unwrap();
        chmod(&real, 0o644);
        let link = dir.path().join("rules.yaml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        // The link sits in a safe directory, but what it points at lives in a world-writable one.
        let err = check(&link, "rules", Kind::Trusted).unwrap_err();
        assert!(matches!(err, HygieneError::Writable { .. }), "{err}");
        assert!(err.to_string().contains("/open"), "{err}");
        // A symlinked directory on the way is checked where it points.
        let dirlink = dir.path().join("dirlink");
        std::os::unix::fs::symlink(&open, &dirlink).unwrap();
        chmod(&open, 0o755);
        check(&dirlink.join("rules.yaml"), "rules", Kind::Trusted).unwrap();
        chmod(&open, 0o777);
        let err = check(&dirlink.join("rules.yaml"), "rules", Kind::Trusted).unwrap_err();
        assert!(matches!(err, HygieneError::Writable { .. }), "{err}");
    }

    #[test]
    fn checks_every_file_of_a_rules_directory() {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        std::fs::write(dir.path().join("a.yaml"), "").unwrap();
        std::fs::write(dir.path().join("b.yaml"), "").unwrap();
        chmod(&dir.path().join("a.yaml"), 0o644);
        chmod(&dir.path().join("b.yaml"), 0o646);
        let err = check_dir_files(dir.path(), "rules").unwrap_err();
        assert!(err.to_string().contains("b.yaml"), "{err}");
    }
}
