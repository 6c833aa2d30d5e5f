//! Loss accounting under a storm: a tiny ring buffer, 8 threads creating directories as fast as they can.
//! Every mkdir is either delivered or counted in a `loss` event: the books balance. (mkdir, because other
//! processes make few of them: opens by relative path cannot be filtered in the kernel by prefix, so the
//! opens of a build running beside the test would be counted too.)

use std::time::Duration;

use harness::Agent;
use serde_json::Value;

const THREADS: usize = 8;
const FILES_PER_THREAD: usize = 2000;
/// mkdirs by other processes during the test that may also have been lost (other tests, the build).
const OTHER_OPENS_SLACK: u64 = 2000;

#[expect(clippy::expect_used, reason = "a test helper fails the test loudly")]
fn tempfile_in_shm() -> std::path::PathBuf {
    let dir = std::path::Path::new("/dev/shm").join(harness::marker("storm"));
    std::fs::create_dir_all(&dir).expect("storm dir in /dev/shm");
    dir
}

fn lost_mkdirs(seen: &[Value]) -> u64 {
    seen.iter()
        .filter(|e| {
            e["event"]["loss"]["stage"] == "kernel_ring_buffer"
                && e["event"]["loss"]["record"] == "syscall:mkdir"
        })
        .filter_map(|e| e["event"]["loss"]["count"].as_u64())
        .sum()
}

#[test]
fn storm_with_a_tiny_ring_buffer_balances_the_books() {
    // Other tests write files at the same time (under /tmp, the build under /work); their opens are
    // filtered in the kernel so only this test's opens can be counted as lost. The storm runs in /dev/shm.
    let config = "capture:\n  ring_buffer_bytes: 4096\n  ignore:\n    path_prefixes: [/tmp/, /work/, /root/, /var/, /proc/, /sys/, /dev/pts/, /dev/null]\n";
    let mut agent = Agent::start_with_config(config, &[]);
    let dir = tempfile_in_shm();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let dir = &dir;
            s.spawn(move || {
                for i in 0..FILES_PER_THREAD {
                    std::fs::create_dir(dir.join(format!("{t}-{i}"))).expect("mkdir");
                }
            });
        }
    });
    let ops = (THREADS * FILES_PER_THREAD) as u64;
    let prefix = format!("{}/", dir.display());
    let delivered = |seen: &[Value]| {
        seen.iter()
            .filter(|e| e["event"]["file"]["op"] == "mkdir")
            .filter(|e| {
                e["event"]["file"]["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with(&prefix))
            })
            .count() as u64
    };
    agent.wait_until(Duration::from_secs(60), |seen| {
        delivered(seen) + lost_mkdirs(seen) >= ops
    });
    // Let the last loss report and stragglers arrive, then stop and take the final books.
    std::thread::sleep(Duration::from_millis(500));
    let (status, seen) = agent.stop_with(libc::SIGTERM);
    assert!(status.success());
    let (got, lost) = (delivered(&seen), lost_mkdirs(&seen));
    eprintln!("storm books: performed {ops}, delivered {got}, counted lost {lost}");
    assert!(
        got <= ops,
        "more mkdirs delivered ({got}) than performed ({ops})"
    );
    assert!(
        lost > 0,
        "a 4 KiB ring buffer must overflow under this storm"
    );
    assert!(
        got + lost >= ops,
        "silent loss: delivered {got} + counted lost {lost} < performed {ops}"
    );
    assert!(
        got + lost <= ops + OTHER_OPENS_SLACK,
        "loss counts too high: delivered {got} + lost {lost} vs performed {ops}"
    );
    let stop = seen.last().expect("events");
    assert!(
        stop["event"]["agent_stop"]["kernel_lost"].as_u64() >= Some(lost),
        "{stop}"
    );
    harness::remove_tree(&dir);
}
