//! Reading processes from `/proc`: CPU time, peak memory, kernel threads by name, and waiting for a process
//! to go quiet.

use std::time::{Duration, Instant};

use anyhow::Context;

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of `utime`/`stime` in `/proc/<pid>/stat`.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// User plus system CPU seconds of `pid` (all its threads), or `None` once it is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields are counted after the last `)`.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of stat(5), so utime (14) and stime (15) are at 11 and 12 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / ticks_per_second())
}

/// The summed CPU seconds of `pids` (a process that is gone counts 0).
pub fn cpu_sum(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|&p| cpu_seconds(p)).sum()
}

/// Peak resident set size (`VmHWM`) of `pid` in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The pid of the process (or kernel thread) whose `comm` is exactly `comm`, if there is one.
pub fn find_by_comm(comm: &str) -> anyhow::Result<Option<u32>> {
    for entry in std::fs::read_dir("/proc").context("listing /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if name.trim_end() == comm {
            return Ok(Some(pid));
        }
    }
    Ok(None)
}

/// Waits until `pids` together use less than 5 ms of CPU in 250 ms (work queued before this call has been
/// processed), at most `limit`. Returns whether they went quiet.
pub fn wait_quiet(pids: &[u32], limit: Duration) -> bool {
    let started = Instant::now();
    let mut last = cpu_sum(pids);
    while started.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(250));
        let now = cpu_sum(pids);
        if now - last < 0.005 {
            return true;
        }
        last = now;
    }
    false
}

/// `CLOCK_MONOTONIC` in nanoseconds (the clock of the kernel's `bpf_ktime_get_ns` and of events' `mono_ns`).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}
