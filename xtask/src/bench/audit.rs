//! Linux audit for the `auditd` configuration: the kernel's audit settings and rules saved at the start and
//! restored at the end ([`AuditGuard`]), and an `auditd` daemon with its own config directory and log in a
//! temporary directory, recording the syscalls the agent records ([`Auditd`]).
//!
//! Outside the `auditd` configuration the bench keeps audit off with one rule, `-a never,task`: once audit
//! has been enabled the kernel gives every new task an audit context (and so the slower syscall path) until
//! reboot, even with audit disabled again; that rule gives new tasks none, as on a machine where audit was
//! never enabled.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cmd::{command, output};

/// The audit rules of the `auditd` configuration: the agent's exec, write-open, file-change and connect
/// syscalls (open flags `O_WRONLY|O_RDWR|O_CREAT|O_TRUNC` = 0x243; `openat2` carries its flags in a struct,
/// so all of its calls are recorded).
const RULES: &[&str] = &[
    "-S execve,execveat",
    "-S open -F a1&0x243",
    "-S openat -F a2&0x243",
    "-S openat2,creat",
    "-S unlink,unlinkat,rename,renameat,renameat2",
    "-S chmod,fchmod,fchmodat",
    "-S fchmodat2",
    "-S chown,fchown,lchown,fchownat",
    "-S connect",
];

/// The key the bench's rules carry.
const KEY: &str = "auditloop-bench";

fn auditctl(args: &[&str]) -> anyhow::Result<()> {
    let out = command("auditctl")
        .args(args)
        .output()
        .context("running auditctl")?;
    if !out.status.success() {
        bail!(
            "`auditctl {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `auditctl -s` as a map (`enabled`, `pid`, `backlog_limit`, `lost`, …).
pub fn status() -> anyhow::Result<BTreeMap<String, String>> {
    let text = output(command("auditctl").arg("-s")).context("`auditctl -s` failed")?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect())
}

fn status_u64(key: &str) -> anyhow::Result<u64> {
    status()?
        .get(key)
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no `{key}` in `auditctl -s`"))
}

/// Records the kernel lost since boot (`auditctl -s` `lost`).
pub fn lost() -> anyhow::Result<u64> {
    status_u64("lost")
}

/// The kernel's audit settings and rules as found; put back when dropped.
pub struct AuditGuard {
    settings: Vec<(&'static str, String)>,
    enabled: String,
    rules: Vec<String>,
}

impl AuditGuard {
    /// Saves the audit state and switches to the bench's baseline. Fails when an audit daemon runs (its
    /// rules would be in every configuration) or the configuration is locked (`enabled 2`).
    pub fn take() -> anyhow::Result<AuditGuard> {
        let status = status()?;
        let get = |k: &str| status.get(k).cloned().unwrap_or_default();
        if get("pid") != "0" {
            bail!(
                "an audit daemon runs (pid {}): stop it first, the bench needs audit to itself",
                get("pid")
            );
        }
        if get("enabled") == "2" {
            bail!("the audit configuration is locked (enabled 2) until reboot");
        }
        let rules = output(command("auditctl").arg("-l"))
            .context("`auditctl -l` failed")?
            .lines()
            .filter(|l| l.starts_with('-'))
            .map(str::to_string)
            .collect();
        let guard = AuditGuard {
            settings: vec![
                ("-f", get("failure")),
                ("-r", get("rate_limit")),
                ("-b", get("backlog_limit")),
                ("--backlog_wait_time", get("backlog_wait_time")),
            ],
            enabled: get("enabled"),
            rules,
        };
        guard.baseline()?;
        Ok(guard)
    }

    /// Audit off, and no audit context for new tasks (see the module docs).
    pub fn baseline(&self) -> anyhow::Result<()> {
        auditctl(&["-D"])?;
        auditctl(&["-a", "never,task"])?;
        auditctl(&["-e", "0"])
    }

    fn restore(&self) -> anyhow::Result<()> {
        auditctl(&["-D"])?;
        for rule in &self.rules {
            let args: Vec<&str> = rule.split_whitespace().collect();
            auditctl(&args)?;
        }
        for (flag, value) in &self.settings {
            if !value.is_empty() {
                auditctl(&[flag, value])?;
            }
        }
        auditctl(&["-e", &self.enabled])
    }
}

impl Drop for AuditGuard {
    fn drop(&mut self) {
        if let Err(err) = self.restore() {
            eprintln!("xtask: could not restore the audit rules and settings: {err:#}");
        }
    }
}

/// What a slice of the audit log holds.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogCount {
    /// `SYSCALL` records: audited syscalls.
    pub syscalls: u64,
    /// Those of this process and its descendants (followed through the records' `ppid`).
    pub own_syscalls: u64,
    /// All records (SYSCALL, EXECVE, CWD, PATH, PROCTITLE, …).
    pub records: u64,
}

/// A running `auditd` with the bench's rules.
pub struct Auditd {
    child: Option<Child>,
    /// Its pid.
    pub pid: u32,
    log: PathBuf,
}

impl Auditd {
    /// Writes a config into `dir` (log there, no rotation, no plugins), starts `auditd -n -c dir`, waits
    /// until it is the kernel's audit daemon, and loads the rules. Rules this auditctl does not know
    /// (`fchmodat2` before audit 3.1) are skipped with a note.
    pub fn start(dir: &Path) -> anyhow::Result<Auditd> {
        let plugins = dir.join("plugins");
        std::fs::create_dir_all(&plugins)
            .with_context(|| format!("creating {}", plugins.display()))?;
        let log = dir.join("audit.log");
        // Debian's defaults, with the log here, never rotated (rotation discarded records within one run
        // in earlier measurements) and no disk-space actions.
        let conf = format!(
            "local_events = yes\nwrite_logs = yes\nlog_file = {log}\nlog_format = ENRICHED\n\
             flush = INCREMENTAL_ASYNC\nfreq = 50\nmax_log_file = 100000\nnum_logs = 1\npriority_boost = 4\n\
             name_format = NONE\nmax_log_file_action = IGNORE\nspace_left = 2\nspace_left_action = IGNORE\n\
             admin_space_left = 1\nadmin_space_left_action = IGNORE\ndisk_full_action = IGNORE\n\
             disk_error_action = IGNORE\nuse_libwrap = no\ntcp_listen_queue = 5\ntcp_max_per_addr = 1\n\
             tcp_client_max_idle = 0\ntransport = TCP\ndistribute_network = no\nq_depth = 2000\n\
             overflow_action = SYSLOG\nmax_restarts = 10\nplugin_dir = {plugins}\nend_of_event_timeout = 2\n",
            log = log.display(),
            plugins = plugins.display()
        );
        let conf_path = dir.join("auditd.conf");
        std::fs::write(&conf_path, conf)
            .with_context(|| format!("writing {}", conf_path.display()))?;
        std::fs::set_permissions(&conf_path, std::fs::Permissions::from_mode(0o640))?;
        auditctl(&["-D"])?;
        let child = Command::new("auditd")
            .arg("-n")
            .arg("-c")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting auditd")?;
        let pid = child.id();
        let mut auditd = Auditd {
            child: Some(child),
            pid,
            log,
        };
        let started = Instant::now();
        while status()?.get("pid").map(String::as_str) != Some(&pid.to_string()) {
            let exited = auditd
                .child
                .as_mut()
                .is_none_or(|c| c.try_wait().ok().flatten().is_some());
            if exited || started.elapsed() > Duration::from_secs(20) {
                bail!(
                    "auditd (pid {pid}) did not register with the kernel (try `auditd -f -c {}`)",
                    dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        auditctl(&["-b", "8192"])?;
        for rule in RULES {
            let mut args = vec!["-a", "always,exit", "-F", "arch=b64"];
            args.extend(rule.split_whitespace());
            args.extend(["-k", KEY]);
            if let Err(err) = auditctl(&args) {
                if rule.contains("fchmodat2") {
                    static NOTED: std::sync::Once = std::sync::Once::new();
                    NOTED.call_once(|| {
                        eprintln!("xtask: note: {err:#} (this auditctl does not know the syscall)");
                    });
                } else {
                    auditd.stop()?;
                    return Err(err);
                }
            }
        }
        auditctl(&["-e", "1"])?;
        Ok(auditd)
    }

    /// The log's length in bytes (a position to count records from).
    pub fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// Records between two log positions.
    pub fn count(&self, from: u64, to: u64) -> anyhow::Result<LogCount> {
        let mut file = std::fs::File::open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        file.seek(SeekFrom::Start(from))?;
        let mut text = String::new();
        file.take(to.saturating_sub(from))
            .read_to_string(&mut text)?;
        let mut count = LogCount::default();
        let mut family = std::collections::BTreeSet::from([std::process::id()]);
        for line in text.lines().filter(|l| l.starts_with("type=")) {
            count.records += 1;
            if !line.starts_with("type=SYSCALL ") {
                continue;
            }
            count.syscalls += 1;
            let field = |name: &str| {
                line.split(' ')
                    .find_map(|f| f.strip_prefix(name))
                    .and_then(|v| v.parse::<u32>().ok())
            };
            if let (Some(pid), Some(ppid)) = (field("pid="), field("ppid=")) {
                if family.contains(&ppid) {
                    family.insert(pid);
                }
                if family.contains(&pid) {
                    count.own_syscalls += 1;
                }
            }
        }
        Ok(count)
    }

    /// Deletes the rules, stops the daemon and waits until the kernel has no audit daemon.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let deleted = auditctl(&["-D"]);
        // A child already reaped (by `try_wait`) is not signalled: its pid may have been reused.
        if child.try_wait()?.is_none()
            && let Ok(pid) = libc::pid_t::try_from(self.pid)
        {
            // SAFETY: signalling our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        child.wait().context("waiting for auditd")?;
        deleted?;
        let started = Instant::now();
        while status()?.get("pid").map(String::as_str) != Some("0") {
            if started.elapsed() > Duration::from_secs(10) {
                bail!("the kernel still names an audit daemon after auditd exited");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for Auditd {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            eprintln!("xtask: stopping auditd: {err:#}");
        }
    }
}
