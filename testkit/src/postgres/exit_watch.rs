//! Stops a server when the process that started it ends, however it ends (a static never dropped, a
//! panic that aborts, SIGKILL): a small `sh` watcher holds the read end of a pipe whose only write end stays
//! in this process (close-on-exec, so no other child inherits it). When this process exits the kernel
//! closes that end, the watcher reads EOF, stops the postmaster named in `postmaster.pid` the way
//! `pg_ctl stop -m immediate` does (SIGQUIT, then waits for it to go) and removes a directory if asked.
//!
//! The watcher runs in a process group of its own, so a Ctrl-C at the terminal does not kill it before it
//! has cleaned up.

use std::io::PipeWriter;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::TestkitError;

/// `$1` = the data directory, `$2` = a directory to remove afterwards (empty: none).
const SCRIPT: &str = r#"
trap '' INT HUP
while IFS= read -r _; do :; done
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
pid=$(head -n 1 "$1/postmaster.pid" 2>/dev/null)
case "$pid" in
  ''|*[!0-9]*) ;;
  *)
    if alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$1"; then
      kill -QUIT "$pid" 2>/dev/null
      i=0
      while alive "$pid" && [ "$i" -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
      alive "$pid" && kill -KILL "$pid" 2>/dev/null
    fi
    ;;
esac
[ -n "$2" ] && rm -rf -- "$2"
exit 0
"#;

/// A running watcher; dropping it closes the pipe and waits for the watcher to finish (stop the server if
/// it still runs, remove the directory if asked).
#[derive(Debug)]
pub(crate) struct ExitWatch {
    write: Option<PipeWriter>,
    child: Child,
}

impl ExitWatch {
    /// Watches the server of `data`; `remove` is removed (recursively) once it has stopped.
    pub(crate) fn spawn(data: &Path, remove: Option<&Path>) -> Result<ExitWatch, TestkitError> {
        let (read, write) = std::io::pipe().map_err(TestkitError::io("creating a pipe"))?;
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("auditloop-pg-exit-watch")
            .arg(data)
            .arg(remove.unwrap_or(Path::new("")))
            // Becomes the watcher's stdin (fd 0, inherited); the pipe's own fds are close-on-exec.
            .stdin(Stdio::from(read))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(TestkitError::io(
                "starting the PostgreSQL exit watcher (/bin/sh)",
            ))?;
        Ok(ExitWatch {
            write: Some(write),
            child,
        })
    }
}

impl Drop for ExitWatch {
    fn drop(&mut self) {
        drop(self.write.take());
        let _ = self.child.wait();
    }
}
