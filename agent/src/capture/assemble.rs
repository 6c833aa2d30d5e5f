//! Turns decoded kernel records into model events: pairs exec entry and return, adds ppid from the process
//! table, converts kernel time to wall time, and numbers every event.
//!
//! Pure logic (no I/O beyond the process table's `/proc` fallback), so it is tested without a kernel.
//! It never drops a record: an exec whose return record never comes is emitted with `ret: None`.

use std::collections::HashMap;

use agent_common::decode::{Record, c_text, comm, exec_args, exec_filename};
use agent_common::wire::{
    EXEC_ARGS_TRUNCATED, EXEC_FILENAME_TRUNCATED, EXEC_HELD, EXEC_KILLED, EXIT_CODE_KNOWN,
    EXIT_SIGNAL_KNOWN, FORK_CLONE_FLAGS_KNOWN, RecordHeader, Syscall,
};
use auditloop_model::{self as model, ChangeTrigger, Event, EventBody, FileOp, Process};

use crate::clock::Clock;

use super::canon::{Last, LiveFs, canonicalize};
use super::containers::Containers;
use super::convert;
use super::fdtable::FdTable;
use super::policy::PathPolicy;
use super::proctable::ProcessTable;
use super::resolve;
use super::sockets::SocketTable;
use super::tables::Tables;
use super::tcpstate::TcpStates;
use super::uring::{self, PendingOp, UringFiles, UringPairing};
use crate::enforce::Decisions;
use crate::identity::Identities;

/// Most descriptors the descriptor table keeps.
const FD_TABLE_CAPACITY: usize = 1 << 16;
/// Most sockets the socket table keeps.
const SOCKET_TABLE_CAPACITY: usize = 1 << 16;

/// Why a watched file may have changed: the trigger and the path, with the process that did it.
#[derive(Clone, Debug, PartialEq)]
pub struct FileTouch {
    /// Absolute path.
    pub path: String,
    /// What happened to it.
    pub trigger: ChangeTrigger,
    /// The process.
    pub process: Process,
}

/// An exec entry still waiting for its return record is emitted without a result after this long.
pub const EXEC_PAIR_TIMEOUT_NS: u64 = 5_000_000_000;

struct PendingExec {
    header: RecordHeader,
    body: model::Exec,
}

struct PendingSyscall {
    record: Box<Syscall>,
}

/// Assembles events from records, in arrival order.
pub struct Assembler {
    clock: Clock,
    procs: ProcessTable,
    fds: FdTable,
    socks: SocketTable,
    tcp: TcpStates,
    /// Connects under way, by socket, until the kernel reports their local end.
    parked: HashMap<u64, Event>,
    containers: Containers,
    pending: HashMap<u32, PendingExec>,
    pending_sys: HashMap<u32, PendingSyscall>,
    touches: Vec<FileTouch>,
    identities: Identities,
    policy: PathPolicy,
    filtered: u64,
    decisions: Decisions,
    uring: UringPairing,
    uring_files: UringFiles,
    /// Names of the kernel deny rules, by index.
    deny_names: Vec<String>,
    /// File operations the LSM refused (rule, the kernel's path), by thread, until the syscall's return
    /// names the event.
    denials: HashMap<u32, (String, String)>,
}

/// Most LSM refusals of file operations waiting for their syscall's return.
const DENIALS_CAPACITY: usize = 4096;

impl Assembler {
    /// An assembler. Events leave it with `seq` 0: the journal numbers them as it appends them.
    pub fn new(clock: Clock, procs: ProcessTable) -> Assembler {
        Assembler {
            clock,
            procs,
            fds: FdTable::new(FD_TABLE_CAPACITY),
            socks: SocketTable::new(SOCKET_TABLE_CAPACITY),
            tcp: TcpStates::default(),
            parked: HashMap::new(),
            containers: Containers::default(),
            pending: HashMap::new(),
            pending_sys: HashMap::new(),
            touches: Vec::new(),
            identities: Identities::default(),
            policy: PathPolicy::default(),
            filtered: 0,
            decisions: Decisions::default(),
            uring: UringPairing::default(),
            uring_files: UringFiles::default(),
            deny_names: Vec::new(),
            denials: HashMap::new(),
        }
    }

    /// Names of the kernel deny rules, by the index LSM records carry.
    pub fn set_deny_names(&mut self, names: Vec<String>) {
        self.deny_names = names;
    }

    /// An LSM refusal: an exec's goes to the decisions its exec event takes; a file operation's waits for
    /// the failed syscall of the same thread.
    fn on_lsm_deny(&mut self, rec: &agent_common::wire::LsmDeny) {
        let rule = self
            .deny_names
            .get(rec.rule as usize)
            .cloned()
            .unwrap_or_else(|| format!("#{}", rec.rule));
        let len = (rec.path_len as usize)
            .saturating_sub(1)
            .min(rec.path.len());
        let path = String::from_utf8_lossy(&rec.path[..len]).into_owned();
        if rec.hook == agent_common::wire::HOOK_EXEC {
            self.decisions.put(
                rec.header.pid,
                crate::enforce::Decision {
                    rule,
                    killed: rec.flags & agent_common::wire::DENY_KILL != 0,
                    path,
                    mono_ns: rec.header.ktime_ns,
                    lsm: true,
                },
            );
            return;
        }
        if self.denials.len() >= DENIALS_CAPACITY {
            // Refusals whose syscall records were lost or filtered.
            self.denials.clear();
        }
        self.denials.insert(rec.header.tid, (rule, path));
    }

    /// File changes seen since the last call (for the config watch stage).
    pub fn take_touches(&mut self) -> Vec<FileTouch> {
        std::mem::take(&mut self.touches)
    }

    /// Takes the exec guard's refusals from `decisions` for the exec events they concern.
    pub fn set_decisions(&mut self, decisions: Decisions) {
        self.decisions = decisions;
    }

    /// Fills what `/proc` no longer told of a process (it exited) from the process table, and its context
    /// (parent, login identity, lineage).
    pub fn complete_process(&mut self, mut process: Process) -> Process {
        let known_exe = self.procs.get(process.pid).map(|i| i.exe.clone());
        if let Some(exe) = known_exe {
            if process.comm.is_empty() {
                process.comm = exe
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(15)
                    .collect();
            }
            self.procs.fill(&mut process);
        }
        process
    }

    /// Sets how many ancestors processes keep and exec events record (`capture.ancestry`).
    pub fn set_ancestry(&mut self, depth: usize, exec_depth: usize) {
        self.procs.set_ancestry(depth, exec_depth);
    }

    /// Judges records the kernel could not decide on by `policy` from now on.
    pub fn set_policy(&mut self, policy: PathPolicy) {
        self.policy = policy;
    }

    /// Records filtered in userspace so far (kernel records whose canonical path turned out to be ignored,
    /// or not sensitive for a read-only open).
    pub fn filtered(&self) -> u64 {
        self.filtered
    }

    /// Measures the wall-clock offset again (call periodically: the real-time clock may be stepped).
    pub fn remeasure_clock(&self) {
        self.clock.remeasure();
    }

    /// Number of entries (exec, other syscalls, io_uring requests, connects under way) waiting for
    /// their return record.
    pub fn pending_execs(&self) -> usize {
        self.pending.len() + self.pending_sys.len() + self.uring.pending() + self.parked.len()
    }

    /// Handles one record, appending the events it completes to `out`.
    pub fn push(&mut self, record: Record, out: &mut Vec<Event>) {
        match record {
            Record::ExecEnter(rec) => {
                let body = model::Exec {
                    filename: exec_filename(&rec),
                    argv: exec_args(&rec).into_iter().map(|(a, _)| a).collect(),
                    argv_truncated: rec.flags & EXEC_ARGS_TRUNCATED != 0,
                    truncated_args: exec_args(&rec)
                        .iter()
                        .enumerate()
                        .filter(|(_, (_, cut))| *cut)
                        .filter_map(|(i, _)| u32::try_from(i).ok())
                        .collect(),
                    filename_truncated: rec.flags & EXEC_FILENAME_TRUNCATED != 0,
                    dirfd: rec.dirfd,
                    at_flags: rec.at_flags,
                    ret: None,
                    success: false,
                    old_comm: comm(&rec.header),
                    from_memfd: false,
                    killed_by_rule: (rec.flags & EXEC_KILLED != 0).then_some(rec.header.aux),
                    held_by_rule: (rec.flags & EXEC_HELD != 0).then_some(rec.header.aux),
                    ..model::Exec::default()
                };
                let pending = PendingExec {
                    header: rec.header,
                    body,
                };
                if let Some(stale) = self.pending.insert(rec.header.tid, pending) {
                    // The same thread exec'd again without a return record for the first attempt.
                    self.emit_exec(stale, None, None, out);
                }
            }
            Record::ExecExit(rec) => {
                let key = if self.pending.contains_key(&rec.header.tid) {
                    Some(rec.header.tid)
                } else {
                    // A non-leader thread that exec'd successfully took over the process id as its tid.
                    self.pending
                        .iter()
                        .find(|(_, p)| p.header.pid == rec.header.pid)
                        .map(|(&tid, _)| tid)
                };
                let pending = key
                    .and_then(|k| self.pending.remove(&k))
                    .unwrap_or_else(|| PendingExec {
                        // The entry record was lost (counted as loss); keep what the return tells.
                        header: rec.header,
                        body: model::Exec {
                            dirfd: agent_common::wire::AT_FDCWD,
                            ..model::Exec::default()
                        },
                    });
                let mut pending = pending;
                if rec.ret == 0 {
                    pending.header.comm = rec.header.comm;
                    self.exec_succeeded(&mut pending);
                }
                let returned = rec.header.ktime_ns;
                self.emit_exec(pending, Some(rec.ret), Some(returned), out);
            }
            Record::Fork(rec) => {
                let child = rec.child_tid;
                let start = self.clock.wall(rec.header.ktime_ns);
                self.procs.on_fork(rec.header.pid, child, Some(start));
                let body = EventBody::Fork(model::Fork {
                    child_pid: child,
                    thread: false,
                    clone_flags: (rec.flags & FORK_CLONE_FLAGS_KNOWN != 0)
                        .then_some(rec.clone_flags),
                });
                let event = self.event(&rec.header, body);
                out.push(event);
            }
            Record::Exit(rec) => {
                let code = (rec.flags & EXIT_CODE_KNOWN != 0)
                    .then(|| i32::try_from((rec.status >> 8) & 0xff).unwrap_or(0));
                let signal = (rec.flags & EXIT_SIGNAL_KNOWN != 0)
                    .then(|| i32::try_from(rec.status & 0x7f).unwrap_or(0));
                // Exit codes win over a signal stashed earlier: exit_group ran after it.
                let (code, signal) = match (code, signal) {
                    (Some(c), Some(_)) => (Some(c), None),
                    other => other,
                };
                let body = EventBody::Exit(model::Exit { code, signal });
                let event = self.event(&rec.header, body);
                for fd in self.fds.remove_process(rec.header.pid) {
                    if fd.memfd.is_none() && !fd.dir {
                        self.touches.push(FileTouch {
                            path: fd.path,
                            trigger: ChangeTrigger::Exit,
                            process: event.process.clone(),
                        });
                    }
                }
                self.uring_files.forget_process(rec.header.pid);
                self.socks.remove_process(rec.header.pid);
                self.procs.on_exit(rec.header.pid);
                out.push(event);
            }
            Record::Syscall(rec) => {
                if let Some(stale) = self
                    .pending_sys
                    .insert(rec.header.tid, PendingSyscall { record: rec })
                {
                    self.emit_syscall(stale.record, None, out);
                }
            }
            Record::SysExit(rec) => {
                match self.pending_sys.remove(&rec.header.tid) {
                    Some(p) if p.record.nr == rec.nr => {
                        self.emit_syscall(p.record, Some(rec.ret), out)
                    }
                    Some(p) => {
                        // A different syscall's return: the entry's own return was missed.
                        self.emit_syscall(p.record, None, out);
                    }
                    // The entry record was lost (and counted); nothing to describe.
                    None => {}
                }
            }
            Record::CloseWrite(rec) => {
                if let Some(fd) = self
                    .fds
                    .remove(rec.header.pid, i64::from(rec.fd))
                    .filter(|fd| !fd.dir)
                {
                    let process = self.process(&rec.header);
                    self.touches.push(FileTouch {
                        path: fd.path,
                        trigger: ChangeTrigger::CloseWrite,
                        process,
                    });
                }
            }
            Record::UringSetup(rec) => {
                let body = self.uring.on_setup(&rec);
                let event = self.event(&rec.header, body);
                out.push(event);
            }
            Record::UringOp(op, strs) => {
                if let Some(evicted) = self.uring.on_submit(op, strs) {
                    self.emit_uring(evicted, None, out);
                }
            }
            Record::UringFile(rec) => self.uring.on_file(&rec),
            Record::SockState(rec) => {
                if let Some(skaddr) = self.tcp.on_record(&rec)
                    && let Some(mut event) = self.parked.remove(&skaddr)
                {
                    if let (EventBody::Net(n), Some((local, _))) =
                        (&mut event.event, self.tcp.active(skaddr))
                    {
                        super::net::complete_connect(n, local);
                    }
                    out.push(event);
                }
            }
            Record::UringComplete(rec) => {
                if let Some(p) = self.uring.on_complete(rec.req) {
                    self.emit_uring(p, Some(i64::from(rec.res)), out);
                }
            }
            Record::LsmDeny(rec) => self.on_lsm_deny(&rec),
        }
    }

    /// Emits a finished io_uring request: its `io_uring` event, then its `file`/`net` event if it has one.
    fn emit_uring(&mut self, p: PendingOp, ret: Option<i64>, out: &mut Vec<Event>) {
        let mut tables = Tables {
            procs: &mut self.procs,
            fds: &mut self.fds,
            socks: &mut self.socks,
            tcp: &mut self.tcp,
            policy: &self.policy,
        };
        let converted = uring::convert(&p, ret, &mut tables, &mut self.uring_files);
        let header = self.uring.submitter(&p.op);
        let event = self.event(&header, EventBody::IoUring(converted.op));
        if let Some(path) = converted.closed_write {
            self.touches.push(FileTouch {
                path,
                trigger: ChangeTrigger::CloseWrite,
                process: event.process.clone(),
            });
        }
        out.push(event);
        if let Some(body) = converted.also {
            let event = self.event(&header, body);
            self.push_file_touches(&event);
            out.push(event);
        }
    }

    fn exec_succeeded(&mut self, pending: &mut PendingExec) {
        let pid = pending.header.pid;
        let exec = &mut pending.body;
        let fd_exec = exec
            .filename
            .strip_prefix("/dev/fd/")
            .or_else(|| exec.filename.strip_prefix("/proc/self/fd/"))
            .and_then(|n| n.parse::<i64>().ok())
            .or_else(|| {
                (exec.filename.is_empty() && exec.dirfd >= 0).then_some(i64::from(exec.dirfd))
            });
        // The descriptor may have been inherited from the parent, where the agent saw it created.
        let ppid = self.procs.ppid(pid);
        let from_fd = fd_exec
            .and_then(|fd| self.fds.get(pid, fd).or_else(|| self.fds.get(ppid, fd)))
            .cloned();
        let exe = match &from_fd {
            Some(info) => {
                exec.from_memfd = info.memfd.is_some();
                info.path.clone()
            }
            // The running image: the file the kernel executed, whatever name reached it.
            None => match resolve::proc_link(pid, "exe").filter(|p| !p.ends_with(" (deleted)")) {
                Some(exe) => exe,
                None => self
                    .canonical_exec(pid, pending.header.tid, exec)
                    .unwrap_or_else(|| exec.filename.clone()),
            },
        };
        if !exec.from_memfd
            && let Some(id) = self.identities.of_exec(pid, &exe)
        {
            (exec.dev, exec.inode, exec.sha256) = (id.dev, id.inode, id.sha256);
        }
        if exe != exec.filename && !exec.from_memfd {
            exec.raw_filename = std::mem::replace(&mut exec.filename, exe.clone());
        }
        let setuid_owner = std::fs::metadata(&exe).ok().and_then(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.mode() & 0o4000 != 0).then_some(m.uid())
        });
        let comm = c_text(&pending.header.comm);
        self.procs
            .on_exec(pid, exe, exec.argv.clone(), comm, setuid_owner);
    }

    fn emit_syscall(&mut self, record: Box<Syscall>, ret: Option<i64>, out: &mut Vec<Event>) {
        let mut tables = Tables {
            procs: &mut self.procs,
            fds: &mut self.fds,
            socks: &mut self.socks,
            tcp: &mut self.tcp,
            policy: &self.policy,
        };
        let Some(mut body) = convert::body(&record, ret, &mut tables) else {
            // A `socket` is remembered, never an event; anything else was filtered.
            if record.op != agent_common::wire::SyscallOp::Socket as u32 {
                self.filtered += 1;
            }
            return;
        };
        // The next file event of the thread is the refused operation's (a success means it was not).
        if let EventBody::File(file) = &mut body
            && let Some((rule, kernel_path)) = self.denials.remove(&record.header.tid)
            && !file.success
        {
            file.denied_by_rule = Some(rule);
            file.kernel_path = kernel_path;
        }
        let event = self.event(&record.header, body);
        if let Some(skaddr) = self.tcp.take_park() {
            // A connect under way: held (not dropped) until the kernel reports its local end.
            if let Some(older) = self.parked.insert(skaddr, event) {
                out.push(older);
            }
            return;
        }
        self.push_file_touches(&event);
        out.push(event);
    }

    /// Tells the config watch about a successful file change that may have changed a watched file.
    fn push_file_touches(&mut self, event: &Event) {
        let EventBody::File(file) = &event.event else {
            return;
        };
        if !file.success {
            return;
        }
        let trigger = match file.op {
            FileOp::Rename => ChangeTrigger::Rename,
            FileOp::Truncate => ChangeTrigger::Truncate,
            FileOp::Unlink => ChangeTrigger::Unlink,
            FileOp::Chmod => ChangeTrigger::Chmod,
            FileOp::Chown => ChangeTrigger::Chown,
            FileOp::Open
            | FileOp::Read
            | FileOp::Link
            | FileOp::Symlink
            | FileOp::Mkdir
            | FileOp::Rmdir
            | FileOp::Utimens
            | FileOp::Mount
            | FileOp::Umount
            | FileOp::Chdir => return,
        };
        for path in [&file.path, &file.target] {
            if !path.is_empty() {
                self.touches.push(FileTouch {
                    path: path.clone(),
                    trigger,
                    process: event.process.clone(),
                });
            }
        }
    }

    /// Emits entries older than [`EXEC_PAIR_TIMEOUT_NS`] (at monotonic time `now_ns`) without a result.
    pub fn flush_stale(&mut self, now_ns: u64, out: &mut Vec<Event>) {
        let stale: Vec<u32> = self
            .pending_sys
            .iter()
            .filter(|(_, p)| now_ns.saturating_sub(p.record.header.ktime_ns) > EXEC_PAIR_TIMEOUT_NS)
            .map(|(&tid, _)| tid)
            .collect();
        for tid in stale {
            if let Some(p) = self.pending_sys.remove(&tid) {
                self.emit_syscall(p.record, None, out);
            }
        }
        let stale: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| now_ns.saturating_sub(p.header.ktime_ns) > EXEC_PAIR_TIMEOUT_NS)
            .map(|(&tid, _)| tid)
            .collect();
        for tid in stale {
            if let Some(p) = self.pending.remove(&tid) {
                self.emit_exec(p, None, None, out);
            }
        }
        for p in self.uring.take_stale(now_ns) {
            self.emit_uring(p, None, out);
        }
        let stale: Vec<u64> = self
            .parked
            .iter()
            .filter(|(_, e)| now_ns.saturating_sub(e.mono_ns) > EXEC_PAIR_TIMEOUT_NS)
            .map(|(&sk, _)| sk)
            .collect();
        for sk in stale {
            if let Some(event) = self.parked.remove(&sk) {
                out.push(event);
            }
        }
    }

    /// Emits every entry still waiting (at shutdown).
    pub fn flush_all(&mut self, out: &mut Vec<Event>) {
        let mut sys: Vec<PendingSyscall> = self.pending_sys.drain().map(|(_, p)| p).collect();
        sys.sort_by_key(|p| p.record.header.ktime_ns);
        for p in sys {
            self.emit_syscall(p.record, None, out);
        }
        let mut all: Vec<PendingExec> = self.pending.drain().map(|(_, p)| p).collect();
        all.sort_by_key(|p| p.header.ktime_ns);
        for p in all {
            self.emit_exec(p, None, None, out);
        }
        for p in self.uring.take_all() {
            self.emit_uring(p, None, out);
        }
        let mut parked: Vec<Event> = self.parked.drain().map(|(_, e)| e).collect();
        parked.sort_by_key(|e| e.mono_ns);
        out.extend(parked);
    }

    /// An event not tied to a kernel record (loss reports, agent lifecycle).
    pub fn agent_event(&self, body: EventBody) -> Event {
        self.clock.agent_event(body)
    }

    /// An event about `process` observed now (e.g. a config change found by the watch stage).
    pub fn event_for(&self, process: Process, body: EventBody) -> Event {
        self.clock.event_for(process, body)
    }

    /// The canonical path of the file an exec names (from its dirfd or the cwd).
    fn canonical_exec(&mut self, pid: u32, tid: u32, exec: &model::Exec) -> Option<String> {
        let base = if exec.dirfd == agent_common::wire::AT_FDCWD {
            self.procs.cwd(pid)
        } else {
            resolve::proc_link(pid, &format!("fd/{}", exec.dirfd))
        };
        canonicalize(
            &mut LiveFs,
            pid,
            tid,
            base.as_deref(),
            &exec.filename,
            Last::Follow,
        )
    }

    /// Emits an exec; `returned_ns` is when it returned (`None`: its return record was lost or has not come).
    fn emit_exec(
        &mut self,
        p: PendingExec,
        ret: Option<i64>,
        returned_ns: Option<u64>,
        out: &mut Vec<Event>,
    ) {
        let mut body = p.body;
        body.ret = ret;
        body.success = ret == Some(0);
        // A refusal of the exec guard belongs to the exec it happened in: between its entry and return.
        let window = p.header.ktime_ns..=returned_ns.unwrap_or(u64::MAX);
        if !body.success
            && let Some(refused) = self.decisions.take_within(p.header.pid, &window)
        {
            if let Some(id) = self.identities.of_exec(0, &refused.path) {
                (body.dev, body.inode, body.sha256) = (id.dev, id.inode, id.sha256);
            }
            // The guard saw the file the kernel resolved: that is the canonical name.
            if refused.path != body.filename && body.raw_filename.is_empty() {
                body.raw_filename = std::mem::replace(&mut body.filename, refused.path);
            }
            body.stopped_by_rule = Some(refused.rule);
            body.stopped_by = if refused.lsm { "lsm" } else { "exec_guard" }.into();
        }
        if !body.success
            && body.raw_filename.is_empty()
            && let Some(path) = self.canonical_exec(p.header.pid, p.header.tid, &body)
            && path != body.filename
        {
            // A failed exec names what it tried to run; nothing was executed to identify.
            body.raw_filename = std::mem::replace(&mut body.filename, path);
        }
        body.cwd = self.procs.cwd(p.header.pid).unwrap_or_default();
        body.ancestors = self.procs.exec_ancestors(p.header.pid);
        let event = self.event(&p.header, EventBody::Exec(body));
        out.push(event);
    }

    fn event(&mut self, header: &RecordHeader, body: EventBody) -> Event {
        let process = self.process(header);
        Event {
            seq: 0,
            time: self.clock.wall(header.ktime_ns),
            mono_ns: header.ktime_ns,
            process,
            event: body,
        }
    }

    fn process(&mut self, header: &RecordHeader) -> Process {
        let mut process = Process {
            pid: header.pid,
            tid: header.tid,
            uid: header.uid,
            gid: header.gid,
            comm: c_text(&header.comm),
            euid: header.uid,
            cgroup_id: header.cgroup_id,
            container_id: self.containers.id(header.cgroup_id, header.pid),
            ..Process::default()
        };
        self.procs.fill(&mut process);
        process
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_common::wire::{ExecEnter, ExecExit, Exit, Fork, RecordKind};
    use auditloop_model::WallTime;

    fn header(kind: RecordKind, pid: u32, tid: u32, t: u64, name: &[u8]) -> RecordHeader {
        let mut comm = [0u8; 16];
        comm[..name.len()].copy_from_slice(name);
        RecordHeader {
            kind: kind as u32,
            aux: 0,
            ktime_ns: t,
            pid,
            tid,
            uid: 1000,
            gid: 1000,
            comm,
            cgroup_id: 0,
        }
    }

    fn enter(pid: u32, tid: u32, t: u64, args: &[&str]) -> Record {
        let mut rec: ExecEnter = bytemuck::Zeroable::zeroed();
        rec.header = header(RecordKind::ExecEnter, pid, tid, t, b"sh");
        rec.filename[..9].copy_from_slice(b"/bin/true");
        rec.filename_len = 10;
        for (i, a) in args.iter().enumerate() {
            rec.args[i][..a.len()].copy_from_slice(a.as_bytes());
            rec.arg_lens[i] = u16::try_from(a.len() + 1).unwrap();
        }
        rec.argc = u32::try_from(args.len()).unwrap();
        Record::ExecEnter(Box::new(rec))
    }

    fn exit_rec(pid: u32, tid: u32, t: u64, ret: i64) -> Record {
        Record::ExecExit(ExecExit {
            header: header(RecordKind::ExecExit, pid, tid, t, b"true"),
            ret,
        })
    }

    fn assembler() -> (Assembler, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let procs = ProcessTable::new(64, dir.path());
        (Assembler::new(Clock::with_offset(1_000), procs), dir)
    }

    #[test]
    fn pairs_exec_and_fills_ppid() {
        let (mut a, _dir) = assembler();
        let mut out = Vec::new();
        a.push(
            Record::Fork(Fork {
                header: header(RecordKind::Fork, 10, 10, 1, b"bash"),
                child_tid: 20,
                flags: 0,
                clone_flags: 0,
            }),
            &mut out,
        );
        a.push(enter(20, 20, 2, &["true", "marker-x"]), &mut out);
        assert_eq!(out.len(), 1, "exec waits for its return");
        a.push(exit_rec(20, 20, 3, 0), &mut out);
        assert_eq!(out.len(), 2);
        let ev = &out[1];
        assert_eq!(ev.process.pid, 20);
        assert_eq!(ev.process.ppid, 10);
        assert_eq!(ev.process.comm, "true");
        assert_eq!(ev.time, WallTime(1_002));
        let EventBody::Exec(exec) = &ev.event else {
            panic!("not exec: {ev:?}")
        };
        assert_eq!(exec.argv, vec!["true", "marker-x"]);
        assert_eq!(exec.ret, Some(0));
        assert!(exec.success);
        assert_eq!(exec.old_comm, "sh");
    }

    #[test]
    fn failed_exec_keeps_old_comm() {
        let (mut a, _dir) = assembler();
        let mut out = Vec::new();
        a.push(enter(5, 5, 1, &["nope"]), &mut out);
        a.push(exit_rec(5, 5, 2, -2), &mut out);
        let EventBody::Exec(exec) = &out[0].event else {
            panic!()
        };
        assert_eq!(exec.ret, Some(-2));
        assert!(!exec.success);
        assert_eq!(out[0].process.comm, "sh");
    }

    #[test]
    fn exec_from_non_leader_thread_pairs_by_pid() {
        let (mut a, _dir) = assembler();
        let mut out = Vec::new();
        a.push(enter(30, 33, 1, &["x"]), &mut out);
        a.push(exit_rec(30, 30, 2, 0), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(a.pending_execs(), 0);
    }

    #[test]
    fn unpaired_entries_are_flushed_not_dropped() {
        let (mut a, _dir) = assembler();
        let mut out = Vec::new();
        a.push(enter(1, 1, 1, &["a"]), &mut out);
        a.push(enter(2, 2, 10_000_000_000, &["b"]), &mut out);
        a.flush_stale(6_000_000_000, &mut out);
        assert_eq!(out.len(), 1);
        a.flush_all(&mut out);
        assert_eq!(out.len(), 2);
        for ev in &out {
            let EventBody::Exec(exec) = &ev.event else {
                panic!()
            };
            assert_eq!(exec.ret, None);
        }
    }

    #[test]
    fn exit_decodes_code_and_signal() {
        let (mut a, _dir) = assembler();
        let mut out = Vec::new();
        for (status, flags) in [(3 << 8, 1), (9, 2), (0, 0)] {
            a.push(
                Record::Exit(Exit {
                    header: header(RecordKind::Exit, 7, 7, 1, b"x"),
                    status,
                    flags,
                }),
                &mut out,
            );
        }
        let got: Vec<_> = out
            .iter()
            .map(|e| match &e.event {
                EventBody::Exit(x) => (x.code, x.signal),
                _ => panic!(),
            })
            .collect();
        assert_eq!(got, vec![(Some(3), None), (None, Some(9)), (None, None)]);
    }
}
