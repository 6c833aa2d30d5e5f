//! A small safe layer over fanotify(7): a notification group, its marks, its events and (for permission
//! events) its answers.
//!
//! fanotify reports file accesses by inode, whatever path, link, bind mount or interface (io_uring
//! included) reached the file, with the accessing process and an open descriptor of the file itself. With
//! permission events the accessing task waits in the kernel until the group answers, which is what lets
//! the agent refuse an exec before the program runs. It needs `CAP_SYS_ADMIN` and a kernel built with
//! `CONFIG_FANOTIFY_ACCESS_PERMISSIONS`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// Whether a group may hold permission events (they must be answered).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Notifications only.
    Notify,
    /// Notifications and permission events on content access.
    Content,
}

/// A fanotify group.
#[derive(Debug)]
pub struct Group {
    fd: OwnedFd,
}

/// One event.
#[derive(Debug)]
pub struct FanEvent {
    /// `FAN_*` bits of what happened.
    pub mask: u64,
    /// The process (tgid) that caused it.
    pub pid: u32,
    /// The file, opened for reading (without triggering further events), when the event has one.
    pub file: Option<std::fs::File>,
}

impl FanEvent {
    /// The path of the file, as the agent sees it (`readlink /proc/self/fd/<n>`).
    pub fn path(&self) -> Option<String> {
        let file = self.file.as_ref()?;
        std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cpath(path: &Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))
}

impl Group {
    /// A new group; its descriptor is close-on-exec, reads block, and the event queue and the number of
    /// marks are not limited (so no event is lost to a queue overflow).
    pub fn new(class: Class) -> io::Result<Group> {
        Group::init(class, 0)
    }

    /// A new group whose reads never block (for polling it).
    pub fn new_nonblocking(class: Class) -> io::Result<Group> {
        Group::init(class, libc::FAN_NONBLOCK)
    }

    fn init(class: Class, extra: libc::c_uint) -> io::Result<Group> {
        let class = match class {
            Class::Notify => libc::FAN_CLASS_NOTIF,
            Class::Content => libc::FAN_CLASS_CONTENT,
        };
        let flags = class
            | extra
            | libc::FAN_CLOEXEC
            | libc::FAN_UNLIMITED_QUEUE
            | libc::FAN_UNLIMITED_MARKS;
        let event_flags = (libc::O_RDONLY | libc::O_LARGEFILE | libc::O_CLOEXEC) as libc::c_uint;
        // SAFETY: plain syscall; on success the returned descriptor is owned by nobody else.
        let fd = cvt(unsafe { libc::fanotify_init(flags, event_flags) })?;
        // SAFETY: `fd` was just returned by the kernel and is closed only by this OwnedFd.
        Ok(Group {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The group's descriptor (to poll it).
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    fn mark(
        &self,
        flags: libc::c_uint,
        mask: u64,
        dirfd: RawFd,
        path: Option<&Path>,
    ) -> io::Result<()> {
        let path = path.map(cpath).transpose()?;
        let ptr = path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr());
        // SAFETY: `ptr` is null or a NUL-terminated string that outlives the call.
        cvt(unsafe { libc::fanotify_mark(self.fd.as_raw_fd(), flags, mask, dirfd, ptr) })?;
        Ok(())
    }

    /// Marks the whole file system holding `path` for `mask` events.
    pub fn mark_filesystem(&self, path: &Path, mask: u64) -> io::Result<()> {
        self.mark(
            libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM,
            mask,
            libc::AT_FDCWD,
            Some(path),
        )
    }

    /// Marks the inode at `path` (without following a final symlink) for `mask` events; with
    /// `FAN_EVENT_ON_CHILD` in `mask`, a directory's mark covers the files directly inside it.
    pub fn mark_inode(&self, path: &Path, mask: u64) -> io::Result<()> {
        self.mark(
            libc::FAN_MARK_ADD | libc::FAN_MARK_DONT_FOLLOW,
            mask,
            libc::AT_FDCWD,
            Some(path),
        )
    }

    /// Stops reporting `mask` events on the inode `file` names until it is modified (an ignore mark that
    /// does not survive a modification).
    pub fn ignore_until_modified(&self, file: &std::fs::File, mask: u64) -> io::Result<()> {
        self.mark(
            libc::FAN_MARK_ADD | libc::FAN_MARK_IGNORED_MASK,
            mask,
            file.as_raw_fd(),
            None,
        )
    }

    /// Removes every inode mark (ignore marks included) of the group; file system marks stay.
    pub fn flush_inode_marks(&self) -> io::Result<()> {
        self.mark(libc::FAN_MARK_FLUSH, 0, libc::AT_FDCWD, None)
    }

    /// Waits up to `timeout` for events and reads those queued; empty on timeout.
    pub fn read(&self, timeout: std::time::Duration) -> io::Result<Vec<FanEvent>> {
        let mut poll = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut poll, 1, ms) };
        if ready < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::Interrupted {
                Ok(Vec::new())
            } else {
                Err(err)
            };
        }
        if ready == 0 {
            return Ok(Vec::new());
        }
        self.read_now()
    }

    /// Reads the events queued now (the descriptor must be readable, or the read blocks).
    pub fn read_now(&self) -> io::Result<Vec<FanEvent>> {
        let mut buf = vec![0u8; 64 * 1024];
        // SAFETY: `buf` is valid for its length.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            return if matches!(
                err.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
            ) {
                Ok(Vec::new())
            } else {
                Err(err)
            };
        }
        Ok(parse(buf.get(..n as usize).unwrap_or_default()))
    }

    /// Answers a permission event: let the access happen, or refuse it (the task gets `EPERM`).
    pub fn respond(&self, event: &FanEvent, allow: bool) -> io::Result<()> {
        let Some(file) = &event.file else {
            return Ok(());
        };
        let response = libc::fanotify_response {
            fd: file.as_raw_fd(),
            response: if allow {
                libc::FAN_ALLOW
            } else {
                libc::FAN_DENY
            },
        };
        let size = std::mem::size_of::<libc::fanotify_response>();
        // SAFETY: writes one plain struct of `size` bytes.
        let n = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                std::ptr::from_ref(&response).cast(),
                size,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// The events in a buffer read from a group (each metadata record, by its own length).
fn parse(mut bytes: &[u8]) -> Vec<FanEvent> {
    let size = std::mem::size_of::<libc::fanotify_event_metadata>();
    let mut out = Vec::new();
    while bytes.len() >= size {
        // SAFETY: at least `size` bytes remain; the struct is plain data, read unaligned.
        let meta: libc::fanotify_event_metadata =
            unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        let len = meta.event_len as usize;
        if meta.vers != libc::FANOTIFY_METADATA_VERSION || len < size || len > bytes.len() {
            break;
        }
        let file = (meta.fd >= 0).then(|| {
            // SAFETY: the kernel opened this descriptor for us; nothing else owns it.
            unsafe { std::fs::File::from_raw_fd(meta.fd) }
        });
        out.push(FanEvent {
            mask: meta.mask,
            pid: u32::try_from(meta.pid).unwrap_or(0),
            file,
        });
        bytes = &bytes[len..];
    }
    out
}
