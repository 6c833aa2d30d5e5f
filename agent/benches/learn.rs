//! Learning over a large journal: `auditloop learn` (the release binary, as a user runs it) reads a journal
//! of 1,000,000 events spread over a week — execs of 300 programs under 40 parents, writes of 200 config
//! paths and 2,000 other files, connections of 60 programs to 500 destinations, listens, sensitive reads,
//! forks and exits — builds the baseline, writes the proposal and replays the window through it. Reported:
//! wall time, events/s and the process's peak resident memory; then the same for `auditloop rules diff`
//! of the default rules against default + learned over the same journal.
//!
//! Run with `cargo xtask bench learn` (it builds the release agent and passes its path in
//! `AUDITLOOP_BIN`).
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark aborts on any error"
)]

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use auditloop_journal::{FsyncPolicy, Journal, JournalOptions};
use auditloop_model::{
    Event, EventBody, Exec, Exit, File, FileOp, Fork, Net, NetOp, Process, WallTime,
};

const EVENTS: u64 = 1_000_000;
const WEEK_NS: u64 = 7 * 86_400 * 1_000_000_000;

/// A small deterministic generator (xorshift), so every run reads the same journal.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn process(rng: &mut Rng, program: u64) -> Process {
    let parent = program % 40;
    Process {
        pid: 1000 + rng.next(30_000) as u32,
        tid: 1000,
        ppid: 900,
        uid: [0, 33, 1000][rng.next(3) as usize],
        comm: format!("prog{program}"),
        exe: format!("/usr/bin/prog{program}"),
        parent_exe: format!("/usr/sbin/parent{parent}"),
        ..Process::default()
    }
}

fn event(rng: &mut Rng, i: u64, start: u64) -> Event {
    let program = rng.next(300);
    let mut process = process(rng, program);
    let body = match rng.next(100) {
        0..20 => EventBody::Exec(Exec {
            filename: format!("/usr/bin/prog{program}"),
            argv: vec![format!("prog{program}"), "--run".into()],
            success: true,
            ret: Some(0),
            ..Exec::default()
        }),
        20..40 => EventBody::File(File {
            op: FileOp::Open,
            syscall: "openat".into(),
            path: format!("/etc/app{}/conf{}.yaml", program % 20, rng.next(10)),
            success: true,
            ret: Some(3),
            ..File::default()
        }),
        40..55 => EventBody::File(File {
            op: FileOp::Open,
            syscall: "openat".into(),
            path: format!("/var/lib/data/file{}.bin", rng.next(2000)),
            success: true,
            ret: Some(3),
            ..File::default()
        }),
        55..75 => {
            process.exe = format!("/usr/sbin/server{}", program % 60);
            EventBody::Net(Net {
                op: NetOp::Connect,
                family: "inet".into(),
                address: format!("10.0.{}.{}", rng.next(2), rng.next(250)),
                port: 443,
                success: true,
                ..Net::default()
            })
        }
        75..77 => {
            process.exe = format!("/usr/sbin/server{}", program % 60);
            EventBody::Net(Net {
                op: NetOp::Listen,
                family: "inet".into(),
                address: "0.0.0.0".into(),
                port: 8000 + (program % 60) as u16,
                success: true,
                ..Net::default()
            })
        }
        77..82 => EventBody::File(File {
            op: FileOp::Read,
            syscall: "openat".into(),
            path: ["/etc/shadow", "/etc/gshadow", "/etc/sudoers"][rng.next(3) as usize].into(),
            success: true,
            ret: Some(3),
            ..File::default()
        }),
        82..91 => EventBody::Fork(Fork {
            child_pid: 40_000 + rng.next(20_000) as u32,
            ..Fork::default()
        }),
        _ => EventBody::Exit(Exit {
            code: Some(0),
            signal: None,
        }),
    };
    Event {
        seq: 0,
        time: WallTime(start + i * (WEEK_NS / EVENTS)),
        mono_ns: i,
        process,
        event: body,
    }
}

fn write_journal(state: &Path) {
    let mut opts = JournalOptions::in_state_dir(state, "bench");
    opts.fsync = FsyncPolicy::Never;
    let mut journal = Journal::open(opts).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start = WallTime::now().0 - WEEK_NS;
    for i in 0..EVENTS {
        journal
            .append_event(&mut event(&mut rng, i, start))
            .unwrap();
    }
    journal.close().unwrap();
}

/// Runs `cmd`, returns (exit code, seconds, peak RSS in MiB of that child).
fn measure(cmd: &mut Command) -> (Option<i32>, f64, f64) {
    let started = Instant::now();
    #[expect(
        clippy::zombie_processes,
        reason = "reaped by wait4 below, which also reports its resource usage"
    )]
    let child = cmd.spawn().unwrap();
    let mut status = 0;
    // SAFETY: getrusage's struct is plain data, written by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child and writes only `status` and `usage`.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert!(pid > 0, "wait4");
    let secs = started.elapsed().as_secs_f64();
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, secs, usage.ru_maxrss as f64 / 1024.0)
}

fn main() {
    let bin = auditloop_testkit::bins::agent_bin()
        .expect("AUDITLOOP_BIN (run `cargo xtask bench learn`)");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let started = Instant::now();
    write_journal(&state);
    println!(
        "journal of {EVENTS} events written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "").unwrap();
    let learned = dir.path().join("rules/learned.yaml");
    std::fs::create_dir_all(learned.parent().unwrap()).unwrap();
    let journal = state.join("journal");
    let (code, secs, rss) = measure(
        Command::new(&bin)
            .arg("learn")
            .arg("--journal")
            .arg(&journal)
            .arg("--config")
            .arg(&config)
            .arg("--out")
            .arg(&learned)
            .stderr(std::process::Stdio::null()),
    );
    assert_eq!(code, Some(0), "learn failed");
    let rules = std::fs::read_to_string(&learned)
        .unwrap()
        .matches("- rule:")
        .count();
    println!(
        "learn: {EVENTS} events in {secs:.2} s ({:.0} events/s, two passes: learn + replay), peak RSS \
         {rss:.1} MiB, {rules} rules proposed",
        EVENTS as f64 / secs
    );
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/default.yaml");
    std::fs::copy(&default, dir.path().join("rules/default.yaml")).unwrap();
    let (code, secs, rss) = measure(
        Command::new(&bin)
            .args(["rules", "diff"])
            .arg(&default)
            .arg(dir.path().join("rules"))
            .arg("--journal")
            .arg(&journal)
            .stdout(std::process::Stdio::null()),
    );
    assert!(matches!(code, Some(0 | 1)), "diff failed: {code:?}");
    println!(
        "rules diff default -> default + learned: {EVENTS} events in {secs:.2} s ({:.0} events/s), peak \
         RSS {rss:.1} MiB",
        EVENTS as f64 / secs
    );
}
