//! Reaching a watched path without following a symbolic link anywhere on it.
//!
//! The agent runs as root, and a watched file's directory may be writable by the user whose change is
//! being looked at (or undone), so a path is resolved once, never through a link: the directory is
//! opened with `openat2(RESOLVE_NO_SYMLINKS)` and everything else (reading, creating, renaming) happens
//! relative to that descriptor with `O_NOFOLLOW`. A link found on the way is reported with where it
//! points, never followed.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Error, ErrorKind};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2, readlinkat};
use nix::sys::stat::{Mode, SFlag, fstatat};

/// A symbolic link on a watched path: the path itself, or a directory on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkOnPath {
    /// The link: the watched path, or the directory on it that is a link.
    pub link: PathBuf,
    /// Where it points, as written (it is never followed).
    pub target: String,
}

/// What looking up the directory of a watched path found.
#[derive(Debug)]
pub enum Lookup {
    /// The directory, reached without following a link.
    Dir(WatchedDir),
    /// A directory on the path does not exist (or is not a directory).
    Gone,
    /// A directory on the path is a symbolic link.
    Link(LinkOnPath),
}

/// The directory of a watched path, opened without following a symbolic link, and the file's name in it.
#[derive(Debug)]
pub struct WatchedDir {
    fd: OwnedFd,
    path: PathBuf,
    name: OsString,
}

impl WatchedDir {
    /// Opens the directory of `path` (lexically normalised) with `RESOLVE_NO_SYMLINKS`.
    pub fn lookup(path: &Path) -> std::io::Result<Lookup> {
        let Some(name) = path.file_name() else {
            return Err(Error::new(ErrorKind::InvalidInput, "not a file path"));
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
        match openat2(AT_FDCWD, dir, how) {
            Ok(fd) => Ok(Lookup::Dir(WatchedDir {
                fd,
                path: path.to_owned(),
                name: name.to_owned(),
            })),
            Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(Lookup::Gone),
            Err(Errno::ELOOP) => first_link(dir)
                .map(Lookup::Link)
                .ok_or_else(|| Errno::ELOOP.into()),
            Err(errno) => Err(errno.into()),
        }
    }

    /// The directory's descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The file's name in the directory.
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// The file type (`S_IFMT` bits: `S_IFREG`, `S_IFDIR`, `S_IFLNK`, …) at the file's name, not following
    /// a link there; `None` when the name is absent.
    pub fn file_type(&self) -> std::io::Result<Option<SFlag>> {
        match fstatat(self.fd(), self.name(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(
                SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT,
            )),
            Err(Errno::ENOENT) => Ok(None),
            Err(errno) => Err(errno.into()),
        }
    }

    /// The link at the file's name, when there is one (`None` when the name is absent or not a link).
    pub fn link(&self) -> std::io::Result<Option<LinkOnPath>> {
        if self.file_type()? != Some(SFlag::S_IFLNK) {
            return Ok(None);
        }
        match readlinkat(self.fd(), self.name()) {
            Ok(target) => Ok(Some(LinkOnPath {
                link: self.path.clone(),
                target: target.to_string_lossy().into_owned(),
            })),
            // Replaced by something that is not a link since the look.
            Err(Errno::ENOENT | Errno::EINVAL) => Ok(None),
            Err(errno) => Err(errno.into()),
        }
    }

    /// Opens the file read-only, never following a link at its name (`ELOOP` then) and never blocking on
    /// a FIFO.
    pub fn open_file(&self) -> std::io::Result<File> {
        let flags = OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC;
        Ok(File::from(openat(
            self.fd(),
            self.name(),
            flags,
            Mode::empty(),
        )?))
    }
}

/// The first directory on `dir` (from the root down) that is a symbolic link, with its target. `None`
/// when there is none (any more): the link was replaced meanwhile.
fn first_link(dir: &Path) -> Option<LinkOnPath> {
    let mut ancestors: Vec<&Path> = dir.ancestors().collect();
    ancestors.reverse();
    ancestors.into_iter().find_map(|prefix| {
        let meta = std::fs::symlink_metadata(prefix).ok()?;
        if !meta.file_type().is_symlink() {
            return None;
        }
        let target = std::fs::read_link(prefix).ok()?;
        Some(LinkOnPath {
            link: prefix.to_owned(),
            target: target.to_string_lossy().into_owned(),
        })
    })
}
