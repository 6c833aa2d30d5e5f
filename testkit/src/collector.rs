//! A real `auditloop-collector` process: its token files (admin and enrollment) and, by default, its SQLite
//! database in one directory, listening on loopback, stopped when dropped. Hosts enroll with the enrollment
//! token (`POST /v1/enroll`), which answers each host's own token.
//!
//! Replicas of one cluster share a database (`db`: a PostgreSQL URL, see [`crate::postgres`]) and one
//! directory: the first to start writes the token files, the others read the same tokens.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use crate::TestkitError;
use crate::tokens;

/// How to start a collector.
#[derive(Clone, Debug)]
pub struct CollectorSpec {
    /// The `auditloop-collector` binary.
    pub bin: PathBuf,
    /// Holds `enroll.token`, `admin.token` and, unless `db` says otherwise, `collector.db`.
    pub dir: PathBuf,
    /// `--db`: a `postgres://` URL or a SQLite path; `None` = `dir/collector.db`.
    pub db: Option<String>,
    /// `--listen` address (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// The enrollment token written to `enroll.token` when that file does not exist yet; `None` = random.
    pub enroll_token: Option<String>,
    /// The admin token likewise.
    pub admin_token: Option<String>,
    /// More arguments (e.g. `--tls-cert`, `--tls-key`).
    pub extra_args: Vec<String>,
}

impl CollectorSpec {
    /// A collector in `dir` on a free loopback port, with random tokens.
    pub fn new(bin: PathBuf, dir: &Path) -> CollectorSpec {
        CollectorSpec {
            bin,
            dir: dir.to_owned(),
            db: None,
            listen: "127.0.0.1:0".into(),
            enroll_token: None,
            admin_token: None,
            extra_args: Vec::new(),
        }
    }
}

/// A running collector.
#[derive(Debug)]
pub struct CollectorProcess {
    /// Its directory.
    pub dir: PathBuf,
    /// The address it listens on (`127.0.0.1:<port>`).
    pub addr: String,
    /// The admin token.
    pub admin_token: String,
    /// The enrollment token.
    pub enroll_token: String,
    child: Option<Child>,
}

impl CollectorProcess {
    /// Starts the collector and waits until it listens. Token files already in the directory are kept (a
    /// restart in the same directory keeps its database and tokens; replicas sharing the directory share
    /// the tokens). Its stdout is read on a thread of its own; stderr is inherited.
    pub fn start(spec: &CollectorSpec) -> Result<CollectorProcess, TestkitError> {
        std::fs::create_dir_all(&spec.dir)
            .map_err(TestkitError::io(format!("creating {}", spec.dir.display())))?;
        let token = |given: &Option<String>| match given {
            Some(t) => Ok(t.clone()),
            None => tokens::random_token(),
        };
        let enroll_token =
            tokens::keep_or_write(&spec.dir.join("enroll.token"), &token(&spec.enroll_token)?)?;
        let admin_token =
            tokens::keep_or_write(&spec.dir.join("admin.token"), &token(&spec.admin_token)?)?;
        let db = match &spec.db {
            Some(db) => OsString::from(db),
            None => spec.dir.join("collector.db").into_os_string(),
        };
        let mut child = Command::new(&spec.bin)
            .arg("--listen")
            .arg(&spec.listen)
            .arg("--db")
            .arg(db)
            .arg("--enroll-token-file")
            .arg(spec.dir.join("enroll.token"))
            .arg("--admin-token-file")
            .arg(spec.dir.join("admin.token"))
            .args(&spec.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(TestkitError::io(format!("starting {}", spec.bin.display())))?;
        let first = match child.stdout.take() {
            Some(stdout) => {
                let mut lines = BufReader::new(stdout).lines();
                let first = lines.next().and_then(Result::ok).unwrap_or_default();
                std::thread::spawn(move || for _ in lines {});
                first
            }
            None => String::new(),
        };
        let Some(addr) = first.strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(TestkitError::NotListening(first));
        };
        Ok(CollectorProcess {
            dir: spec.dir.clone(),
            addr: addr.trim().to_owned(),
            admin_token,
            enroll_token,
            child: Some(child),
        })
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// The enrollment token file (`auditloop enroll --enroll-token-file`).
    pub fn enroll_token_file(&self) -> PathBuf {
        self.dir.join("enroll.token")
    }

    /// Stops it with SIGTERM (a clean stop) and waits.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: signalling our own child, which has not been waited for.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        child.wait().ok()
    }

    /// Stops it with SIGKILL (an outage) and waits.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for CollectorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
