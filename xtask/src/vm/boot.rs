//! One boot: qemu (TCG) with the kernel and the initramfs, the serial console copied to a log file and
//! read line by line for the suite's results, qemu killed when the boot runs out of time.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::Kernel;
use super::report::{BootResult, Transcript};

/// What to boot.
pub struct Boot<'a> {
    /// The kernel line.
    pub kernel: Kernel,
    /// Whether the BPF LSM is enabled on the command line (and expected by the suite).
    pub lsm: bool,
    /// Its `vmlinuz`.
    pub image: &'a Path,
    /// The initramfs.
    pub initrd: &'a Path,
    /// Where the serial console goes.
    pub log: PathBuf,
    /// Longest the boot may take.
    pub timeout: Duration,
    /// The cases the suite must report.
    pub cases: &'a [String],
}

/// The kernel command line of a boot.
fn cmdline(lsm: bool) -> String {
    let lsms = if lsm {
        "lockdown,capability,landlock,bpf"
    } else {
        "lockdown,capability,landlock"
    };
    format!(
        "console=ttyS0 quiet panic=-1 lsm={lsms} auditloop.lsm={}",
        u8::from(lsm)
    )
}

/// Boots once and collects the results; errors only when qemu cannot run at all.
pub fn run(boot: &Boot<'_>) -> anyhow::Result<BootResult> {
    let label = format!("{} {}", boot.kernel.name(), super::lsm_name(boot.lsm));
    eprintln!("xtask: vm: booting {label} (log {})", boot.log.display());
    let started = Instant::now();
    let mut log = std::fs::File::create(&boot.log)
        .with_context(|| format!("creating {}", boot.log.display()))?;
    let mut qemu = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-m", "2048", "-smp", "2"])
        .args(["-nographic", "-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(boot.image)
        .arg("-initrd")
        .arg(boot.initrd)
        .arg("-append")
        .arg(cmdline(boot.lsm))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64 (cargo xtask setup installs qemu-system-x86)")?;
    let stdout = qemu.stdout.take().context("qemu's stdout")?;
    let stderr = qemu.stderr.take().context("qemu's stderr")?;
    let (tx, rx) = channel();
    let err_tx = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            if tx
                .send(String::from_utf8_lossy(&line).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).split(b'\n') {
            let Ok(line) = line else { break };
            let text = format!("qemu: {}", String::from_utf8_lossy(&line));
            if err_tx.send(text).is_err() {
                break;
            }
        }
    });
    let deadline = started + boot.timeout;
    let mut transcript = Transcript::new(boot.cases);
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(raw) => {
                let line = clean(&raw);
                let _ = writeln!(log, "{line}");
                if let Some(progress) = transcript.feed(&line) {
                    eprintln!("xtask: vm: {label}: {progress}");
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                timed_out = true;
                let _ = qemu.kill();
                break;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = qemu.wait().context("waiting for qemu")?;
    let seconds = started.elapsed().as_secs_f64();
    let _ = writeln!(
        log,
        "xtask: qemu {status} after {seconds:.1} s{}",
        if timed_out { " (killed: timeout)" } else { "" }
    );
    Ok(transcript.finish(
        boot.kernel,
        boot.lsm,
        boot.log.clone(),
        seconds,
        timed_out.then_some(boot.timeout),
    ))
}

/// The line without carriage returns and terminal escape sequences (SeaBIOS and the console send them).
fn clean(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {}
            '\u{1b}' => {
                // CSI: ESC [ params final-byte; other escapes: ESC and one character.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{clean, cmdline};

    #[test]
    fn escapes_and_carriage_returns_are_dropped() {
        assert_eq!(
            clean("\u{1b}c\u{1b}[?7l\u{1b}[2JVMTEST a PASS\r"),
            "VMTEST a PASS"
        );
    }

    #[test]
    fn the_command_line_names_the_lsm_state() {
        assert!(cmdline(true).contains("lsm=lockdown,capability,landlock,bpf auditloop.lsm=1"));
        assert!(cmdline(false).contains("lsm=lockdown,capability,landlock auditloop.lsm=0"));
    }
}
