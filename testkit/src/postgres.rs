//! A real PostgreSQL server for tests, benchmarks and `cargo xtask cluster`: its cluster in a directory
//! (created with `initdb` when missing), listening on a free 127.0.0.1 port with trust authentication for
//! local connections, settings sized for tests on a small machine, stopped when dropped.
//!
//! PostgreSQL refuses to run as root: a root caller runs `initdb` and `postgres` as the `postgres` user and
//! hands the directory over to it. The binaries are `$AUDITLOOP_PG_BIN`'s, else the highest
//! `/usr/lib/postgresql/<major>/bin`; a missing install is an error (tests fail, never skip) that says to
//! run `cargo xtask setup`.
//!
//! Layout of a server directory: `data/` (the cluster; its unix socket is kept there too, not in
//! `/var/run`) and `postgres.log` (the server's output, appended to across restarts).
//!
//! A server never outlives the process that started it: a watcher stops it when that process exits
//! (see `exit_watch`), which is what lets [`PgServer::shared`] live in a static.

mod data_dir;
mod exit_watch;
mod install;

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::TestkitError;
use exit_watch::ExitWatch;
use install::Install;

pub use install::PG_BIN_VARIABLE;

/// How long a start may take before it is an error (crash recovery included).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a fast shutdown may take before the server is stopped immediately.
const FAST_STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an immediate shutdown may take before the postmaster is killed.
const IMMEDIATE_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Free ports tried when another process takes the chosen one first.
const PORT_ATTEMPTS: usize = 5;
/// Server settings for tests on a 2-core machine: enough connections for three collector replicas with
/// their pools, modest memory, durable commits (crash tests rely on them), UTC everywhere.
const SETTINGS: [&str; 6] = [
    "listen_addresses=127.0.0.1",
    "max_connections=200",
    "shared_buffers=64MB",
    "timezone=UTC",
    "log_timezone=UTC",
    "log_line_prefix=%m [%p] ",
];

/// A running (or stopped, restartable) PostgreSQL server.
#[derive(Debug)]
pub struct PgServer {
    install: Install,
    dir: PathBuf,
    port: u16,
    postmaster: Option<Child>,
    /// Dropped after the server has been stopped (field order).
    _exit_watch: ExitWatch,
}

impl PgServer {
    /// Starts a server on the cluster in `dir` (created with `initdb` when `dir` has none) on a free
    /// 127.0.0.1 port, and waits until it accepts connections. A server left running on that cluster by a
    /// process that was killed is stopped first.
    pub fn start(dir: &Path) -> Result<PgServer, TestkitError> {
        PgServer::start_watched(dir, None)
    }

    fn start_watched(dir: &Path, remove_on_exit: Option<&Path>) -> Result<PgServer, TestkitError> {
        let install = Install::find()?;
        std::fs::create_dir_all(dir)
            .map_err(TestkitError::io(format!("creating {}", dir.display())))?;
        let dir = dir
            .canonicalize()
            .map_err(TestkitError::io(format!("resolving {}", dir.display())))?;
        install.hand_over(&dir)?;
        let data = dir.join("data");
        if !data.join("PG_VERSION").exists() {
            data_dir::init_cluster(&install, &dir, &data)?;
        }
        data_dir::stop_stale(&data);
        let exit_watch = ExitWatch::spawn(&data, remove_on_exit)?;
        let mut server = PgServer {
            install,
            dir,
            port: 0,
            postmaster: None,
            _exit_watch: exit_watch,
        };
        let mut attempt = 1;
        loop {
            server.port = free_port()?;
            match server.launch() {
                Err(TestkitError::Postgres { detail, .. })
                    if attempt < PORT_ATTEMPTS && detail.contains("could not bind") =>
                {
                    attempt += 1;
                }
                result => return result.map(|()| server),
            }
        }
    }

    /// The server of this test process, started on first use in a fresh directory under the cargo target
    /// directory's `tmp/` (or the system's temporary directory when the `postgres` user cannot reach
    /// that). It is stopped and its directory removed when the process exits. Give each test its own
    /// database: [`PgServer::fresh_database`].
    pub fn shared() -> Result<&'static PgServer, TestkitError> {
        static SHARED: OnceLock<PgServer> = OnceLock::new();
        static STARTING: Mutex<()> = Mutex::new(());
        if let Some(server) = SHARED.get() {
            return Ok(server);
        }
        let _starting = STARTING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(server) = SHARED.get() {
            return Ok(server);
        }
        // The target directory's tmp/, unless the postgres user cannot get there (a checkout under /root).
        let install = Install::find()?;
        let root = [crate::bins::scratch_dir(), std::env::temp_dir()]
            .into_iter()
            .find(|root| install.barrier(root).is_none())
            .unwrap_or_else(std::env::temp_dir);
        let dir = root.join(format!(
            "auditloop-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let server = match PgServer::start_watched(&dir, Some(&dir)) {
            Ok(server) => server,
            Err(err) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(err);
            }
        };
        Ok(SHARED.get_or_init(|| server))
    }

    /// `postgres://postgres@127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The TCP port (the same across [`PgServer::start_again`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's directory (`data/`, `postgres.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The postmaster's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.postmaster.as_ref().map(Child::id)
    }

    /// Creates database `name` (1 to 63 of `[a-z0-9_]`; an error if it exists) and answers its URL.
    pub fn create_database(&self, name: &str) -> Result<String, TestkitError> {
        check_name(name)?;
        let out = self
            .install
            .client_command("createdb")
            .arg("--no-password")
            .arg("--maintenance-db")
            .arg(self.conninfo("postgres"))
            .arg(name)
            .stdin(Stdio::null())
            .output()
            .map_err(TestkitError::io("running createdb"))?;
        if !out.status.success() {
            return Err(TestkitError::Postgres {
                what: format!("createdb {name} failed ({})", out.status),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(self.url(name))
    }

    /// Database `name`'s URL, creating the database first when it does not exist.
    pub fn ensure_database(&self, name: &str) -> Result<String, TestkitError> {
        check_name(name)?;
        // `name` is checked above: it cannot end the quoted literal.
        let query = format!("SELECT 1 FROM pg_database WHERE datname = '{name}'");
        if self.psql("postgres", &query)?.trim() == "1" {
            Ok(self.url(name))
        } else {
            self.create_database(name)
        }
    }

    /// Runs `sql` (one or more statements) in database `db` with `psql`, stopping at the first error, and
    /// answers what it printed: rows unaligned, columns separated by `|`, no headers. For tests that look
    /// at or tamper with a store behind the collector's back.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, TestkitError> {
        let out = self
            .install
            .client_command("psql")
            .args(["-X", "--no-password", "-v", "ON_ERROR_STOP=1", "-qtA", "-c"])
            .arg(sql)
            .arg(self.conninfo(db))
            .stdin(Stdio::null())
            .output()
            .map_err(TestkitError::io("running psql"))?;
        if !out.status.success() {
            return Err(TestkitError::Postgres {
                what: format!("psql in database {db} failed ({})", out.status),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A new database with a name of its own (`test_<pid>_<n>`) for one test case; answers its URL.
    pub fn fresh_database(&self) -> Result<String, TestkitError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.create_database(&format!("test_{}_{n}", std::process::id()))
    }

    /// Stops the server with a fast shutdown (clients disconnected, a checkpoint written) and waits; stops
    /// it immediately if that takes over a minute. Nothing happens when it is not running.
    pub fn stop(&mut self) {
        if !self.signal_and_wait(libc::SIGINT, FAST_STOP_TIMEOUT) {
            self.stop_immediately();
        }
    }

    /// Stops the server as `pg_ctl stop -m immediate` does (SIGQUIT: no checkpoint, so the next start
    /// recovers from the WAL, as after a crash) and waits; kills it if it does not go.
    pub fn stop_immediately(&mut self) {
        if !self.signal_and_wait(libc::SIGQUIT, IMMEDIATE_STOP_TIMEOUT) {
            self.signal_and_wait(libc::SIGKILL, IMMEDIATE_STOP_TIMEOUT);
        }
    }

    /// Starts the server again on the same port with the same data (after [`PgServer::stop`] or
    /// [`PgServer::stop_immediately`]; a running server is stopped fast first), so clients reconnect to the
    /// same URL. Fails if another process took the port meanwhile.
    pub fn start_again(&mut self) -> Result<(), TestkitError> {
        self.stop();
        self.launch()
    }

    /// Starts the postmaster on `self.port` and waits until it accepts connections.
    fn launch(&mut self) -> Result<(), TestkitError> {
        let log_path = self.dir.join("postgres.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(TestkitError::io(format!("opening {}", log_path.display())))?;
        let log_start = log.metadata().map_or(0, |m| m.len());
        let log_err = log
            .try_clone()
            .map_err(TestkitError::io(format!("opening {}", log_path.display())))?;
        let data = self.dir.join("data");
        let mut command = self.install.server_command("postgres", &self.dir);
        command
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&data);
        for setting in SETTINGS {
            command.arg("-c").arg(setting);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group: a Ctrl-C meant for the caller does not shut the database down under
            // clients that are still stopping (the exit watcher stops it when the caller is gone).
            .process_group(0)
            .spawn()
            .map_err(TestkitError::io(format!(
                "starting {}",
                self.install.bin.join("postgres").display()
            )))?;
        self.postmaster = Some(child);
        let ready = self.wait_ready();
        if let Err(why) = ready {
            self.stop_immediately();
            return Err(TestkitError::Postgres {
                what: format!(
                    "PostgreSQL did not start on 127.0.0.1:{} ({why}); the end of {}",
                    self.port,
                    log_path.display()
                ),
                detail: log_tail(&log_path, log_start),
            });
        }
        Ok(())
    }

    /// Polls `pg_isready` until the server accepts connections, it exits, or [`START_TIMEOUT`] passes.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.postmaster.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.postmaster = None;
                return Err(format!("postgres exited with {status}"));
            }
            let ready = self
                .install
                .client_command("pg_isready")
                .args(["-q", "-t", "2", "-d"])
                .arg(self.conninfo("postgres"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(|e| format!("running pg_isready: {e}"))?;
            if ready.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after {} s", START_TIMEOUT.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` to the postmaster and waits up to `timeout` for it to exit; `true` when it is gone
    /// (or was not running).
    fn signal_and_wait(&mut self, signal: libc::c_int, timeout: Duration) -> bool {
        let Some(child) = self.postmaster.as_mut() else {
            return true;
        };
        if let Ok(None) = child.try_wait()
            && let Ok(pid) = libc::pid_t::try_from(child.id())
        {
            // SAFETY: signalling our own child, which has not been reaped (its pid cannot be reused).
            unsafe { libc::kill(pid, signal) };
        }
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => return false,
                Ok(Some(_)) | Err(_) => break,
            }
        }
        self.postmaster = None;
        true
    }

    /// libpq connection parameters for database `db` (no TLS: loopback, trust).
    fn conninfo(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={db} sslmode=disable connect_timeout=5",
            self.port
        )
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop_immediately();
    }
}

/// A free TCP port on 127.0.0.1 (bound and released).
fn free_port() -> Result<u16, TestkitError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(TestkitError::io("finding a free port on 127.0.0.1"))
}

/// Checks a database name: 1 to 63 of `[a-z0-9_]`.
fn check_name(name: &str) -> Result<(), TestkitError> {
    let ok = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(TestkitError::InvalidDatabaseName(name.to_owned()))
    }
}

/// The last lines the server wrote to `log` since byte `from`.
fn log_tail(log: &Path, from: u64) -> String {
    const LINES: usize = 30;
    let text = std::fs::read(log).unwrap_or_default();
    let start = usize::try_from(from).unwrap_or(0).min(text.len());
    let text = String::from_utf8_lossy(&text[start..]);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_lowercase_words() {
        for good in ["auditloop", "test_12_0", "a", &"x".repeat(63)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Auditloop", "a-b", "a b", "a'b", "é", &"x".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_log_tail_starts_at_this_start() {
        let path = std::env::temp_dir().join(format!("auditloop-pg-log-{}", std::process::id()));
        std::fs::write(&path, "old 1\nold 2\nnew 1\nnew 2\n").unwrap();
        assert_eq!(log_tail(&path, 12), "new 1\nnew 2");
        std::fs::remove_file(&path).unwrap();
    }
}
