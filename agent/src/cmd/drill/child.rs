//! Disposable child processes that carry out the drill's file system operations and stimuli, so that a
//! rule's kill lands on them and never on the drill itself.
//!
//! A child is forked, puts itself in its own process group (a `kill_group` action then stops at it), and
//! runs a list of prepared [`ChildOp`]s with plain system calls: everything it needs (paths, argv, program
//! bytes) is built before the fork, so the child allocates nothing. When an operation fails, the child
//! writes the operation's index and `errno` to a close-on-exec pipe and exits 127; a successful `execve`
//! closes the pipe, so the parent can tell "the program ran" from "the call failed".

use std::ffi::{CString, NulError};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;

/// A null-terminated argv, built before the fork.
pub struct Argv {
    _strings: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

impl Argv {
    /// argv from `args`.
    pub fn new(args: &[String]) -> Result<Argv, NulError> {
        let strings = args
            .iter()
            .map(|a| CString::new(a.as_str()))
            .collect::<Result<Vec<_>, _>>()?;
        let ptrs = strings
            .iter()
            .map(|s| s.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        Ok(Argv {
            _strings: strings,
            ptrs,
        })
    }
}

/// One operation of a child, prepared before the fork.
pub enum ChildOp {
    /// `mkdir` (mode 0700).
    Mkdir(CString),
    /// Creates a new file (`O_EXCL | O_NOFOLLOW`), writes `bytes`, sets `mode`.
    WriteNew {
        /// The new file.
        path: CString,
        /// Its content.
        bytes: Vec<u8>,
        /// Its permission bits.
        mode: libc::mode_t,
    },
    /// Opens read-only and closes.
    ReadOpen(CString),
    /// Creates a new file, writes a newline, closes, unlinks.
    CreateUnlink(CString),
    /// `unlink`; a missing file is fine.
    Unlink(CString),
    /// `rmdir`; a missing directory is fine.
    Rmdir(CString),
    /// Executes `path`: the child itself becomes the program, or with `fork` a grandchild does (the child
    /// waits until the exec happened, and for the grandchild's exit unless `wait` is false).
    Exec {
        /// The program.
        path: CString,
        /// Its argv.
        argv: Argv,
        /// In a grandchild.
        fork: bool,
        /// Wait for the grandchild to exit.
        wait: bool,
    },
    /// `memfd_create`, writes `bytes`, executes it with `execveat(AT_EMPTY_PATH)` (`fexecve`).
    MemfdExec {
        /// The program.
        bytes: Vec<u8>,
        /// Its argv.
        argv: Argv,
        /// In a grandchild.
        fork: bool,
        /// Wait for the grandchild to exit.
        wait: bool,
    },
    /// Sleeps (so a kill has a live target).
    Sleep(u32),
    /// `fchmodat(AT_FDCWD, path, mode)`.
    Chmod {
        /// The file.
        path: CString,
        /// The new mode.
        mode: libc::mode_t,
    },
    /// Opens an existing file `O_WRONLY | O_TRUNC | O_NOFOLLOW` and writes `bytes`.
    Overwrite {
        /// The file.
        path: CString,
        /// Its new content.
        bytes: Vec<u8>,
    },
    /// `kill(pid, 0)`: only the permission check, no signal.
    SignalZero(libc::pid_t),
    /// Creates a new file through an io_uring openat, closes and unlinks it.
    UringCreateUnlink(CString),
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this code.
    Exited(i32),
    /// A signal ended it.
    Signaled(i32),
}

/// A running child.
pub struct Child {
    pid: Pid,
    report: OwnedFd,
    ended: Option<Ended>,
}

/// A failed operation: its index in the list and `errno`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Index of the operation.
    pub op: usize,
    /// The error.
    pub errno: nix::errno::Errno,
}

/// Forks a child that runs `ops` in its own process group.
pub fn spawn(ops: &[ChildOp]) -> std::io::Result<Child> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: the child only makes system calls on data prepared before the fork (no allocation, no
    // locks), then calls `_exit` or `execve`.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            // SAFETY: we are the freshly forked child; see `run`.
            unsafe { run(ops, write.as_raw_fd(), &envp) }
        }
        pid => {
            drop(write);
            let pid = Pid::from_raw(pid);
            // Also set from here, so the group exists before the parent ever signals it.
            let _ = nix::unistd::setpgid(pid, pid);
            Ok(Child {
                pid,
                report: read,
                ended: None,
            })
        }
    }
}

impl Child {
    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.pid.as_raw().unsigned_abs()
    }

    /// How it ended, once it has (it stays a zombie until [`Child::finish`], so its pid and process group
    /// cannot be reused meanwhile).
    pub fn ended(&mut self) -> Option<Ended> {
        if self.ended.is_none() {
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            self.ended = match waitid(Id::Pid(self.pid), flags) {
                Ok(WaitStatus::Exited(_, code)) => Some(Ended::Exited(code)),
                Ok(WaitStatus::Signaled(_, signal, _)) => Some(Ended::Signaled(signal as i32)),
                _ => None,
            };
        }
        self.ended
    }

    /// Waits up to `limit` for the child to end on its own.
    pub fn wait_for(&mut self, limit: std::time::Duration) -> Option<Ended> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(ended) = self.ended() {
                return Some(ended);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Kills the child's process group (its lingering grandchildren too), reaps the child, and returns how
    /// it ended and the operation that failed, if one did.
    pub fn finish(self) -> (Ended, Option<Failure>) {
        let _ = killpg(self.pid, Signal::SIGKILL);
        let ended = match waitpid(self.pid, None) {
            Ok(WaitStatus::Exited(_, code)) => Ended::Exited(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => Ended::Signaled(signal as i32),
            _ => self.ended.unwrap_or(Ended::Signaled(libc::SIGKILL)),
        };
        let mut buf = [0u8; 8];
        let n = nix::unistd::read(&self.report, &mut buf).unwrap_or(0);
        let failure = (n == buf.len()).then(|| {
            let [a, b, c, d, e, f, g, h] = buf;
            Failure {
                op: u32::from_le_bytes([a, b, c, d]) as usize,
                errno: nix::errno::Errno::from_raw(i32::from_le_bytes([e, f, g, h])),
            }
        });
        (ended, failure)
    }
}

/// The child's body: runs `ops`, reports the first failure on `report`, never returns.
///
/// # Safety
/// Call only in a freshly forked child; `ops` and `envp` must be fully prepared.
unsafe fn run(ops: &[ChildOp], report: libc::c_int, envp: &[*const libc::c_char; 1]) -> ! {
    // SAFETY (whole function): plain system calls on valid, NUL-terminated buffers built before the fork.
    unsafe {
        libc::setpgid(0, 0);
        for (index, op) in ops.iter().enumerate() {
            if let Err(errno) = run_op(op, envp) {
                let mut msg = [0u8; 8];
                let (head, tail) = msg.split_at_mut(4);
                head.copy_from_slice(&(index as u32).to_le_bytes());
                tail.copy_from_slice(&errno.to_le_bytes());
                libc::write(report, msg.as_ptr().cast(), msg.len());
                libc::_exit(127);
            }
        }
        libc::_exit(0)
    }
}

fn errno() -> i32 {
    nix::errno::Errno::last_raw()
}

/// Writes all of `bytes` to `fd`.
unsafe fn write_all(fd: libc::c_int, mut bytes: &[u8]) -> Result<(), i32> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid buffer of its length.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            return Err(errno());
        }
        bytes = bytes.get(n.unsigned_abs()..).unwrap_or_default();
    }
    Ok(())
}

/// Creates `path` exclusively and writes `bytes`; returns the open descriptor.
unsafe fn create(path: &CString, bytes: &[u8]) -> Result<libc::c_int, i32> {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `path` is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr(), flags, 0o600) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: `fd` was just opened.
    if let Err(e) = unsafe { write_all(fd, bytes) } {
        // SAFETY: `fd` is ours.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    Ok(fd)
}

unsafe fn run_op(op: &ChildOp, envp: &[*const libc::c_char; 1]) -> Result<(), i32> {
    let check = |ret: libc::c_int, missing_ok: bool| match ret {
        0.. => Ok(()),
        _ if missing_ok && errno() == libc::ENOENT => Ok(()),
        _ => Err(errno()),
    };
    // SAFETY (whole function): see `run`.
    unsafe {
        match op {
            ChildOp::Mkdir(path) => check(libc::mkdir(path.as_ptr(), 0o700), false),
            ChildOp::WriteNew { path, bytes, mode } => {
                let fd = create(path, bytes)?;
                let chmod = check(libc::fchmod(fd, *mode), false);
                libc::close(fd);
                chmod
            }
            ChildOp::ReadOpen(path) => {
                let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                check(fd, false)?;
                libc::close(fd);
                Ok(())
            }
            ChildOp::CreateUnlink(path) => {
                let fd = create(path, b"\n")?;
                libc::close(fd);
                check(libc::unlink(path.as_ptr()), false)
            }
            ChildOp::Unlink(path) => check(libc::unlink(path.as_ptr()), true),
            ChildOp::Rmdir(path) => check(libc::rmdir(path.as_ptr()), true),
            ChildOp::Exec {
                path,
                argv,
                fork,
                wait,
            } => exec(*fork, *wait, || {
                libc::execve(path.as_ptr(), argv.ptrs.as_ptr(), envp.as_ptr());
            }),
            ChildOp::MemfdExec {
                bytes,
                argv,
                fork,
                wait,
            } => {
                let name = c"auditloop-drill";
                let fd = libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC);
                check(fd, false)?;
                write_all(fd, bytes)?;
                exec(*fork, *wait, || {
                    libc::syscall(
                        libc::SYS_execveat,
                        fd,
                        c"".as_ptr(),
                        argv.ptrs.as_ptr(),
                        envp.as_ptr(),
                        libc::AT_EMPTY_PATH,
                    );
                })
            }
            ChildOp::Sleep(secs) => {
                libc::sleep(*secs);
                Ok(())
            }
            ChildOp::Chmod { path, mode } => check(
                libc::syscall(
                    libc::SYS_fchmodat,
                    libc::AT_FDCWD,
                    path.as_ptr(),
                    libc::c_ulong::from(*mode),
                ) as libc::c_int,
                false,
            ),
            ChildOp::Overwrite { path, bytes } => {
                let flags = libc::O_WRONLY | libc::O_TRUNC | libc::O_NOFOLLOW | libc::O_CLOEXEC;
                let fd = libc::open(path.as_ptr(), flags);
                check(fd, false)?;
                let written = write_all(fd, bytes);
                libc::close(fd);
                written
            }
            ChildOp::SignalZero(pid) => check(libc::kill(*pid, 0), false),
            ChildOp::UringCreateUnlink(path) => crate::cmd::drill::uring::create_unlink(path),
        }
    }
}

/// Runs `exec_call` here (it returns only on failure) or in a grandchild, waiting until the grandchild's
/// exec happened (its close-on-exec pipe closes) and, with `wait`, until it exits.
unsafe fn exec(fork: bool, wait: bool, exec_call: impl Fn()) -> Result<(), i32> {
    // SAFETY (whole function): see `run`.
    unsafe {
        if !fork {
            exec_call();
            return Err(errno());
        }
        let mut fds = [0; 2];
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(errno());
        }
        let [read, write] = fds;
        let pid = libc::fork();
        if pid == 0 {
            libc::close(read);
            exec_call();
            let e = errno().to_le_bytes();
            libc::write(write, e.as_ptr().cast(), e.len());
            libc::_exit(127);
        }
        libc::close(write);
        if pid < 0 {
            libc::close(read);
            return Err(errno());
        }
        let mut e = [0u8; 4];
        let n = libc::read(read, e.as_mut_ptr().cast(), e.len());
        libc::close(read);
        if wait {
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
        }
        if n == 4 {
            Err(i32::from_le_bytes(e))
        } else {
            Ok(())
        }
    }
}
