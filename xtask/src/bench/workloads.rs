//! The overhead bench's workloads. Each runs on a thread of its own, started when the workload starts, so
//! its tasks are created under the configuration being measured (audit gives only tasks created while its
//! rules are loaded an audit context).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Number of C files the build-like workload compiles.
pub const COMPILES: usize = 6;

/// Runs `work` on a new thread and returns its result.
fn on_new_thread<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    std::thread::spawn(work)
        .join()
        .map_err(|_| anyhow::anyhow!("a workload thread panicked"))?
}

/// Spawns and reaps `/bin/true` `n` times; returns the total wall time.
pub fn exec_loop(n: usize) -> anyhow::Result<Duration> {
    on_new_thread(move || {
        let started = Instant::now();
        for i in 0..n {
            let status = Command::new("/bin/true")
                .status()
                .context("spawning /bin/true")?;
            if !status.success() {
                bail!("run {i}: /bin/true failed ({status})");
            }
        }
        Ok(started.elapsed())
    })
}

/// `open(O_WRONLY|O_CREAT|O_TRUNC)`, a 64-byte `write`, `close` of `path`, `n` times, with libc calls in
/// this process; returns the total wall time.
pub fn file_loop(path: &Path, n: usize) -> anyhow::Result<Duration> {
    let c = CString::new(path.as_os_str().as_bytes()).context("path with a NUL byte")?;
    on_new_thread(move || {
        let buf = [b'x'; 64];
        let started = Instant::now();
        for _ in 0..n {
            // SAFETY: a NUL-terminated path; flags and mode are plain integers.
            let fd = unsafe {
                libc::open(
                    c.as_ptr(),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
                    0o644,
                )
            };
            if fd < 0 {
                return Err(std::io::Error::last_os_error()).context("open in the file loop");
            }
            // SAFETY: `buf` is valid for its length; `fd` is open.
            let written = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
            // SAFETY: `fd` is a descriptor this loop opened.
            unsafe { libc::close(fd) };
            if written != buf.len() as isize {
                bail!("short write in the file loop");
            }
        }
        Ok(started.elapsed())
    })
}

/// Writes the build-like workload's C sources into `dir`; returns their paths.
pub fn prepare_build(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    (0..COMPILES)
        .map(|i| {
            let mut src = String::from("#include <stdio.h>\n#include <string.h>\n");
            for f in 0..150 {
                src.push_str(&format!(
                    "unsigned long f{i}_{f}(const char *s, unsigned long n) {{\n\
                     \x20 unsigned long h = {f}u;\n\
                     \x20 for (unsigned long k = 0; k < n; k++) h = h * 31u + (unsigned char)s[k % strlen(s)];\n\
                     \x20 if (h % 7u == {m}u) printf(\"%lu\\n\", h);\n\
                     \x20 return h ^ (h >> {sh});\n}}\n",
                    m = f % 7,
                    sh = 1 + f % 13
                ));
            }
            let path = dir.join(format!("unit{i}.c"));
            std::fs::write(&path, src).with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        })
        .collect()
}

/// `gcc -O2 -c` of each source in turn, then `tar czf` of `/usr/include` into `dir`; returns the wall time.
pub fn build_like(sources: &[PathBuf], dir: &Path) -> anyhow::Result<Duration> {
    let sources = sources.to_vec();
    let dir = dir.to_owned();
    on_new_thread(move || {
        let started = Instant::now();
        for src in &sources {
            let status = Command::new("gcc")
                .args(["-O2", "-c"])
                .arg(src)
                .arg("-o")
                .arg(src.with_extension("o"))
                .status()
                .context("running gcc")?;
            if !status.success() {
                bail!("gcc {} failed ({status})", src.display());
            }
        }
        let tarball = dir.join("include.tar.gz");
        let status = Command::new("tar")
            .arg("czf")
            .arg(&tarball)
            .args(["-C", "/", "usr/include"])
            .stderr(Stdio::null())
            .status()
            .context("running tar")?;
        if !status.success() {
            bail!("tar czf /usr/include failed ({status})");
        }
        let elapsed = started.elapsed();
        std::fs::remove_file(&tarball)
            .with_context(|| format!("removing {}", tarball.display()))?;
        Ok(elapsed)
    })
}
