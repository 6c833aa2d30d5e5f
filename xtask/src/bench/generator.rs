//! The storm's load: threads of this process each `creat` and `close` a file of their own on tmpfs, at a
//! paced total rate or as fast as they can, for a fixed time.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

/// What the generator did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Generated {
    /// Successful `creat` calls (each one file event expected).
    pub creats: u64,
    /// Failed ones.
    pub failed: u64,
    /// Wall time from the first call to the last thread's end.
    pub seconds: f64,
}

/// One thread's loop: `creat(path)` + `close` until `duration` is over, paced at `rate` per second (0 = no
/// pacing).
fn run_thread(path: &CString, rate: f64, duration: Duration) -> (u64, u64) {
    let started = Instant::now();
    let (mut done, mut failed) = (0u64, 0u64);
    loop {
        let elapsed = started.elapsed();
        if elapsed >= duration {
            return (done, failed);
        }
        if rate > 0.0 {
            let due = (rate * elapsed.as_secs_f64()) as u64;
            if done + failed >= due {
                std::thread::sleep(Duration::from_micros(100));
                continue;
            }
        }
        // Up to 32 calls between clock reads.
        for _ in 0..32 {
            // SAFETY: a NUL-terminated path; creat(2) through syscall(2) so libc cannot turn it into openat.
            let fd = unsafe { libc::syscall(libc::SYS_creat, path.as_ptr(), 0o644) };
            if fd < 0 {
                failed += 1;
            } else {
                done += 1;
                // SAFETY: `fd` is the descriptor just returned.
                unsafe { libc::close(fd as libc::c_int) };
            }
            if rate > 0.0 && (done + failed) as f64 >= rate * started.elapsed().as_secs_f64() {
                break;
            }
        }
    }
}

/// Runs `threads` threads, together at `rate` calls per second (0 = as fast as possible), for `duration`,
/// each on its own file in `dir`.
pub fn generate(
    dir: &Path,
    threads: usize,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<Generated> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let path = CString::new(dir.join(format!("g{t}")).as_os_str().as_bytes())
                .context("generator path with a NUL byte")?;
            let per_thread = rate / threads as f64;
            Ok(std::thread::spawn(move || {
                run_thread(&path, per_thread, duration)
            }))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut out = Generated::default();
    for handle in handles {
        let (done, failed) = handle
            .join()
            .map_err(|_| anyhow::anyhow!("a generator thread panicked"))?;
        out.creats += done;
        out.failed += failed;
    }
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}
