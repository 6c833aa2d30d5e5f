//! Where PostgreSQL is installed and whom its server programs run as: `initdb` and `postgres` refuse to run
//! as root, so a root caller runs them as the `postgres` user, in directories that user owns.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::TestkitError;

/// Environment variable naming PostgreSQL's `bin` directory (overrides the search).
pub const PG_BIN_VARIABLE: &str = "AUDITLOOP_PG_BIN";
/// Where Debian installs each PostgreSQL major version (`<root>/<major>/bin`).
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";
/// The programs the helpers run.
const PROGRAMS: [&str; 5] = ["initdb", "postgres", "pg_isready", "createdb", "psql"];

/// A PostgreSQL installation and the user its server programs run as.
#[derive(Clone, Debug)]
pub(crate) struct Install {
    /// The directory holding `initdb`, `postgres`, `pg_isready`, `createdb` and `psql`.
    pub(crate) bin: PathBuf,
    /// `(uid, gid)` of `postgres` when the caller is root; `None` runs the server as the caller.
    server_user: Option<(u32, u32)>,
}

impl Install {
    /// `$AUDITLOOP_PG_BIN`, else the highest `/usr/lib/postgresql/<major>/bin`; an error when it is not
    /// there or lacks a program (the error says to run `cargo xtask setup`).
    pub(crate) fn find() -> Result<Install, TestkitError> {
        Install::find_in(std::env::var_os(PG_BIN_VARIABLE).map(PathBuf::from))
    }

    /// [`Install::find`] with the override given.
    fn find_in(bin_override: Option<PathBuf>) -> Result<Install, TestkitError> {
        let bin = match bin_override {
            Some(dir) => dir,
            None => highest_major(Path::new(DEBIAN_ROOT)).ok_or_else(|| {
                TestkitError::MissingPostgres(format!("no {DEBIAN_ROOT}/<version>/bin"))
            })?,
        };
        if let Some(missing) = PROGRAMS.iter().find(|p| !bin.join(p).is_file()) {
            return Err(TestkitError::MissingPostgres(format!(
                "{} is missing",
                bin.join(missing).display()
            )));
        }
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let server_user = if root { Some(postgres_user()?) } else { None };
        Ok(Install { bin, server_user })
    }

    /// A server program (`initdb`, `postgres`) that runs as the server user, in `dir`.
    pub(crate) fn server_command(&self, program: &str, dir: &Path) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.current_dir(dir);
        if let Some((uid, gid)) = self.server_user {
            // std drops the supplementary groups too when a root parent sets the uid.
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    /// A client program (`pg_isready`, `createdb`, `psql`), run as the caller.
    pub(crate) fn client_command(&self, program: &str) -> Command {
        Command::new(self.bin.join(program))
    }

    /// Makes `dir` the server user's (when the caller is root) and checks that user can reach it. A
    /// directory in the way that the caller owns below the system's temporary directory (a test's
    /// `tempfile::tempdir()`, mode 0700) is given search permission for others (`o+x`: enter, not list);
    /// anything else in the way is an error.
    pub(crate) fn hand_over(&self, dir: &Path) -> Result<(), TestkitError> {
        let Some((uid, gid)) = self.server_user else {
            return Ok(());
        };
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(TestkitError::io(format!(
            "chown postgres {}",
            dir.display()
        )))?;
        let temp = std::env::temp_dir();
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        for ancestor in dir.ancestors().skip(1) {
            let Ok(meta) = std::fs::metadata(ancestor) else {
                continue;
            };
            if may_search(meta.mode(), meta.uid(), meta.gid(), uid, gid) {
                continue;
            }
            if ancestor.starts_with(&temp) && ancestor != temp && meta.uid() == me {
                let mode = std::fs::Permissions::from_mode((meta.mode() & 0o7777) | 0o001);
                std::fs::set_permissions(ancestor, mode).map_err(TestkitError::io(format!(
                    "chmod o+x {}",
                    ancestor.display()
                )))?;
                continue;
            }
            return Err(TestkitError::Postgres {
                what: format!("the postgres user cannot reach {}", dir.display()),
                detail: format!(
                    "{}: choose a directory it can reach",
                    refusal(ancestor, &meta)
                ),
            });
        }
        Ok(())
    }

    /// Why the server user could not reach `dir`: the first of its existing ancestors (itself included)
    /// that user may not enter. Only the user's primary group counts.
    pub(crate) fn barrier(&self, dir: &Path) -> Option<String> {
        let (uid, gid) = self.server_user?;
        dir.ancestors().find_map(|ancestor| {
            let meta = std::fs::metadata(ancestor).ok()?;
            (!may_search(meta.mode(), meta.uid(), meta.gid(), uid, gid))
                .then(|| refusal(ancestor, &meta))
        })
    }
}

/// "it may not enter DIR (mode, owner)".
fn refusal(dir: &Path, meta: &std::fs::Metadata) -> String {
    format!(
        "it may not enter {} (mode {:o}, owner {}:{})",
        dir.display(),
        meta.mode() & 0o7777,
        meta.uid(),
        meta.gid()
    )
}

/// Whether a user (`uid`, primary group `gid`) may enter a directory of this mode and owner.
fn may_search(mode: u32, owner: u32, group: u32, uid: u32, gid: u32) -> bool {
    if owner == uid {
        mode & 0o100 != 0
    } else if group == gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// `<root>/<major>/bin` of the highest numeric major version under `root` that has a `postgres` binary.
fn highest_major(root: &Path) -> Option<PathBuf> {
    std::fs::read_dir(root)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let major: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").is_file().then_some((major, bin))
        })
        .max_by_key(|(major, _)| *major)
        .map(|(_, bin)| bin)
}

/// `(uid, gid)` of the `postgres` user.
fn postgres_user() -> Result<(u32, u32), TestkitError> {
    let missing = || TestkitError::MissingPostgres("there is no `postgres` user".into());
    let mut pwd = std::mem::MaybeUninit::<libc::passwd>::zeroed();
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: the name is NUL-terminated; `pwd`, `buf` and `found` are valid for writes of their sizes and
    // outlive the call, which keeps its strings in `buf`.
    let rc = unsafe {
        libc::getpwnam_r(
            c"postgres".as_ptr(),
            pwd.as_mut_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        return Err(missing());
    }
    // SAFETY: getpwnam_r succeeded and `found` points at `pwd`, which it filled.
    let pwd = unsafe { pwd.assume_init() };
    Ok((pwd.pw_uid, pwd.pw_gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_permission_follows_owner_group_other() {
        assert!(may_search(0o700, 5, 5, 5, 9));
        assert!(!may_search(0o700, 0, 0, 5, 9));
        assert!(may_search(0o750, 0, 9, 5, 9));
        assert!(!may_search(0o750, 0, 8, 5, 9));
        assert!(may_search(0o755, 0, 0, 5, 9));
        // The owner class decides alone: an owner without x is refused even if others have it.
        assert!(!may_search(0o011, 5, 0, 5, 9));
    }

    #[test]
    fn a_missing_install_says_how_to_get_one() {
        let err = Install::find_in(Some("/nonexistent/pg/bin".into())).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("/nonexistent/pg/bin/initdb is missing"),
            "{message}"
        );
        assert!(message.contains("cargo xtask setup"), "{message}");
    }

    #[test]
    fn the_highest_major_with_a_server_wins() {
        let root = std::env::temp_dir().join(format!("auditloop-pg-majors-{}", std::process::id()));
        for major in ["9", "15", "16", "notes"] {
            std::fs::create_dir_all(root.join(major).join("bin")).unwrap();
        }
        for major in ["9", "15"] {
            std::fs::write(root.join(major).join("bin/postgres"), "").unwrap();
        }
        assert_eq!(highest_major(&root), Some(root.join("15/bin")));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
