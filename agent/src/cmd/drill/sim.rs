//! The events the agent journals for the drill child's operations, as far as rules can see them: the
//! child's process facts (pid, parent, names, uid), exec results, memfd and file records. [`derive`]
//! plays them through the rule set to decide whether a candidate would fire.
//!
//! [`derive`]: crate::cmd::drill::plan::derive

use auditloop_model::{
    ChangeTrigger, ConfigChange, Event, EventBody, Exec, File, FileOp, IoUring, Kill, MemfdCreate,
    Net, NetOp, Process, Tamper, UringOp, WallTime,
};

use crate::cmd::drill::ops::{Context, MEMFD_NAME, Op};

/// Placeholder sha256 of the two sides of a simulated config change.
const SIM_SHA: [&str; 2] = ["0", "1"];

/// Placeholder pid of the drill's child in simulated events (grandchildren follow it).
const SIM_CHILD: u32 = 0x3fff_0000;
/// Descriptor number of the memfd and created files in simulated events.
const SIM_FD: i32 = 3;

/// Builds the events the agent journals for the child's operations.
pub struct Sim<'a> {
    ctx: &'a Context,
    linger: bool,
    mono_ns: u64,
    grandchildren: u32,
}

impl<'a> Sim<'a> {
    /// A simulation for a fresh child of the drill.
    pub fn new(ctx: &'a Context, linger: bool) -> Sim<'a> {
        Sim {
            ctx,
            linger,
            mono_ns: 1,
            grandchildren: 0,
        }
    }

    /// The events `op` causes, in order.
    pub fn events(&mut self, op: &Op) -> Vec<Event> {
        let ctx = self.ctx;
        let child = Process {
            pid: SIM_CHILD,
            tid: SIM_CHILD,
            ppid: ctx.pid,
            uid: ctx.uid,
            gid: ctx.gid,
            comm: ctx.comm.clone(),
            euid: ctx.uid,
            exe: ctx.exe.clone(),
            parent_exe: ctx.exe.clone(),
            parent_argv: ctx.argv.clone(),
            ..Process::default()
        };
        let mut actor = |fork: bool| {
            if !fork {
                return child.clone();
            }
            self.grandchildren += 1;
            let pid = SIM_CHILD + self.grandchildren;
            Process {
                pid,
                tid: pid,
                ppid: SIM_CHILD,
                ..child.clone()
            }
        };
        let bodies = match op {
            Op::Exec { path, fork } => {
                let process = actor(*fork);
                let body = EventBody::Exec(Exec {
                    filename: path.clone(),
                    argv: ctx.program_argv(path, self.linger),
                    dirfd: -100,
                    ret: Some(0),
                    success: true,
                    old_comm: ctx.comm.clone(),
                    ..Exec::default()
                });
                let comm = path.rsplit('/').next().unwrap_or(path);
                let after = Process {
                    comm: comm.chars().take(15).collect(),
                    exe: path.clone(),
                    ..process
                };
                vec![(after, body)]
            }
            Op::MemfdExec { fork } => {
                let memfd = EventBody::MemfdCreate(MemfdCreate {
                    name: MEMFD_NAME.into(),
                    flags: libc::MFD_CLOEXEC as u64,
                    ret: Some(i64::from(SIM_FD)),
                });
                let process = actor(*fork);
                let exec = EventBody::Exec(Exec {
                    filename: String::new(),
                    argv: ctx.program_argv(MEMFD_NAME, self.linger),
                    dirfd: SIM_FD,
                    at_flags: libc::AT_EMPTY_PATH as u32,
                    ret: Some(0),
                    success: true,
                    old_comm: ctx.comm.clone(),
                    from_memfd: true,
                    ..Exec::default()
                });
                let after = Process {
                    comm: SIM_FD.to_string(),
                    exe: format!("/memfd:{MEMFD_NAME}"),
                    ..process
                };
                vec![(child.clone(), memfd), (after, exec)]
            }
            Op::Read { path } => vec![(
                child.clone(),
                file(
                    FileOp::Read,
                    path,
                    (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
                    0,
                    -1,
                    SIM_FD,
                ),
            )],
            Op::Create { path } => {
                let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
                vec![
                    (
                        child.clone(),
                        file(
                            FileOp::Open,
                            path,
                            (flags | libc::O_CLOEXEC) as u64,
                            0o600,
                            SIM_FD,
                            SIM_FD,
                        ),
                    ),
                    (child.clone(), file(FileOp::Unlink, path, 0, 0, -1, 0)),
                ]
            }
            Op::Chmod { path, mode } => {
                let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
                let mut chmod = file(FileOp::Chmod, path, 0, *mode, -1, 0);
                if let EventBody::File(f) = &mut chmod {
                    f.syscall = "fchmodat".into();
                }
                vec![
                    (
                        child.clone(),
                        file(
                            FileOp::Open,
                            path,
                            (flags | libc::O_CLOEXEC) as u64,
                            0o600,
                            SIM_FD,
                            SIM_FD,
                        ),
                    ),
                    (child.clone(), chmod),
                    (child.clone(), file(FileOp::Unlink, path, 0, 0, -1, 0)),
                ]
            }
            Op::ServerShell { server, shell } => {
                let server_argv = ctx.server_argv(server, shell);
                let as_server = Process {
                    comm: basename(server),
                    exe: server.clone(),
                    ..child.clone()
                };
                let exec_server = exec(server, server_argv.clone(), &ctx.comm);
                let shell_pid = actor(true).pid;
                let as_shell = Process {
                    pid: shell_pid,
                    tid: shell_pid,
                    ppid: as_server.pid,
                    comm: basename(shell),
                    exe: shell.clone(),
                    parent_exe: server.clone(),
                    parent_argv: server_argv,
                    ..child.clone()
                };
                let shell_argv = vec![shell.clone(), "-c".into(), ":".into()];
                let exec_shell = exec(shell, shell_argv, &as_server.comm);
                vec![(as_server, exec_server), (as_shell, exec_shell)]
            }
            Op::Connect { program } => {
                let argv = ctx.connect_argv(program, 0);
                let as_program = Process {
                    comm: basename(program),
                    exe: program.clone(),
                    ..child.clone()
                };
                let connect = EventBody::Net(Net {
                    op: NetOp::Connect,
                    fd: i64::from(SIM_FD),
                    family: "inet".into(),
                    address: "127.0.0.1".into(),
                    ret: Some(0),
                    success: true,
                    ..Net::default()
                });
                vec![
                    (as_program.clone(), exec(program, argv, &ctx.comm)),
                    (as_program, connect),
                ]
            }
            Op::SignalAgent => {
                let target = i64::from(ctx.agent_pid);
                vec![
                    (
                        child.clone(),
                        EventBody::Kill(Kill {
                            syscall: "kill".into(),
                            target_pid: target,
                            signal: 0,
                            ret: Some(0),
                            success: true,
                        }),
                    ),
                    (
                        child.clone(),
                        EventBody::Tamper(Tamper {
                            what: "signal".into(),
                            target: format!("pid {target}"),
                            detail: "kill(signal 0) succeeded".into(),
                            trigger_seq: 0,
                        }),
                    ),
                ]
            }
            Op::Change { path } => vec![(child.clone(), config_change(path))],
            Op::UringCreate { path } => {
                let flags =
                    (libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC) as u64;
                let uring = EventBody::IoUring(IoUring {
                    op: UringOp::Openat,
                    opcode: 18,
                    ring_fd: i64::from(SIM_FD),
                    fd: -100,
                    path: path.clone(),
                    raw_path: path.clone(),
                    flags,
                    mode: 0o600,
                    ret: Some(i64::from(SIM_FD) + 1),
                    success: true,
                    file_or_net: true,
                    ..IoUring::default()
                });
                let mut open = file(FileOp::Open, path, flags, 0o600, -100, SIM_FD + 1);
                if let EventBody::File(f) = &mut open {
                    f.syscall = "io_uring_openat".into();
                }
                vec![
                    (child.clone(), uring),
                    (child.clone(), open),
                    (child.clone(), file(FileOp::Unlink, path, 0, 0, -1, 0)),
                ]
            }
        };
        bodies
            .into_iter()
            .map(|(process, event)| {
                self.mono_ns += 1_000;
                Event {
                    seq: 0,
                    time: WallTime(self.mono_ns),
                    mono_ns: self.mono_ns,
                    process,
                    event,
                }
            })
            .collect()
    }
}

/// A successful file event as the agent records it (`fd`: the descriptor field, `ret`: the result).
fn file(op: FileOp, path: &str, flags: u64, mode: u32, fd: i32, ret: i32) -> EventBody {
    EventBody::File(File {
        op,
        syscall: if op == FileOp::Unlink {
            "unlink"
        } else {
            "openat"
        }
        .into(),
        path: path.into(),
        resolved: true,
        flags,
        mode,
        uid: u32::MAX,
        gid: u32::MAX,
        fd: i64::from(fd),
        ret: Some(i64::from(ret)),
        success: true,
        ..File::default()
    })
}

/// The basename of `path`, as a task name (15 bytes at most).
fn basename(path: &str) -> String {
    path.rsplit('/')
        .next()
        .unwrap_or(path)
        .chars()
        .take(15)
        .collect()
}

/// A successful exec of `path` by a task named `old_comm`.
fn exec(path: &str, argv: Vec<String>, old_comm: &str) -> EventBody {
    EventBody::Exec(Exec {
        filename: path.into(),
        argv,
        dirfd: -100,
        ret: Some(0),
        success: true,
        old_comm: old_comm.into(),
        ..Exec::default()
    })
}

/// The `config_change` the agent journals when a watched file at `path` is rewritten.
pub fn config_change(path: &str) -> EventBody {
    EventBody::ConfigChange(ConfigChange {
        path: path.into(),
        trigger: ChangeTrigger::CloseWrite,
        old_sha256: Some(SIM_SHA[0].into()),
        new_sha256: Some(SIM_SHA[1].into()),
        size: 1,
        mode: 0o600,
        old_mode: Some(0o600),
        old_uid: Some(0),
        old_gid: Some(0),
        ..ConfigChange::default()
    })
}
