//! What a drill's disposable child can do ([`Op`]), who it is ([`Context`]) and what the drill may ask of
//! the host ([`Host`]): the vocabulary the planner, the simulator and the performer share.

/// Directories where the drill may place a program copy directly (other places need a fresh directory).
pub const TEMP_ROOTS: [&str; 3] = ["/tmp/", "/var/tmp/", "/dev/shm/"];
/// Prefix of every file and directory the drill creates.
pub const NAME_PREFIX: &str = "auditloop-drill-";
/// Name given to the drill's memfd.
pub const MEMFD_NAME: &str = "auditloop-drill";
/// The most repetitions a threshold rule may need to be drilled.
pub const MAX_REPEAT: u32 = 1000;
/// The shell whose copies play a server and a shell (`Op::ServerShell`).
pub const SHELL: &str = "/bin/sh";
/// Mode bits a `chmod` stimulus may set on the drill's own file (no execute bits: never a program).
pub const CHMOD_BITS: u32 = 0o7600;

/// Who performs the stimulus: the facts the agent will record for the drill's child processes.
#[derive(Clone, Debug)]
pub struct Context {
    /// Unique per rule drill; part of every name the drill creates.
    pub nonce: String,
    /// The drill's own pid (the child's parent).
    pub pid: u32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// Task name of the drill (the child inherits it until it executes something).
    pub comm: String,
    /// Executable of the drill.
    pub exe: String,
    /// The drill's argv.
    pub argv: Vec<String>,
    /// Seconds a lingering program copy sleeps (the drill's timeout).
    pub linger_secs: u64,
    /// The running agent's pid (a signal 0 to it is the tamper stimulus).
    pub agent_pid: u32,
    /// What the derivation may ask about the host's files.
    pub host: Host,
}

/// What [`derive`] may ask about the host's files: injected, so the derivation is a pure function of
/// them (tests pass a fake host). The drill checks again right before it acts.
#[derive(Clone, Copy, Debug)]
pub struct Host {
    /// `path` is an existing regular file (symlinks followed).
    pub is_file: fn(&str) -> bool,
    /// `path` is an existing directory reached without symlinks.
    pub is_dir: fn(&str) -> bool,
    /// Something exists at `path` (a dangling symlink counts).
    pub exists: fn(&str) -> bool,
}

impl Host {
    /// The real file system.
    pub fn real() -> Host {
        Host {
            is_file: |p| std::fs::metadata(p).is_ok_and(|m| m.is_file()),
            is_dir: |p| {
                let path = std::path::Path::new(p);
                path.is_dir() && path.canonicalize().is_ok_and(|real| real == path)
            },
            exists: |p| std::fs::symlink_metadata(p).is_ok(),
        }
    }
}

impl Context {
    /// The nonce name: `auditloop-drill-<nonce>`.
    pub fn name(&self) -> String {
        format!("{NAME_PREFIX}{}", self.nonce)
    }

    /// argv of the server copy of [`Op::ServerShell`]: it runs the shell copy, then exits.
    pub fn server_argv(&self, server: &str, shell: &str) -> Vec<String> {
        vec![
            server.to_owned(),
            "-c".into(),
            format!("{shell} -c : ; exit 0"),
        ]
    }

    /// argv of the program copy of [`Op::Connect`] (the drill re-executed; `port` filled in at run time).
    pub fn connect_argv(&self, program: &str, port: u16) -> Vec<String> {
        vec![
            program.to_owned(),
            "drill".into(),
            "--stimulus-connect".into(),
            format!("127.0.0.1:{port}"),
        ]
    }

    /// argv of a program copy at `path`.
    pub fn program_argv(&self, path: &str, linger: bool) -> Vec<String> {
        let mut argv = vec![path.to_owned()];
        if linger {
            argv.push(self.linger_secs.to_string());
        }
        argv
    }
}

/// One thing the drill's disposable child does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Executes a fresh copy of `/bin/true` (`/bin/sleep` when lingering) placed at `path`; in a forked
    /// grandchild when `fork`, else the child itself becomes the program.
    Exec {
        /// Where the copy is placed.
        path: String,
        /// Run it in a grandchild.
        fork: bool,
    },
    /// `memfd_create`, the program copied in, `fexecve`.
    MemfdExec {
        /// Run it in a grandchild.
        fork: bool,
    },
    /// Opens an existing regular file read-only and closes it.
    Read {
        /// The file.
        path: String,
    },
    /// Creates a new file (`O_EXCL`), writes one newline, closes and unlinks it.
    Create {
        /// The new file (named with the nonce).
        path: String,
    },
    /// Creates a new file (mode 0600), `chmod`s it to `mode`, unlinks it.
    Chmod {
        /// The new file (named with the nonce).
        path: String,
        /// The mode set (within [`CHMOD_BITS`]).
        mode: u32,
    },
    /// Executes a copy of [`SHELL`] at `server` (in a fresh directory), which forks and runs a copy of it
    /// at `shell`: a shell whose parent is a server.
    ServerShell {
        /// The server's copy.
        server: String,
        /// The shell's copy.
        shell: String,
    },
    /// Executes a copy of the drill's own program at `program` (in a fresh directory), which connects to
    /// a listener the drill opened on 127.0.0.1.
    Connect {
        /// The program copy (named like the process the rule looks for).
        program: String,
    },
    /// Sends signal 0 (no signal: only a permission check) to the agent.
    SignalAgent,
    /// Creates a new file through io_uring (`IORING_OP_OPENAT`), closes and unlinks it.
    UringCreate {
        /// The new file (named with the nonce).
        path: String,
    },
    /// Overwrites the drill's own staged file (the drill overlay watches it) with other bytes.
    Change {
        /// The staged file.
        path: String,
    },
}

impl Op {
    /// A short description for the report.
    pub fn label(&self) -> String {
        match self {
            Op::Exec { path, .. } => format!("exec {path}"),
            Op::MemfdExec { .. } => format!("fexecve memfd:{MEMFD_NAME}"),
            Op::Read { path } => format!("open O_RDONLY {path}"),
            Op::Create { path } => format!("create+unlink {path}"),
            Op::Chmod { path, mode } => format!("chmod {mode:o} {path}"),
            Op::ServerShell { server, shell } => format!("{server} runs {shell}"),
            Op::Connect { program } => format!("{program} connects to 127.0.0.1"),
            Op::SignalAgent => "kill(agent, 0)".into(),
            Op::UringCreate { path } => format!("io_uring openat O_CREAT+unlink {path}"),
            Op::Change { path } => format!("overwrite {path}"),
        }
    }

    /// The same op, run in a forked child (`true`) or in the stimulus process itself.
    pub(super) fn with_fork(&self, fork: bool) -> Op {
        match self {
            Op::Exec { path, .. } => Op::Exec {
                path: path.clone(),
                fork,
            },
            Op::MemfdExec { .. } => Op::MemfdExec { fork },
            other => other.clone(),
        }
    }
}
