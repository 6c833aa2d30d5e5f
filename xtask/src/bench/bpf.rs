//! What BPF programs a process has attached and how often they ran: link and program ids from
//! `/proc/<pid>/fdinfo`, perf-event attachments and program statistics from `bpftool … -j`, and the
//! `kernel.bpf_stats_enabled` switch (restored when dropped).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::cmd::{command, output};

/// One BPF link a process holds: its id, its program and the tracepoint it attaches to.
#[derive(Clone, Debug)]
pub struct Link {
    /// The program's id.
    pub prog_id: u32,
    /// The tracepoint's name (`sys_enter_openat`), without its category.
    pub tp_name: String,
}

/// The tracepoint links `pid` holds, read from `/proc/<pid>/fdinfo` (kernels ≥ 6.6 print `tp_name` there).
pub fn links_of(pid: u32) -> anyhow::Result<Vec<Link>> {
    let dir = format!("/proc/{pid}/fdinfo");
    let mut links = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
        let Ok(entry) = entry else { continue };
        let Ok(info) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        if field("link_id:").is_none() {
            continue;
        }
        let (Some(prog_id), Some(tp_name)) = (
            field("prog_id:").and_then(|v| v.parse().ok()),
            field("tp_name:"),
        ) else {
            continue;
        };
        links.push(Link { prog_id, tp_name });
    }
    Ok(links)
}

/// One row of `bpftool perf show -j`: a perf event with a program attached.
#[derive(Clone, Debug, Deserialize)]
pub struct PerfAttachment {
    /// The process holding the perf event.
    pub pid: u32,
    /// The attached program.
    pub prog_id: u32,
}

/// Every perf-event attachment (`bpftool perf show -j`).
pub fn perf_show() -> anyhow::Result<Vec<PerfAttachment>> {
    let json = output(command("bpftool").args(["perf", "show", "-j"]))
        .context("`bpftool perf show -j` failed")?;
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(&json).context("parsing `bpftool perf show -j`")
}

/// Run statistics of one program (`bpftool prog show -j`; absent counters are 0).
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize)]
pub struct ProgStats {
    /// Times the program ran (counted while `kernel.bpf_stats_enabled` is 1).
    #[serde(default)]
    pub run_cnt: u64,
    /// Nanoseconds spent running it (likewise).
    #[serde(default)]
    pub run_time_ns: u64,
    /// Times the kernel skipped it because another BPF program was running on that CPU.
    #[serde(default)]
    pub recursion_misses: u64,
}

impl ProgStats {
    /// `self - earlier`, counter by counter.
    pub fn since(self, earlier: ProgStats) -> ProgStats {
        ProgStats {
            run_cnt: self.run_cnt.saturating_sub(earlier.run_cnt),
            run_time_ns: self.run_time_ns.saturating_sub(earlier.run_time_ns),
            recursion_misses: self
                .recursion_misses
                .saturating_sub(earlier.recursion_misses),
        }
    }
}

#[derive(Deserialize)]
struct ProgRow {
    id: u32,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(flatten)]
    stats: ProgStats,
}

/// Statistics of every loaded program by id.
pub fn prog_stats() -> anyhow::Result<BTreeMap<u32, ProgStats>> {
    let json = output(command("bpftool").args(["prog", "show", "-j"]))
        .context("`bpftool prog show -j` failed")?;
    if json.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let rows: Vec<ProgRow> =
        serde_json::from_str(&json).context("parsing `bpftool prog show -j`")?;
    Ok(rows.into_iter().map(|r| (r.id, r.stats)).collect())
}

/// How many tracepoint programs are loaded (any process's).
pub fn tracepoint_programs() -> anyhow::Result<usize> {
    let json = output(command("bpftool").args(["prog", "show", "-j"]))
        .context("`bpftool prog show -j` failed")?;
    if json.trim().is_empty() {
        return Ok(0);
    }
    let rows: Vec<ProgRow> =
        serde_json::from_str(&json).context("parsing `bpftool prog show -j`")?;
    Ok(rows.iter().filter(|r| r.kind == "tracepoint").count())
}

/// Waits until none of `ids` is loaded any more (the tracer's programs are freed, so detached).
pub fn wait_unloaded(ids: &[u32], limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let loaded = prog_stats()?;
        let left: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|id| loaded.contains_key(id))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!("BPF programs {left:?} still loaded {limit:?} after their tracer stopped");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `category:name` of tracepoint `name`, found under `/sys/kernel/tracing/events/*/name`.
pub fn tracepoint_category(name: &str) -> anyhow::Result<String> {
    let events = Path::new("/sys/kernel/tracing/events");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(events).context("listing /sys/kernel/tracing/events")? {
        let Ok(entry) = entry else { continue };
        if entry.path().join(name).is_dir() {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("tracepoint {name} not found under {}", events.display()),
        many => bail!("tracepoint {name} is in several categories: {many:?}"),
    }
}

const BPF_STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// `kernel.bpf_stats_enabled=1` while alive; the previous value is written back when dropped.
pub struct BpfStatsOn {
    previous: String,
}

impl BpfStatsOn {
    /// Turns program statistics on.
    pub fn enable() -> anyhow::Result<BpfStatsOn> {
        let previous = std::fs::read_to_string(BPF_STATS_SYSCTL)
            .with_context(|| format!("reading {BPF_STATS_SYSCTL}"))?;
        std::fs::write(BPF_STATS_SYSCTL, "1")
            .with_context(|| format!("writing {BPF_STATS_SYSCTL}"))?;
        Ok(BpfStatsOn { previous })
    }
}

impl Drop for BpfStatsOn {
    fn drop(&mut self) {
        if let Err(err) = std::fs::write(BPF_STATS_SYSCTL, self.previous.trim()) {
            eprintln!(
                "xtask: could not restore {BPF_STATS_SYSCTL} to {}: {err}",
                self.previous.trim()
            );
        }
    }
}
