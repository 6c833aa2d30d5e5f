//! Turning a [`Stimulus`] into work for disposable children: a setup child places the program copies, the
//! stimulus child performs the operations, a cleanup child removes everything the drill created.
//!
//! Checks before anything is created: a program copy or a new file never replaces an existing path (and
//! `O_EXCL | O_NOFOLLOW` enforces it again), its directory is a real directory (not through a symlink),
//! and a file opened read-only is an existing regular file. Only directories named with the drill's nonce
//! are created, and only those are removed.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cmd::drill::child::{self, Argv, ChildOp, Ended};
use crate::cmd::drill::ops::{CHMOD_BITS, Context, MEMFD_NAME, Op, SHELL, TEMP_ROOTS};
use crate::cmd::drill::plan::Stimulus;

/// How long setup and cleanup children may take.
const CHORE_LIMIT: Duration = Duration::from_secs(10);
/// Cleanup attempts (a cleanup child can be killed by a rule too).
const CLEANUP_ATTEMPTS: usize = 3;

/// The children's work for one stimulus.
pub struct Prepared {
    /// Directories and program copies to create first.
    pub setup: Vec<ChildOp>,
    setup_labels: Vec<String>,
    /// The stimulus itself.
    pub stimulus: Vec<ChildOp>,
    stimulus_labels: Vec<String>,
    /// Everything the drill may have created, files first, then directories deepest first.
    created: Vec<(PathBuf, bool)>,
    /// The drill's listener on 127.0.0.1 for a connection stimulus.
    pub listener: Option<std::net::TcpListener>,
    /// The marker a kill rule's stimulus writes if it is not killed in time.
    pub marker: Option<PathBuf>,
}

fn cstring(path: &str) -> Result<CString, String> {
    CString::new(path).map_err(|_| format!("{path}: contains a NUL byte"))
}

/// The directory `path` is in, which must exist as itself (not through a symlink).
fn real_parent(path: &Path) -> Result<&Path, String> {
    let parent = path
        .parent()
        .ok_or_else(|| format!("{}: no parent directory", path.display()))?;
    match parent.canonicalize() {
        Ok(real) if real == parent => Ok(parent),
        Ok(real) => Err(format!(
            "{} resolves to {}; the drill only creates files in real directories",
            parent.display(),
            real.display()
        )),
        Err(e) => Err(format!("{}: {e}", parent.display())),
    }
}

fn must_not_exist(path: &Path) -> Result<(), String> {
    match path.symlink_metadata() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Ok(_) => Err(format!(
            "{} exists; the drill never replaces files",
            path.display()
        )),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Seconds a stimulus of a kill rule waits after its triggering operation before it writes its marker: a
/// kill that works lands well before.
pub const MARKER_GRACE_SECS: u32 = 2;

/// Program copies a stimulus needs: `/bin/true` or `/bin/sleep`, the shell, the drill itself.
struct Programs {
    plain: Vec<u8>,
    shell: Vec<u8>,
    drill: Vec<u8>,
}

impl Programs {
    fn read(stimulus: &Stimulus) -> Result<Programs, String> {
        let read = |path: &str| std::fs::read(path).map_err(|e| format!("{path}: {e}"));
        let any = |f: fn(&Op) -> bool| stimulus.ops.iter().any(f);
        let plain = if stimulus.linger {
            "/bin/sleep"
        } else {
            "/bin/true"
        };
        Ok(Programs {
            plain: if any(|op| matches!(op, Op::Exec { .. } | Op::MemfdExec { .. })) {
                read(plain)?
            } else {
                Vec::new()
            },
            shell: if any(|op| matches!(op, Op::ServerShell { .. })) {
                read(SHELL)?
            } else {
                Vec::new()
            },
            drill: if any(|op| matches!(op, Op::Connect { .. })) {
                read("/proc/self/exe")?
            } else {
                Vec::new()
            },
        })
    }
}

/// Checks the host and prepares the children's operations for `stimulus`.
pub fn prepare(stimulus: &Stimulus, ctx: &Context) -> Result<Prepared, String> {
    let name = ctx.name();
    let programs = Programs::read(stimulus)?;
    let mut p = Prepared {
        setup: Vec::new(),
        setup_labels: Vec::new(),
        stimulus: Vec::new(),
        stimulus_labels: Vec::new(),
        created: Vec::new(),
        listener: None,
        marker: None,
    };
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(stage) = &stimulus.stage {
        let dir = PathBuf::from(&stage.dir);
        real_parent(&dir)?;
        must_not_exist(&dir)?;
        p.setup.push(ChildOp::Mkdir(cstring(&stage.dir)?));
        p.setup_labels.push(format!("mkdir {}", stage.dir));
        dirs.push(dir);
        p.setup.push(ChildOp::WriteNew {
            path: cstring(&stage.file)?,
            bytes: stage.known.clone(),
            mode: 0o600,
        });
        p.setup_labels
            .push(format!("write the stand-in {}", stage.file));
        p.created.push((PathBuf::from(&stage.file), false));
    }
    let wait = !stimulus.linger;
    for op in &stimulus.ops {
        let mut place = |file: &str, bytes: &[u8], p: &mut Prepared| -> Result<(), String> {
            let file = PathBuf::from(file);
            if p.created.iter().any(|(c, _)| *c == file) {
                return Ok(());
            }
            place_program(&file, &name, bytes, p, &mut dirs)
        };
        let argv = |args: &[String]| Argv::new(args).map_err(|e| e.to_string());
        let child_ops = match op {
            Op::Exec { path, fork } => {
                place(path, &programs.plain, &mut p)?;
                vec![ChildOp::Exec {
                    path: cstring(path)?,
                    argv: argv(&ctx.program_argv(path, stimulus.linger))?,
                    fork: *fork,
                    wait,
                }]
            }
            Op::MemfdExec { fork } => vec![ChildOp::MemfdExec {
                bytes: programs.plain.clone(),
                argv: argv(&ctx.program_argv(MEMFD_NAME, stimulus.linger))?,
                fork: *fork,
                wait,
            }],
            Op::Read { path } => {
                let meta = std::fs::metadata(path).map_err(|e| format!("{path}: {e}"))?;
                if !meta.is_file() {
                    return Err(format!(
                        "{path}: not a regular file; the drill only opens files"
                    ));
                }
                vec![ChildOp::ReadOpen(cstring(path)?)]
            }
            Op::Create { path } => {
                new_file(path, &name, &mut p)?;
                vec![ChildOp::CreateUnlink(cstring(path)?)]
            }
            Op::Chmod { path, mode } => {
                new_file(path, &name, &mut p)?;
                let c = cstring(path)?;
                vec![
                    ChildOp::WriteNew {
                        path: c.clone(),
                        bytes: b"\n".to_vec(),
                        mode: 0o600,
                    },
                    ChildOp::Chmod {
                        path: c.clone(),
                        mode: mode & CHMOD_BITS,
                    },
                    ChildOp::Unlink(c),
                ]
            }
            Op::ServerShell { server, shell } => {
                place(server, &programs.shell, &mut p)?;
                place(shell, &programs.shell, &mut p)?;
                vec![ChildOp::Exec {
                    path: cstring(server)?,
                    argv: argv(&ctx.server_argv(server, shell))?,
                    fork: false,
                    wait,
                }]
            }
            Op::Connect { program } => {
                place(program, &programs.drill, &mut p)?;
                let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
                    .map_err(|e| format!("listening on 127.0.0.1: {e}"))?;
                let port = listener
                    .local_addr()
                    .map_err(|e| format!("listening on 127.0.0.1: {e}"))?
                    .port();
                p.listener = Some(listener);
                vec![ChildOp::Exec {
                    path: cstring(program)?,
                    argv: argv(&ctx.connect_argv(program, port))?,
                    fork: false,
                    wait,
                }]
            }
            Op::UringCreate { path } => {
                new_file(path, &name, &mut p)?;
                vec![ChildOp::UringCreateUnlink(cstring(path)?)]
            }
            Op::SignalAgent => {
                let pid = libc::pid_t::try_from(ctx.agent_pid)
                    .map_err(|_| format!("agent pid {} is out of range", ctx.agent_pid))?;
                vec![ChildOp::SignalZero(pid)]
            }
            Op::Change { path } => {
                let staged = stimulus
                    .stage
                    .as_ref()
                    .filter(|s| s.file == *path)
                    .ok_or_else(|| format!("{path}: not the drill's staged file"))?;
                vec![ChildOp::Overwrite {
                    path: cstring(path)?,
                    bytes: staged.changed.clone(),
                }]
            }
        };
        for child_op in child_ops {
            p.stimulus.push(child_op);
            p.stimulus_labels.push(op.label());
        }
    }
    let ends_in_program = matches!(
        stimulus.ops.last(),
        Some(Op::Exec { fork: false, .. } | Op::MemfdExec { fork: false })
    );
    let in_child = stimulus.ops.iter().all(|op| {
        !matches!(
            op,
            Op::Exec { fork: true, .. }
                | Op::MemfdExec { fork: true }
                | Op::ServerShell { .. }
                | Op::Connect { .. }
        )
    });
    if stimulus.linger && !ends_in_program {
        if in_child {
            // The process that did the triggering operation writes a marker after a grace period: a kill
            // that works lands before it.
            let marker = format!("/tmp/{name}.marker");
            new_file(&marker, &name, &mut p)?;
            p.stimulus.push(ChildOp::Sleep(MARKER_GRACE_SECS));
            p.stimulus_labels.push("sleep".into());
            p.stimulus.push(ChildOp::WriteNew {
                path: cstring(&marker)?,
                bytes: b"not killed\n".to_vec(),
                mode: 0o600,
            });
            p.stimulus_labels.push(format!("write the marker {marker}"));
            p.marker = Some(PathBuf::from(marker));
        } else {
            let secs = u32::try_from(ctx.linger_secs).unwrap_or(u32::MAX);
            p.stimulus.push(ChildOp::Sleep(secs));
            p.stimulus_labels.push("sleep".into());
        }
    }
    p.created
        .extend(dirs.into_iter().rev().map(|dir| (dir, true)));
    Ok(p)
}

/// Checks that `path` is a new file named with the nonce in a real directory, and records it.
fn new_file(path: &str, name: &str, p: &mut Prepared) -> Result<(), String> {
    let file = PathBuf::from(path);
    if !file
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains(name))
    {
        return Err(format!(
            "{path}: the drill only creates files named with its nonce"
        ));
    }
    real_parent(&file)?;
    must_not_exist(&file)?;
    if !p.created.iter().any(|(c, _)| *c == file) {
        p.created.push((file, false));
    }
    Ok(())
}

/// Plans the program copy at `file`: the nonce-named directories above it, then the copy itself.
fn place_program(
    file: &Path,
    name: &str,
    bytes: &[u8],
    p: &mut Prepared,
    dirs: &mut Vec<PathBuf>,
) -> Result<(), String> {
    // The first directory named with the nonce, and everything below it, is the drill's to create.
    let fresh = file
        .ancestors()
        .skip(1)
        .filter(|a| {
            a.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(name))
        })
        .last();
    match fresh {
        Some(top) => {
            real_parent(top)?;
            must_not_exist(top)?;
            let mut chain: Vec<&Path> =
                file.ancestors().skip(1).take_while(|a| *a != top).collect();
            chain.push(top);
            for dir in chain.into_iter().rev() {
                if dirs.iter().any(|d| d == dir) {
                    continue;
                }
                p.setup
                    .push(ChildOp::Mkdir(cstring(&dir.to_string_lossy())?));
                p.setup_labels.push(format!("mkdir {}", dir.display()));
                dirs.push(dir.to_owned());
            }
        }
        None => {
            // Only directly under a temp directory (the plan never asks for more; checked again here).
            let in_temp = TEMP_ROOTS.iter().any(|root| file.starts_with(root));
            if !in_temp {
                return Err(format!(
                    "{}: the drill places programs only under a temp directory or a fresh one",
                    file.display()
                ));
            }
            real_parent(file)?;
        }
    }
    must_not_exist(file)?;
    p.setup.push(ChildOp::WriteNew {
        path: cstring(&file.to_string_lossy())?,
        bytes: bytes.to_vec(),
        mode: 0o755,
    });
    p.setup_labels
        .push(format!("copy the program to {}", file.display()));
    p.created.push((file.to_owned(), false));
    Ok(())
}

impl Prepared {
    /// Runs the setup child to completion.
    pub fn set_up(&self) -> Result<(), String> {
        if self.setup.is_empty() {
            return Ok(());
        }
        chore(&self.setup, &self.setup_labels)
    }

    /// Why the stimulus child failed, from its report.
    pub fn failure_text(&self, failure: child::Failure) -> String {
        let what = self
            .stimulus_labels
            .get(failure.op)
            .map_or("stimulus", String::as_str);
        format!("{what}: {}", failure.errno.desc())
    }

    /// Removes everything the drill created (retrying in fresh children); returns what is left behind.
    pub fn clean_up(&self) -> Vec<PathBuf> {
        let exists = |(path, _): &&(PathBuf, bool)| path.symlink_metadata().is_ok();
        for _ in 0..CLEANUP_ATTEMPTS {
            let left: Vec<&(PathBuf, bool)> = self.created.iter().filter(exists).collect();
            if left.is_empty() {
                return Vec::new();
            }
            let mut ops = Vec::new();
            let mut labels = Vec::new();
            for (path, is_dir) in left {
                let Ok(c) = cstring(&path.to_string_lossy()) else {
                    continue;
                };
                ops.push(if *is_dir {
                    ChildOp::Rmdir(c)
                } else {
                    ChildOp::Unlink(c)
                });
                labels.push(format!("remove {}", path.display()));
            }
            if let Err(e) = chore(&ops, &labels) {
                tracing::debug!("cleanup: {e}");
            }
        }
        self.created
            .iter()
            .filter(exists)
            .map(|(path, _)| path.clone())
            .collect()
    }
}

/// Runs `ops` in a child to completion.
fn chore(ops: &[ChildOp], labels: &[String]) -> Result<(), String> {
    let mut worker = child::spawn(ops).map_err(|e| format!("fork: {e}"))?;
    let ended = worker.wait_for(CHORE_LIMIT);
    let (status, failure) = worker.finish();
    if let Some(f) = failure {
        let what = labels.get(f.op).map_or("setup", String::as_str);
        return Err(format!("{what}: {}", f.errno.desc()));
    }
    match (ended, status) {
        (Some(_), Ended::Exited(0)) => Ok(()),
        (None, _) => Err(format!(
            "{} did not finish within {CHORE_LIMIT:?}",
            labels.first().map_or("setup", String::as_str)
        )),
        (Some(_), Ended::Signaled(sig)) => Err(format!(
            "{} was interrupted by signal {sig} (a rule may have killed it)",
            labels.first().map_or("setup", String::as_str)
        )),
        (Some(_), Ended::Exited(code)) => Err(format!("setup exited with {code}")),
    }
}
