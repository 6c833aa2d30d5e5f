//! A cluster's data directory: created with `initdb` when missing, and freed of a postmaster that a killed
//! process left running on it (only a `postgres` whose command line serves this very directory is
//! stopped).

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::install::Install;
use crate::TestkitError;

/// How long a left-behind postmaster gets to stop immediately.
const STALE_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// `initdb` into `data`: UTF-8, C locale, trust for local and loopback connections, user `postgres`.
pub(super) fn init_cluster(install: &Install, dir: &Path, data: &Path) -> Result<(), TestkitError> {
    let out = install
        .server_command("initdb", dir)
        .arg("-D")
        .arg(data)
        .args([
            "--username=postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(TestkitError::io(format!(
            "running {}",
            install.bin.join("initdb").display()
        )))?;
    if out.status.success() {
        return Ok(());
    }
    Err(TestkitError::Postgres {
        what: format!("initdb {} failed ({})", data.display(), out.status),
        detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

/// Stops a postmaster still running on `data` (its process was killed before it could stop it): the pid
/// in `postmaster.pid`, if that process is a `postgres` serving `data`.
pub(super) fn stop_stale(data: &Path) {
    let Ok(pid_file) = std::fs::read_to_string(data.join("postmaster.pid")) else {
        return;
    };
    let Some(pid) = pid_file
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<libc::pid_t>().ok())
    else {
        return;
    };
    let serves_data = std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        args.windows(2)
            .any(|w| w[0] == b"-D" && Path::new(std::ffi::OsStr::from_bytes(w[1])) == data)
    });
    if !serves_data {
        return;
    }
    // SAFETY: kill has no memory preconditions; the pid was checked to be this cluster's postmaster.
    unsafe { libc::kill(pid, libc::SIGQUIT) };
    let deadline = Instant::now() + STALE_STOP_TIMEOUT;
    while runs(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` exists and has not exited (a zombie has).
fn runs(pid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
        !status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains("zombie"))
    })
}
