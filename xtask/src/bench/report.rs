//! What the benches write besides their tables: the machine they ran on and JSON files under
//! `target/bench/`.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use super::proc;
use crate::cmd::workspace_root;

/// The machine a bench ran on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Online CPUs.
    pub cpus: usize,
    /// `uname -r`.
    pub kernel: String,
    /// The CPU model (`/proc/cpuinfo`).
    pub cpu_model: String,
    /// 1-minute load average when the bench started.
    pub load_before: f64,
    /// 1-minute load average when it ended (other work on the machine makes figures noisy).
    pub load_after: f64,
}

impl Machine {
    /// This machine now, with the load average measured at the start.
    pub fn now(load_before: f64) -> Machine {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            kernel,
            cpu_model,
            load_before,
            load_after: proc::load_average(),
        }
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        format!(
            "Machine: {} CPUs ({}), kernel {}, load average {:.2} at the start, {:.2} at the end.",
            self.cpus, self.cpu_model, self.kernel, self.load_before, self.load_after
        )
    }
}

/// Writes `value` as pretty JSON to `target/bench/<name>`.
pub fn write_json(name: &str, value: &impl Serialize) -> anyhow::Result<PathBuf> {
    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(name);
    let json = serde_json::to_string_pretty(value).context("serializing the report")?;
    std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(path)
}
