//! The events the agent journals for the drill child's operations, as far as rules can see them: the
//! child's process facts (pid, parent, names, uid), exec results, memfd and file records. [`derive`]
//! plays them through the rule set to decide whether a candidate would fire.
//!
//! [`derive`]: crate::cmd::drill::plan::derive

use auditloop_model::{Event, EventBody, Exec, File, FileOp, MemfdCreate, Process, WallTime};

use crate::cmd::drill::ops::{Context, MEMFD_NAME, Op};

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
