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
use crate::cmd::drill::ops::{Context, MEMFD_NAME, Op, TEMP_ROOTS};
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

/// Checks the host and prepares the children's operations for `stimulus`.
pub fn prepare(stimulus: &Stimulus, ctx: &Context) -> Result<Prepared, String> {
    let name = ctx.name();
    let program = if stimulus.linger {
        "/bin/sleep"
    } else {
        "/bin/true"
    };
    let needs_program = stimulus
        .ops
        .iter()
        .any(|op| matches!(op, Op::Exec { .. } | Op::MemfdExec { .. }));
    let bytes = if needs_program {
        std::fs::read(program).map_err(|e| format!("{program}: {e}"))?
    } else {
        Vec::new()
    };
    let mut p = Prepared {
        setup: Vec::new(),
        setup_labels: Vec::new(),
        stimulus: Vec::new(),
        stimulus_labels: Vec::new(),
        created: Vec::new(),
    };
    let mut dirs: Vec<PathBuf> = Vec::new();
    let wait = !stimulus.linger;
    for op in &stimulus.ops {
        let child_op = match op {
            Op::Exec { path, fork } => {
                let file = PathBuf::from(path);
                if !p.created.iter().any(|(c, _)| *c == file) {
                    place_program(&file, &name, &bytes, &mut p, &mut dirs)?;
                }
                let argv = Argv::new(&ctx.program_argv(path, stimulus.linger))
                    .map_err(|e| e.to_string())?;
                ChildOp::Exec {
                    path: cstring(path)?,
                    argv,
                    fork: *fork,
                    wait,
                }
            }
            Op::MemfdExec { fork } => ChildOp::MemfdExec {
                bytes: bytes.clone(),
                argv: Argv::new(&ctx.program_argv(MEMFD_NAME, stimulus.linger))
                    .map_err(|e| e.to_string())?,
                fork: *fork,
                wait,
            },
            Op::Read { path } => {
                let meta = std::fs::metadata(path).map_err(|e| format!("{path}: {e}"))?;
                if !meta.is_file() {
                    return Err(format!(
                        "{path}: not a regular file; the drill only opens files"
                    ));
                }
                ChildOp::ReadOpen(cstring(path)?)
            }
            Op::Create { path } => {
                let file = PathBuf::from(path);
                if !file
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().contains(&name))
                {
                    return Err(format!(
                        "{path}: the drill only creates files named with its nonce"
                    ));
                }
                real_parent(&file)?;
                must_not_exist(&file)?;
                p.created.push((file, false));
                ChildOp::CreateUnlink(cstring(path)?)
            }
        };
        p.stimulus.push(child_op);
        p.stimulus_labels.push(op.label());
    }
    let ends_in_program = matches!(
        stimulus.ops.last(),
        Some(Op::Exec { fork: false, .. } | Op::MemfdExec { fork: false })
    );
    if stimulus.linger && !ends_in_program {
        let secs = u32::try_from(ctx.linger_secs).unwrap_or(u32::MAX);
        p.stimulus.push(ChildOp::Sleep(secs));
        p.stimulus_labels.push("sleep".into());
    }
    p.created
        .extend(dirs.into_iter().rev().map(|dir| (dir, true)));
    Ok(p)
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
