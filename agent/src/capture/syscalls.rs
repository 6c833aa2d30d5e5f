//! Which syscalls are captured and what each argument means: the built-in table (file, process and network
//! syscalls) plus the raw syscalls named in `capture.syscalls`, turned into the kernel's `SYSCALL_SPECS`
//! entries and an attach plan (which generic program fits each tracepoint's argument count).

use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;

use agent_common::wire::{
    NO_ARG, SPEC_ALWAYS_WRITE, SPEC_DEREF_ARG1, SPEC_FLAGS_IN_OPEN_HOW, SPEC_ONLY_PR_SET_NAME,
    SPEC_STR1_PATH, SPEC_STR1_SOCKADDR, SyscallOp, SyscallSpec,
};
use syscalls::Sysno;

/// Where tracefs lists the syscall tracepoints.
pub const SYSCALL_EVENTS_DIR: &str = "/sys/kernel/tracing/events/syscalls";

/// One built-in syscall and how to read it.
#[derive(Clone, Copy, Debug)]
pub struct SyscallDef {
    /// Name as in `sys_enter_<name>`.
    pub name: &'static str,
    /// What it does.
    pub op: SyscallOp,
    /// Argument index of the first string or socket address.
    pub str1: u8,
    /// Argument index of the second string.
    pub str2: u8,
    /// Argument index of a dirfd that `str1` is relative to.
    pub dirfd1: u8,
    /// Argument index of a dirfd that `str2` is relative to.
    pub dirfd2: u8,
    /// Argument index of open flags.
    pub open_flags: u8,
    /// Argument index of the socket address length.
    pub len: u8,
    /// `SPEC_*` flags.
    pub flags: u32,
}

const N: u8 = NO_ARG;

const fn def(
    name: &'static str,
    op: SyscallOp,
    str1: u8,
    str2: u8,
    dirfd1: u8,
    dirfd2: u8,
) -> SyscallDef {
    let flags = match op {
        SyscallOp::SetId
        | SyscallOp::Ptrace
        | SyscallOp::Kill
        | SyscallOp::SetName
        | SyscallOp::MemfdCreate
        | SyscallOp::Connect
        | SyscallOp::Bind
        | SyscallOp::Listen
        | SyscallOp::Accept
        | SyscallOp::Raw
        | SyscallOp::Socket => 0,
        _ if str1 != N => SPEC_STR1_PATH,
        _ => 0,
    };
    SyscallDef {
        name,
        op,
        str1,
        str2,
        dirfd1,
        dirfd2,
        open_flags: N,
        len: N,
        flags,
    }
}

const fn with(mut d: SyscallDef, open_flags: u8, len: u8, flags: u32) -> SyscallDef {
    d.open_flags = open_flags;
    d.len = len;
    d.flags |= flags;
    d
}

/// The built-in table. A name missing from this kernel's tracefs is skipped.
pub const BUILTIN: &[SyscallDef] = &[
    with(def("open", SyscallOp::Open, 0, N, N, N), 1, N, 0),
    with(def("openat", SyscallOp::Open, 1, N, 0, N), 2, N, 0),
    with(
        def("openat2", SyscallOp::Open, 1, N, 0, N),
        2,
        N,
        SPEC_FLAGS_IN_OPEN_HOW,
    ),
    with(
        def("creat", SyscallOp::Open, 0, N, N, N),
        N,
        N,
        SPEC_ALWAYS_WRITE,
    ),
    def("unlink", SyscallOp::Unlink, 0, N, N, N),
    def("unlinkat", SyscallOp::Unlink, 1, N, 0, N),
    def("rename", SyscallOp::Rename, 0, 1, N, N),
    def("renameat", SyscallOp::Rename, 1, 3, 0, 2),
    def("renameat2", SyscallOp::Rename, 1, 3, 0, 2),
    def("link", SyscallOp::Link, 0, 1, N, N),
    def("linkat", SyscallOp::Link, 1, 3, 0, 2),
    def("symlink", SyscallOp::Symlink, 1, 0, N, N),
    def("symlinkat", SyscallOp::Symlink, 2, 0, 1, N),
    def("chmod", SyscallOp::Chmod, 0, N, N, N),
    def("fchmod", SyscallOp::Chmod, N, N, N, N),
    def("fchmodat", SyscallOp::Chmod, 1, N, 0, N),
    def("fchmodat2", SyscallOp::Chmod, 1, N, 0, N),
    def("chown", SyscallOp::Chown, 0, N, N, N),
    def("lchown", SyscallOp::Chown, 0, N, N, N),
    def("fchown", SyscallOp::Chown, N, N, N, N),
    def("fchownat", SyscallOp::Chown, 1, N, 0, N),
    def("truncate", SyscallOp::Truncate, 0, N, N, N),
    def("ftruncate", SyscallOp::Truncate, N, N, N, N),
    def("mkdir", SyscallOp::Mkdir, 0, N, N, N),
    def("mkdirat", SyscallOp::Mkdir, 1, N, 0, N),
    def("rmdir", SyscallOp::Rmdir, 0, N, N, N),
    def("utimensat", SyscallOp::Utimens, 1, N, 0, N),
    def("mount", SyscallOp::Mount, 1, 0, N, N),
    def("umount", SyscallOp::Umount, 0, N, N, N),
    def("chdir", SyscallOp::Chdir, 0, N, N, N),
    def("fchdir", SyscallOp::Chdir, N, N, N, N),
    def("setuid", SyscallOp::SetId, N, N, N, N),
    def("setgid", SyscallOp::SetId, N, N, N, N),
    def("setreuid", SyscallOp::SetId, N, N, N, N),
    def("setregid", SyscallOp::SetId, N, N, N, N),
    def("setresuid", SyscallOp::SetId, N, N, N, N),
    def("setresgid", SyscallOp::SetId, N, N, N, N),
    def("setfsuid", SyscallOp::SetId, N, N, N, N),
    def("setfsgid", SyscallOp::SetId, N, N, N, N),
    def("ptrace", SyscallOp::Ptrace, N, N, N, N),
    def("kill", SyscallOp::Kill, N, N, N, N),
    def("tkill", SyscallOp::Kill, N, N, N, N),
    def("tgkill", SyscallOp::Kill, N, N, N, N),
    def("rt_sigqueueinfo", SyscallOp::Kill, N, N, N, N),
    def("rt_tgsigqueueinfo", SyscallOp::Kill, N, N, N, N),
    def("pidfd_send_signal", SyscallOp::Kill, N, N, N, N),
    // Reaching into another process or the kernel's programs: recorded raw, for self-protection.
    with(
        def("bpf", SyscallOp::Raw, N, N, N, N),
        N,
        N,
        SPEC_DEREF_ARG1,
    ),
    def("process_vm_readv", SyscallOp::Raw, N, N, N, N),
    def("process_vm_writev", SyscallOp::Raw, N, N, N, N),
    def("pidfd_getfd", SyscallOp::Raw, N, N, N, N),
    // Its descriptor names the process a later pidfd_send_signal or pidfd_getfd aims at.
    def("pidfd_open", SyscallOp::Raw, N, N, N, N),
    with(
        def("prctl", SyscallOp::SetName, 1, N, N, N),
        N,
        N,
        SPEC_ONLY_PR_SET_NAME,
    ),
    def("memfd_create", SyscallOp::MemfdCreate, 0, N, N, N),
    with(
        def("connect", SyscallOp::Connect, 1, N, N, N),
        N,
        2,
        SPEC_STR1_SOCKADDR,
    ),
    with(
        def("bind", SyscallOp::Bind, 1, N, N, N),
        N,
        2,
        SPEC_STR1_SOCKADDR,
    ),
    def("listen", SyscallOp::Listen, N, N, N, N),
    def("socket", SyscallOp::Socket, N, N, N, N),
];

/// Syscalls with dedicated programs (not spec-driven): accept pair and close.
pub const ACCEPT_SYSCALLS: &[&str] = &["accept", "accept4"];

impl SyscallDef {
    /// A raw capture of `name` (from `capture.syscalls`).
    pub fn raw(name: &'static str) -> SyscallDef {
        def(name, SyscallOp::Raw, N, N, N, N)
    }

    /// The kernel spec for this syscall.
    pub fn spec(&self) -> SyscallSpec {
        SyscallSpec {
            op: self.op as u32,
            flags: self.flags,
            str1_arg: self.str1,
            str2_arg: self.str2,
            open_flags_arg: self.open_flags,
            len_arg: self.len,
            reserved: 0,
        }
    }

    /// The x86-64 syscall number (the `umount` tracepoint is the `umount2` syscall).
    pub fn number(&self) -> Option<u32> {
        let name = if self.name == "umount" {
            "umount2"
        } else {
            self.name
        };
        Sysno::from_str(name)
            .ok()
            .and_then(|s| u32::try_from(s.id()).ok())
    }
}

/// The built-in definition for a syscall number, if any.
pub fn builtin_by_number(nr: u32) -> Option<&'static SyscallDef> {
    BUILTIN.iter().find(|d| d.number() == Some(nr))
}

/// The name of a syscall number (`"?"` when unknown).
pub fn name_of(nr: u32) -> &'static str {
    usize::try_from(nr)
        .ok()
        .and_then(Sysno::new)
        .map_or("?", |s| s.name())
}

/// A `capture.syscalls` name this kernel cannot trace.
#[derive(Debug, thiserror::Error)]
#[error("unknown syscall `{name}` in capture.syscalls{}", near_text(near))]
pub struct UnknownSyscall {
    /// The name given.
    pub name: String,
    /// Traceable names close to it.
    pub near: Vec<String>,
}

fn near_text(near: &[String]) -> String {
    if near.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", near.join(", "))
    }
}

/// Names with a `sys_enter_<name>` tracepoint under `dir`.
pub fn traceable(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_prefix("sys_enter_")
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a raw syscall name against the traceable set, suggesting near matches.
pub fn check_raw_name(name: &str, traceable: &BTreeSet<String>) -> Result<(), UnknownSyscall> {
    if traceable.contains(name) && Sysno::from_str(name).is_ok() {
        return Ok(());
    }
    let mut near: Vec<(usize, &String)> = traceable
        .iter()
        .map(|t| (strsim::levenshtein(name, t), t))
        .filter(|(d, _)| *d <= 3)
        .collect();
    near.sort();
    Err(UnknownSyscall {
        name: name.to_owned(),
        near: near.into_iter().take(3).map(|(_, t)| t.clone()).collect(),
    })
}

/// Number of arguments of `sys_enter_<name>` (fields after `__syscall_nr` in its format file).
pub fn argument_count(dir: &Path, name: &str) -> Option<usize> {
    let text =
        std::fs::read_to_string(dir.join(format!("sys_enter_{name}")).join("format")).ok()?;
    let fields: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("field:"))
        .collect();
    let nr = fields.iter().position(|l| l.contains("__syscall_nr"))?;
    Some(fields.len() - nr - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names_have_numbers_and_valid_indexes() {
        for d in BUILTIN {
            assert!(d.number().is_some(), "{} has no number", d.name);
            for idx in [d.str1, d.str2, d.dirfd1, d.dirfd2, d.open_flags, d.len] {
                assert!(idx == N || idx < 6, "{}", d.name);
            }
        }
        assert_eq!(builtin_by_number(257).map(|d| d.name), Some("openat"));
        assert_eq!(name_of(59), "execve");
    }

    #[test]
    fn unknown_raw_name_suggests_near_matches() {
        let set: BTreeSet<String> = ["getpid", "getppid", "gettid", "read"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(check_raw_name("getpid", &set).is_ok());
        let err = check_raw_name("getpdi", &set).unwrap_err();
        assert_eq!(err.near.first().map(String::as_str), Some("getpid"));
        assert!(err.to_string().contains("did you mean getpid"), "{err}");
        let err = check_raw_name("zzzzzzzzz", &set).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown syscall `zzzzzzzzz` in capture.syscalls"
        );
    }

    #[test]
    fn counts_arguments_from_this_kernels_tracefs() {
        let dir = Path::new(SYSCALL_EVENTS_DIR);
        assert_eq!(argument_count(dir, "openat"), Some(4));
        assert_eq!(argument_count(dir, "getpid"), Some(0));
        assert_eq!(argument_count(dir, "renameat2"), Some(5));
        assert!(traceable(dir).contains("execve"));
    }
}
