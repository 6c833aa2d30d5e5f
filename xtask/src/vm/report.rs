//! The suite's console protocol, read on the host, and the tier's summary.
//!
//! The runner prints `VMTEST-BEGIN <n>`, then for each case `VMTEST-TIME <case> <secs>` and
//! `VMTEST <case> PASS` or `VMTEST <case> FAIL <reason>`, then `VMTEST-END`. Anything else on the console
//! (kernel messages, a failed case's output) is only logged.

use std::path::PathBuf;
use std::time::Duration;

use super::Kernel;

/// The results of one boot as read so far.
pub struct Transcript {
    expected: Vec<String>,
    announced: Option<usize>,
    ended: bool,
    passed: Vec<String>,
    failed: Vec<(String, String)>,
    times: Vec<(String, f64)>,
}

/// The outcome of one boot.
pub struct BootResult {
    /// The kernel line booted.
    pub kernel: Kernel,
    /// Whether the BPF LSM was enabled.
    pub lsm: bool,
    /// The serial-console log.
    pub log: PathBuf,
    /// From qemu's start to its exit.
    pub seconds: f64,
    /// Cases that passed.
    pub passed: Vec<String>,
    /// Cases that failed, with their reasons.
    pub failed: Vec<(String, String)>,
    /// Seconds each case took, as the runner measured them.
    pub times: Vec<(String, f64)>,
    /// Why the boot as a whole failed (no `VMTEST-END`, a missing case, a timeout), if it did.
    pub problems: Vec<String>,
}

impl BootResult {
    /// Whether every case passed and the run was complete.
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.problems.is_empty()
    }
}

impl Transcript {
    /// A transcript expecting `cases`.
    pub fn new(cases: &[String]) -> Transcript {
        Transcript {
            expected: cases.to_vec(),
            announced: None,
            ended: false,
            passed: Vec::new(),
            failed: Vec::new(),
            times: Vec::new(),
        }
    }

    /// Reads one console line; returns a progress note for the protocol's lines.
    pub fn feed(&mut self, line: &str) -> Option<String> {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("VMTEST-BEGIN ") {
            self.announced = rest.trim().parse().ok();
            return Some(format!("{} case(s)", rest.trim()));
        }
        if line == "VMTEST-END" {
            self.ended = true;
            return Some("suite ended".into());
        }
        if let Some(rest) = line.strip_prefix("VMTEST-INFO ") {
            return Some(rest.to_owned());
        }
        if let Some(rest) = line.strip_prefix("VMTEST-TIME ") {
            let mut words = rest.split_whitespace();
            if let (Some(case), Some(secs)) = (words.next(), words.next())
                && let Ok(secs) = secs.parse()
            {
                self.times.push((case.to_owned(), secs));
            }
            return None;
        }
        let rest = line.strip_prefix("VMTEST ")?;
        let (case, verdict) = rest.split_once(' ')?;
        let secs = self
            .times
            .iter()
            .rev()
            .find(|(c, _)| c == case)
            .map_or(String::new(), |(_, s)| format!(" ({s:.1} s)"));
        if verdict.trim() == "PASS" {
            self.passed.push(case.to_owned());
            Some(format!("{case} PASS{secs}"))
        } else if let Some(reason) = verdict.strip_prefix("FAIL") {
            let reason = reason.trim();
            self.failed.push((case.to_owned(), reason.to_owned()));
            Some(format!("{case} FAIL{secs}: {reason}"))
        } else {
            None
        }
    }

    /// The boot's outcome; `timed_out` is the limit when qemu was killed.
    pub fn finish(
        self,
        kernel: Kernel,
        lsm: bool,
        log: PathBuf,
        seconds: f64,
        timed_out: Option<Duration>,
    ) -> BootResult {
        let mut problems = Vec::new();
        if let Some(limit) = timed_out {
            problems.push(format!(
                "timed out after {} s (qemu killed)",
                limit.as_secs()
            ));
        }
        if self.announced.is_none() {
            problems.push("no VMTEST-BEGIN: the suite never started".into());
        }
        if let Some(n) = self.announced.filter(|&n| n != self.expected.len()) {
            problems.push(format!(
                "the suite announced {n} case(s), the host expected {}",
                self.expected.len()
            ));
        }
        if !self.ended {
            problems.push("no VMTEST-END".into());
        }
        let reported =
            |c: &String| self.passed.contains(c) || self.failed.iter().any(|(f, _)| f == c);
        let missing: Vec<&str> = self
            .expected
            .iter()
            .filter(|c| !reported(c))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            problems.push(format!("no result for: {}", missing.join(", ")));
        }
        BootResult {
            kernel,
            lsm,
            log,
            seconds,
            passed: self.passed,
            failed: self.failed,
            times: self.times,
            problems,
        }
    }
}

/// Prints the table (kernel × LSM, counts, seconds) and every failure with its log's tail; true when
/// anything failed.
pub fn summary(results: &[BootResult], total: Duration) -> bool {
    let mut failed = false;
    for r in results.iter().filter(|r| !r.ok()) {
        failed = true;
        eprintln!(
            "\nxtask: vm: FAILED: kernel {} {}",
            r.kernel.name(),
            super::lsm_name(r.lsm)
        );
        for (case, reason) in &r.failed {
            eprintln!("xtask: vm:   case {case}: {reason}");
        }
        for problem in &r.problems {
            eprintln!("xtask: vm:   {problem}");
        }
        let text = std::fs::read_to_string(&r.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("xtask: vm:   last lines of {}:", r.log.display());
        for line in &lines[lines.len().saturating_sub(40)..] {
            eprintln!("    {line}");
        }
    }
    eprintln!("\nxtask: vm: summary");
    eprintln!("| kernel | lsm | pass | fail | seconds |");
    eprintln!("|---|---|---|---|---|");
    for r in results {
        let fail = r.failed.len() + usize::from(!r.problems.is_empty());
        eprintln!(
            "| {} | {} | {} | {} | {:.0} |",
            r.kernel.name(),
            super::lsm_name(r.lsm),
            r.passed.len(),
            fail,
            r.seconds
        );
    }
    for r in results {
        let times: Vec<String> = r
            .times
            .iter()
            .map(|(case, secs)| format!("{case} {secs:.1}"))
            .collect();
        eprintln!(
            "xtask: vm: {} {} case seconds: {}",
            r.kernel.name(),
            super::lsm_name(r.lsm),
            times.join(", ")
        );
    }
    eprintln!(
        "xtask: vm: {} in {:.0} s",
        if failed { "FAILED" } else { "all boots passed" },
        total.as_secs_f64()
    );
    failed
}

#[cfg(test)]
mod tests {
    use super::Transcript;
    use crate::vm::Kernel;

    fn cases() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    fn read(lines: &[&str]) -> super::BootResult {
        let mut t = Transcript::new(&cases());
        for line in lines {
            t.feed(line);
        }
        t.finish(Kernel::V6_1, true, "log".into(), 1.0, None)
    }

    #[test]
    fn a_complete_passing_run_is_ok() {
        let r = read(&[
            "VMTEST-BEGIN 2",
            "VMTEST-TIME a 1.5",
            "VMTEST a PASS",
            "VMTEST b PASS",
            "VMTEST-END",
        ]);
        assert!(r.ok(), "{:?}", r.problems);
        assert_eq!(r.times, vec![("a".to_string(), 1.5)]);
    }

    #[test]
    fn a_failure_a_missing_case_and_a_missing_end_are_reported() {
        let r = read(&["VMTEST-BEGIN 2", "VMTEST a FAIL no exec event"]);
        assert!(!r.ok());
        assert_eq!(r.failed, vec![("a".into(), "no exec event".into())]);
        assert!(r.problems.iter().any(|p| p.contains("no VMTEST-END")));
        assert!(r.problems.iter().any(|p| p.contains("no result for: b")));
    }

    #[test]
    fn nothing_at_all_is_a_failure() {
        let r = read(&[]);
        assert!(r.problems.iter().any(|p| p.contains("never started")));
    }
}
