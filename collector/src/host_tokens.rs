//! `auditloop-collector issue-host-tokens`: the migration from a shared agent token to per-host tokens.
//!
//! Every host already in the database that has no token (or, with `--host`, that one host, whose token is
//! replaced) gets a new token, written to `DIR/<host>.token` (mode 0600, created exclusively and never
//! through a symlink), and only its digest is stored. The key the host's stored chain starts from (its
//! genesis key, or its anchor's key) is already its enrolled identity: the schema migration made it so.
//!
//! Each file is written and synced before its digest is stored, and removed again if storing fails, so a
//! token file always holds a token the collector accepts or none. Before anything is written, every file
//! to write is checked not to exist: an existing file stops the command with its name.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use auditloop_protocol::api::HostStatus;

use crate::auth::{HostToken, TokenError, valid_host_name};
use crate::store::{Store, StoreError};

/// Why tokens could not be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `--host` names no host of the database.
    #[error("host {0:?} is not in the database")]
    UnknownHost(String),
    /// A token file exists already.
    #[error("{}: exists already (move it away, or give --host for the hosts still to do)", .0.display())]
    Exists(PathBuf),
    /// The output directory is a symlink or not a directory.
    #[error("{}: {why}", path.display())]
    BadDir {
        /// The directory.
        path: PathBuf,
        /// Why it is refused.
        why: &'static str,
    },
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No token could be made.
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// One issued token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// The host.
    pub host: String,
    /// The file holding its token.
    pub file: PathBuf,
}

/// Issues tokens into `out` for the hosts of `store` that have none, or for `only`; returns what it
/// issued, by host name.
pub fn issue_host_tokens(
    store: &dyn Store,
    out: &Path,
    only: Option<&str>,
) -> Result<Vec<Issued>, IssueError> {
    let hosts = match only {
        Some(host) => {
            let known = valid_host_name(host)
                && store
                    .host(host)?
                    .is_some_and(|h| h.status != HostStatus::Replaced);
            if !known {
                return Err(IssueError::UnknownHost(host.to_owned()));
            }
            vec![host.to_owned()]
        }
        None => {
            let mut todo = Vec::new();
            for host in store.hosts()? {
                if host.status != HostStatus::Replaced && store.host_token(&host.name)?.is_none() {
                    todo.push(host.name);
                }
            }
            todo
        }
    };
    prepare_dir(out)?;
    let files: Vec<Issued> = hosts
        .into_iter()
        .map(|host| Issued {
            file: out.join(format!("{host}.token")),
            host,
        })
        .collect();
    if let Some(taken) = files.iter().find(|f| f.file.symlink_metadata().is_ok()) {
        return Err(IssueError::Exists(taken.file.clone()));
    }
    for issued in &files {
        let token = HostToken::generate()?;
        write_token(&issued.file, &token.token)?;
        let stored = store.set_host_token(&issued.host, &token.digest);
        if !matches!(stored, Ok(true)) {
            // Best effort: the file holds a token nobody accepts; the error below says what failed.
            let _ = std::fs::remove_file(&issued.file);
            return Err(match stored {
                Err(e) => e.into(),
                Ok(_) => IssueError::UnknownHost(issued.host.clone()),
            });
        }
    }
    Ok(files)
}

/// Creates `out` (mode 0700) if missing; refuses a symlink or a non-directory.
fn prepare_dir(out: &Path) -> Result<(), IssueError> {
    match out.symlink_metadata() {
        Ok(meta) if meta.file_type().is_symlink() => Err(IssueError::BadDir {
            path: out.to_owned(),
            why: "is a symlink; give the directory itself",
        }),
        Ok(meta) if !meta.is_dir() => Err(IssueError::BadDir {
            path: out.to_owned(),
            why: "is not a directory",
        }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .mode(0o700)
            .create(out)
            .map_err(|source| IssueError::Io {
                path: out.to_owned(),
                source,
            }),
        Err(source) => Err(IssueError::Io {
            path: out.to_owned(),
            source,
        }),
    }
}

/// Writes `token` to a new file at `path` (0600, `O_EXCL | O_NOFOLLOW`) and syncs it.
fn write_token(path: &Path, token: &str) -> Result<(), IssueError> {
    let io = |source| IssueError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => IssueError::Exists(path.to_owned()),
            _ => io(e),
        })?;
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io)
}

#[cfg(test)]
mod tests;
