//! The field registry: every name a condition or output template may use, its type, the event kinds it
//! applies to, and how its value is read from an [`Event`].
//!
//! A field that does not apply to an event is *absent*: every comparison on it is false (so
//! `not (f = x)` is true) and `f exists` is false. Besides kind mismatches, a field is absent when the model
//! has no value for it: an empty `exe`/`parent_exe`/`parent_argv` (unknown), a `null` option
//! (`container.id`, `change.old_sha256`, …), and `proc.aname[N]` for N ≥ 2 (the model carries only the
//! parent, not the full ancestry).

use std::borrow::Cow;

use agent_common::model::{Event, EventBody};

/// The type of a field's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// Text.
    Str,
    /// An integer.
    Num,
    /// `true` or `false`.
    Bool,
}

impl FieldType {
    /// The type's name in messages.
    pub fn describe(self) -> &'static str {
        match self {
            FieldType::Str => "a string",
            FieldType::Num => "a number",
            FieldType::Bool => "a boolean",
        }
    }
}

/// Every event kind name (`evt.kind` values).
pub const EVENT_KINDS: [&str; 21] = [
    "exec",
    "fork",
    "exit",
    "file",
    "net",
    "setid",
    "ptrace",
    "kill",
    "set_name",
    "memfd_create",
    "syscall",
    "config_change",
    "loss",
    "agent_start",
    "agent_stop",
    "config_loaded",
    "journal_recovered",
    "alert",
    "action",
    "rules_loaded",
    "rules_rejected",
];

/// One registered field.
#[derive(Debug)]
pub struct FieldDef {
    /// The name as written (`proc.aname` is written with an index: `proc.aname[1]`).
    pub name: &'static str,
    /// Its value type.
    pub ty: FieldType,
    /// The event kinds it applies to; empty = every kind.
    pub kinds: &'static [&'static str],
    /// Whether it takes (and requires) an `[N]` index.
    pub indexed: bool,
    /// What it is.
    pub doc: &'static str,
    pub(crate) id: FieldId,
}

/// Internal field identity, matched on when reading a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldId {
    EvtKind,
    EvtSeq,
    EvtTime,
    Pid,
    Tid,
    Ppid,
    Name,
    Exe,
    Cmdline,
    Args,
    Pname,
    Pexe,
    Pcmdline,
    Aname,
    CgroupId,
    ContainerId,
    Uid,
    Euid,
    Gid,
    ExecFilename,
    ExecSuccess,
    ExecFromMemfd,
    ExecArgc,
    FileOp,
    FilePath,
    FileTarget,
    FileName,
    FileDirectory,
    FileFlags,
    FileMode,
    FileSuccess,
    NetOp,
    NetFamily,
    NetAddress,
    NetPort,
    NetSuccess,
    SetidSyscall,
    SetidIds,
    KillTargetPid,
    KillSignal,
    PtraceRequestName,
    PtraceTargetPid,
    SetNameName,
    MemfdName,
    SyscallName,
    ChangePath,
    ChangeOldSha,
    ChangeNewSha,
    ChangeDiff,
    ChangeTrigger,
}

const ALL: &[&str] = &[];
const EXEC: &[&str] = &["exec"];
const FILE: &[&str] = &["file"];
const NET: &[&str] = &["net"];
const CHANGE: &[&str] = &["config_change"];

macro_rules! fields {
    ($( $name:literal, $ty:ident, $kinds:expr, $id:ident, $doc:literal; )*) => {
        /// The registry, in documentation order.
        pub static FIELDS: &[FieldDef] = &[
            $( FieldDef {
                name: $name,
                ty: FieldType::$ty,
                kinds: $kinds,
                indexed: matches!(FieldId::$id, FieldId::Aname),
                doc: $doc,
                id: FieldId::$id,
            }, )*
        ];
    };
}

fields! {
    "evt.kind", Str, ALL, EvtKind, "event kind: exec, fork, exit, file, net, setid, ptrace, kill, set_name, memfd_create, syscall, config_change, loss, agent_start, agent_stop, config_loaded, journal_recovered, alert, action, rules_loaded, rules_rejected";
    "evt.seq", Num, ALL, EvtSeq, "journal sequence number (0 before journaling)";
    "evt.time", Str, ALL, EvtTime, "wall-clock time, RFC 3339 text";
    "proc.pid", Num, ALL, Pid, "process id (tgid)";
    "proc.tid", Num, ALL, Tid, "thread id";
    "proc.ppid", Num, ALL, Ppid, "parent process id (0 when unknown)";
    "proc.name", Str, ALL, Name, "task name (comm, at most 15 bytes)";
    "proc.exe", Str, ALL, Exe, "executable path; absent when unknown";
    "proc.cmdline", Str, ALL, Cmdline, "exec: argv joined by spaces; other kinds: the executable (the model keeps no argv outside exec)";
    "proc.args", Str, EXEC, Args, "exec argv after argv[0], joined by spaces";
    "proc.pname", Str, ALL, Pname, "parent name: basename of the parent's executable; absent when unknown";
    "proc.pexe", Str, ALL, Pexe, "parent's executable path; absent when unknown";
    "proc.pcmdline", Str, ALL, Pcmdline, "parent's argv joined by spaces; absent when unknown";
    "proc.aname", Str, ALL, Aname, "ancestor name, `proc.aname[N]` (1 = parent, same as proc.pname); the model carries only the parent, so N >= 2 is always absent";
    "proc.cgroup_id", Num, ALL, CgroupId, "cgroup v2 id";
    "container.id", Str, ALL, ContainerId, "container id (64 hex digits); absent outside containers";
    "user.uid", Num, ALL, Uid, "real user id";
    "user.euid", Num, ALL, Euid, "effective user id as tracked by the agent";
    "user.gid", Num, ALL, Gid, "real group id";
    "exec.filename", Str, EXEC, ExecFilename, "filename as passed to execve";
    "exec.success", Bool, EXEC, ExecSuccess, "the exec succeeded";
    "exec.from_memfd", Bool, EXEC, ExecFromMemfd, "the executed file is a memfd (fileless execution)";
    "exec.argc", Num, EXEC, ExecArgc, "number of captured argv entries";
    "file.op", Str, FILE, FileOp, "open, read, unlink, rename, link, symlink, chmod, chown, truncate, mkdir, rmdir, utimens, mount, umount, chdir";
    "file.path", Str, FILE, FilePath, "the file (absolute when resolved)";
    "file.target", Str, FILE, FileTarget, "second path: rename/link destination, symlink target, mount source";
    "file.name", Str, FILE, FileName, "basename of file.path";
    "file.directory", Str, FILE, FileDirectory, "directory of file.path (`/` for top-level files)";
    "file.flags", Num, FILE, FileFlags, "open (O_*) or other syscall flags";
    "file.mode", Num, FILE, FileMode, "mode for open/creat/mkdir/chmod (`file.mode & 0o4000` tests setuid)";
    "file.success", Bool, FILE, FileSuccess, "the syscall succeeded";
    "net.op", Str, NET, NetOp, "connect, bind, listen or accept";
    "net.family", Str, NET, NetFamily, "inet, inet6, unix, none or `family <n>`";
    "net.address", Str, NET, NetAddress, "IP address, unix socket path, or empty";
    "net.port", Num, NET, NetPort, "port (inet/inet6), else 0";
    "net.success", Bool, NET, NetSuccess, "the syscall succeeded (EINPROGRESS counts)";
    "setid.syscall", Str, &["setid"], SetidSyscall, "setuid, setresgid, …";
    "setid.ids", Str, &["setid"], SetidIds, "id arguments joined by spaces (4294967295 = unchanged)";
    "kill.target_pid", Num, &["kill"], KillTargetPid, "target pid or tid";
    "kill.signal", Num, &["kill"], KillSignal, "signal number";
    "ptrace.request_name", Str, &["ptrace"], PtraceRequestName, "ptrace request name when known";
    "ptrace.target_pid", Num, &["ptrace"], PtraceTargetPid, "target pid";
    "set_name.name", Str, &["set_name"], SetNameName, "the new task name";
    "memfd.name", Str, &["memfd_create"], MemfdName, "name given to memfd_create";
    "syscall.name", Str, &["syscall"], SyscallName, "raw syscall name";
    "change.path", Str, CHANGE, ChangePath, "the watched file that changed";
    "change.old_sha256", Str, CHANGE, ChangeOldSha, "SHA-256 before; absent for a new file";
    "change.new_sha256", Str, CHANGE, ChangeNewSha, "SHA-256 now; absent when the file is gone";
    "change.diff", Str, CHANGE, ChangeDiff, "unified diff; absent for binary or large files";
    "change.trigger", Str, CHANGE, ChangeTrigger, "close_write, rename, truncate, unlink, chmod, chown, exit, startup";
}

/// The registered field called `name` (without index).
pub fn lookup(name: &str) -> Option<&'static FieldDef> {
    FIELDS.iter().find(|f| f.name == name)
}

/// A field's value in one event.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value<'e> {
    Str(Cow<'e, str>),
    Num(i128),
    Bool(bool),
}

fn text(s: &str) -> Option<Value<'_>> {
    Some(Value::Str(Cow::Borrowed(s)))
}

fn known(s: &str) -> Option<Value<'_>> {
    if s.is_empty() { None } else { text(s) }
}

fn num(n: impl Into<i128>) -> Option<Value<'static>> {
    Some(Value::Num(n.into()))
}

fn joined(parts: &[String]) -> Option<Value<'_>> {
    match parts {
        [] => None,
        [one] => text(one),
        _ => Some(Value::Str(Cow::Owned(parts.join(" ")))),
    }
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn dirname(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => "",
    }
}

/// Reads field `id` (with index `index`) from `ev`; `None` when absent.
pub(crate) fn extract(id: FieldId, index: Option<u32>, ev: &Event) -> Option<Value<'_>> {
    let p = &ev.process;
    match (id, &ev.event) {
        (FieldId::EvtKind, _) => text(ev.kind()),
        (FieldId::EvtSeq, _) => num(ev.seq),
        (FieldId::EvtTime, _) => Some(Value::Str(Cow::Owned(ev.time.to_string()))),
        (FieldId::Pid, _) => num(p.pid),
        (FieldId::Tid, _) => num(p.tid),
        (FieldId::Ppid, _) => num(p.ppid),
        (FieldId::Name, _) => text(&p.comm),
        (FieldId::Exe, _) => known(&p.exe),
        (FieldId::Cmdline, EventBody::Exec(e)) => joined(&e.argv).or_else(|| known(&e.filename)),
        (FieldId::Cmdline, _) => known(&p.exe),
        (FieldId::Args, EventBody::Exec(e)) => match e.argv.get(1..) {
            Some(rest) if !rest.is_empty() => joined(rest),
            _ => text(""),
        },
        (FieldId::Pname, _) => known(basename(&p.parent_exe)),
        (FieldId::Aname, _) if index == Some(1) => known(basename(&p.parent_exe)),
        (FieldId::Pexe, _) => known(&p.parent_exe),
        (FieldId::Pcmdline, _) => joined(&p.parent_argv),
        (FieldId::CgroupId, _) => num(p.cgroup_id),
        (FieldId::ContainerId, _) => p.container_id.as_deref().and_then(known),
        (FieldId::Uid, _) => num(p.uid),
        (FieldId::Euid, _) => num(p.euid),
        (FieldId::Gid, _) => num(p.gid),
        (FieldId::ExecFilename, EventBody::Exec(e)) => text(&e.filename),
        (FieldId::ExecSuccess, EventBody::Exec(e)) => Some(Value::Bool(e.success)),
        (FieldId::ExecFromMemfd, EventBody::Exec(e)) => Some(Value::Bool(e.from_memfd)),
        (FieldId::ExecArgc, EventBody::Exec(e)) => num(e.argv.len() as u64),
        (FieldId::FileOp, EventBody::File(f)) => text(&f.op),
        (FieldId::FilePath, EventBody::File(f)) => text(&f.path),
        (FieldId::FileTarget, EventBody::File(f)) => text(&f.target),
        (FieldId::FileName, EventBody::File(f)) => text(basename(&f.path)),
        (FieldId::FileDirectory, EventBody::File(f)) => text(dirname(&f.path)),
        (FieldId::FileFlags, EventBody::File(f)) => num(f.flags),
        (FieldId::FileMode, EventBody::File(f)) => num(f.mode),
        (FieldId::FileSuccess, EventBody::File(f)) => Some(Value::Bool(f.success)),
        (FieldId::NetOp, EventBody::Net(n)) => text(&n.op),
        (FieldId::NetFamily, EventBody::Net(n)) => text(&n.family),
        (FieldId::NetAddress, EventBody::Net(n)) => text(&n.address),
        (FieldId::NetPort, EventBody::Net(n)) => num(n.port),
        (FieldId::NetSuccess, EventBody::Net(n)) => Some(Value::Bool(n.success)),
        (FieldId::SetidSyscall, EventBody::SetId(s)) => text(&s.syscall),
        (FieldId::SetidIds, EventBody::SetId(s)) => {
            let ids: Vec<String> = s.ids.iter().map(u32::to_string).collect();
            Some(Value::Str(Cow::Owned(ids.join(" "))))
        }
        (FieldId::KillTargetPid, EventBody::Kill(k)) => num(k.target_pid),
        (FieldId::KillSignal, EventBody::Kill(k)) => num(k.signal),
        (FieldId::PtraceRequestName, EventBody::Ptrace(t)) => text(&t.request_name),
        (FieldId::PtraceTargetPid, EventBody::Ptrace(t)) => num(t.target_pid),
        (FieldId::SetNameName, EventBody::SetName(s)) => text(&s.name),
        (FieldId::MemfdName, EventBody::MemfdCreate(m)) => text(&m.name),
        (FieldId::SyscallName, EventBody::Syscall(s)) => text(&s.name),
        (FieldId::ChangePath, EventBody::ConfigChange(c)) => text(&c.path),
        (FieldId::ChangeOldSha, EventBody::ConfigChange(c)) => {
            c.old_sha256.as_deref().and_then(text)
        }
        (FieldId::ChangeNewSha, EventBody::ConfigChange(c)) => {
            c.new_sha256.as_deref().and_then(text)
        }
        (FieldId::ChangeDiff, EventBody::ConfigChange(c)) => c.diff.as_deref().and_then(text),
        (FieldId::ChangeTrigger, EventBody::ConfigChange(c)) => text(&c.trigger),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_are_unique_and_documented() {
        for (i, f) in FIELDS.iter().enumerate() {
            assert!(!f.doc.is_empty(), "{}", f.name);
            assert!(
                FIELDS[i + 1..].iter().all(|g| g.name != f.name),
                "{}",
                f.name
            );
            assert!(
                f.kinds.iter().all(|k| EVENT_KINDS.contains(k)),
                "{}",
                f.name
            );
        }
        assert_eq!(lookup("proc.name").map(|f| f.ty), Some(FieldType::Str));
        assert!(lookup("proc.aname").is_some_and(|f| f.indexed));
    }

    #[test]
    fn path_helpers() {
        assert_eq!(basename("/usr/bin/bash"), "bash");
        assert_eq!(basename("bash"), "bash");
        assert_eq!(dirname("/etc/passwd"), "/etc");
        assert_eq!(dirname("/etc"), "/");
        assert_eq!(dirname("rel"), "");
    }
}
