//! Login identity of a process, read from where the kernel exposes it: the audit login uid and session id
//! (`/proc/<pid>/loginuid`, `/proc/<pid>/sessionid`), the controlling terminal, process group and session
//! (`tty_nr`, `pgrp`, `session` of `/proc/<pid>/stat`), the login uid's name (`/etc/passwd`), and for a process under sshd the SSH
//! client's address: the peer of the nearest sshd ancestor's established TCP connection, from the kernel's
//! socket tables. `SSH_CONNECTION` in the environment is not used: any process can set it for its
//! children, the socket table cannot be written by them.
//!
//! The process table reads these once per process (at its first event after a fork or an exec) and keeps
//! them; nothing here runs per event.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::procfs::stat_field;

use super::netproc::{self, TCP_ESTABLISHED, Table};

/// `loginuid`/`sessionid` value of "never set".
const UNSET: u32 = u32::MAX;

/// What a process's login identity is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Login {
    /// Audit login uid; `None` when unset.
    pub loginuid: Option<u32>,
    /// Audit session id; `None` when unset.
    pub sessionid: Option<u32>,
    /// Controlling terminal name; empty when none.
    pub tty: String,
    /// Process group id.
    pub pgid: Option<u32>,
    /// Kernel session id.
    pub sid: Option<u32>,
    /// Name of the login uid; empty when unset or unknown.
    pub loginname: String,
    /// SSH client address and port, for a process under sshd.
    pub ssh: Option<(String, u16)>,
}

/// The kernel's part of a login identity (without the name and the SSH client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelLogin {
    /// Audit login uid; `None` when unset.
    pub loginuid: Option<u32>,
    /// Audit session id; `None` when unset.
    pub sessionid: Option<u32>,
    /// Controlling terminal name; empty when none.
    pub tty: String,
    /// Process group id.
    pub pgid: Option<u32>,
    /// Kernel session id.
    pub sid: Option<u32>,
}

/// Reads `pid`'s login uid, session id and terminal; `None` when the process is gone.
pub fn read(proc_root: &Path, pid: u32) -> Option<KernelLogin> {
    let dir = proc_root.join(pid.to_string());
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let tty_nr = stat_field(&stat, 7)?.parse::<i64>().ok()?;
    let id = |file: &str| {
        std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|t| parse_id(&t))
    };
    let field = |n: usize| stat_field(&stat, n).and_then(|f| f.parse::<u32>().ok());
    Some(KernelLogin {
        loginuid: id("loginuid"),
        sessionid: id("sessionid"),
        tty: tty_name(tty_nr),
        pgid: field(5),
        sid: field(6),
    })
}

/// A `loginuid`/`sessionid` file's number; `None` for "unset" (4294967295) or garbage.
pub fn parse_id(text: &str) -> Option<u32> {
    text.trim().parse::<u32>().ok().filter(|&id| id != UNSET)
}

/// The terminal named by a `tty_nr` device number (`pts/3`, `tty1`, `ttyS0`, `tty(<major>:<minor>)`);
/// empty for 0 (no controlling terminal).
pub fn tty_name(tty_nr: i64) -> String {
    if tty_nr <= 0 {
        return String::new();
    }
    let dev = tty_nr as u64;
    let major = (dev >> 8) & 0xfff;
    let minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
    match major {
        // Unix98 pseudo-terminal slaves: majors 136..=143, 256 minors each.
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        _ => format!("tty({major}:{minor})"),
    }
}

/// Whether an ancestor's name is an SSH server's (OpenSSH `sshd`, its `sshd-session`/`sshd-auth`
/// helpers, dropbear).
pub fn is_ssh_server(name: &str) -> bool {
    name == "sshd" || name.starts_with("sshd-") || name == "dropbear"
}

/// Whether the running executable of `pid` is one only root could have put there: the file
/// `/proc/<pid>/exe` resolves to is owned by root and writable by nobody else, and so is the directory
/// holding it (so no one else can swap it). A user's own copy of a shell named `sshd` therefore cannot make
/// its children claim an SSH client of its choosing. A deleted executable is not trusted.
pub fn root_installed(proc_root: &Path, pid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    const GROUP_OR_OTHER_WRITE: u32 = 0o022;
    let trusted = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.uid() == 0 && m.mode() & GROUP_OR_OTHER_WRITE == 0)
    };
    std::fs::canonicalize(proc_root.join(format!("{pid}/exe")))
        .is_ok_and(|exe| trusted(&exe) && exe.parent().is_some_and(trusted))
}

/// The remote end of `pid`'s established TCP connection on its lowest-numbered descriptor (an sshd's
/// client connection); `None` when it has none or is gone.
pub fn ssh_peer(proc_root: &Path, pid: u32) -> Option<(String, u16)> {
    let fd_dir = proc_root.join(format!("{pid}/fd"));
    let mut sockets: Vec<(i64, u64)> = std::fs::read_dir(&fd_dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse::<i64>().ok()?;
            let link = std::fs::read_link(e.path()).ok()?;
            Some((fd, netproc::parse_socket_link(link.to_str()?)?))
        })
        .collect();
    sockets.sort_unstable();
    let inodes: Vec<u64> = sockets.iter().map(|(_, inode)| *inode).collect();
    let established = netproc::find_all(proc_root, pid, &inodes, &[Table::Tcp, Table::Tcp6]);
    sockets.iter().find_map(|(_, inode)| {
        established
            .iter()
            .find(|s| s.inode == *inode && s.state == TCP_ESTABLISHED)
            .map(|s| (s.remote.0.to_string(), s.remote.1))
    })
}

/// User names by uid from a passwd file, re-read when the file changes (checked at most once a second).
#[derive(Debug)]
pub struct UserNames {
    path: PathBuf,
    names: HashMap<u32, String>,
    modified: Option<SystemTime>,
    checked: Option<Instant>,
}

impl UserNames {
    /// Names from `path` (normally `/etc/passwd`), read on first use.
    pub fn new(path: &Path) -> UserNames {
        UserNames {
            path: path.to_owned(),
            names: HashMap::new(),
            modified: None,
            checked: None,
        }
    }

    /// The name of `uid`; empty when the file has no entry for it.
    pub fn name(&mut self, uid: u32) -> String {
        let due = self
            .checked
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
        if due {
            self.checked = Some(Instant::now());
            let modified = std::fs::metadata(&self.path)
                .and_then(|m| m.modified())
                .ok();
            if modified != self.modified || modified.is_none() {
                self.modified = modified;
                self.names = std::fs::read_to_string(&self.path)
                    .map(|text| parse_passwd(&text))
                    .unwrap_or_default();
            }
        }
        self.names.get(&uid).cloned().unwrap_or_default()
    }
}

/// `name:x:uid:…` lines → uid → name (the first entry of a uid wins, as `getpwuid` does).
pub fn parse_passwd(text: &str) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    for line in text.lines() {
        let mut cols = line.split(':');
        let (Some(name), Some(_), Some(uid)) = (cols.next(), cols.next(), cols.next()) else {
            continue;
        };
        if let Ok(uid) = uid.parse::<u32>()
            && !name.is_empty()
            && !name.starts_with('#')
        {
            names.entry(uid).or_insert_with(|| name.to_owned());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_terminals() {
        assert_eq!(parse_id("1000\n"), Some(1000));
        assert_eq!(parse_id("4294967295"), None);
        assert_eq!(parse_id("x"), None);
        assert_eq!(tty_name(0), "");
        assert_eq!(tty_name((136 << 8) | 3), "pts/3");
        assert_eq!(tty_name((137 << 8) | 1), "pts/257");
        // pts minors above 255 spill into the high bits.
        assert_eq!(tty_name((136 << 8) | (1 << 20)), "pts/256");
        assert_eq!(tty_name((4 << 8) | 1), "tty1");
        assert_eq!(tty_name((4 << 8) | 64), "ttyS0");
        assert_eq!(tty_name((5 << 8) | 1), "tty(5:1)");
    }

    #[test]
    fn passwd_names_and_ssh_servers() {
        let names = parse_passwd(
            "root:x:0:0::/root:/bin/sh\n#c\nbad\nalice:x:1000:1000::/h:/bin/sh\nalias:x:1000:1::/:/\n",
        );
        assert_eq!(names.get(&0).map(String::as_str), Some("root"));
        assert_eq!(names.get(&1000).map(String::as_str), Some("alice"));
        assert_eq!(names.len(), 2);
        assert!(is_ssh_server("sshd") && is_ssh_server("sshd-session"));
        assert!(!is_ssh_server("ssh") && !is_ssh_server("sshdx"));
    }

    #[test]
    fn names_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        std::fs::write(&path, "alice:x:1000:1000::/:/\n").unwrap();
        let mut names = UserNames::new(&path);
        assert_eq!(names.name(1000), "alice");
        assert_eq!(names.name(1001), "");
    }

    #[test]
    fn this_process_has_a_login_identity() {
        let me = read(Path::new("/proc"), std::process::id()).unwrap();
        let raw = std::fs::read_to_string("/proc/self/loginuid").unwrap();
        assert_eq!(me.loginuid, parse_id(&raw));
        assert!(read(Path::new("/proc"), u32::MAX - 1).is_none());
    }
}
