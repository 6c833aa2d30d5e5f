//! "Silent" means silent: an idle agent's signed heartbeats keep it from going silent at the collector; a
//! stopped agent goes silent even while someone keeps replaying its old batches.

use std::time::{Duration, Instant};

use auditloop_protocol::batch::CONTENT_TYPE_BINARY;
use harness::collector::Collector;
use harness::{Agent, remove_tree, temp_dir};
use serde_json::Value;

/// Every kind capture can turn off: the agent records nothing but its own records and heartbeats, so it
/// is idle whatever else runs on the machine.
const ALL_KINDS: &str = "exec, fork, exit, io_uring, open, unlink, rename, link, symlink, chmod, chown, \
    truncate, mkdir, rmdir, utimens, mount, umount, chdir, setid, ptrace, kill, set_name, memfd_create, \
    connect, bind, listen, accept, raw";

/// Silence period of the test collector.
const SILENCE_SECS: u64 = 6;

fn silence_alerts(collector: &Collector, host: &str) -> Vec<Value> {
    collector.get(&format!("/v1/alerts?host={host}&kind=silence"))["alerts"]
        .as_array()
        .expect("alerts")
        .clone()
}

/// The frames an agent sent in its first batch, replayed: the records of `state`'s first segment.
fn old_batch(state: &std::path::Path) -> Vec<u8> {
    use auditloop_journal::record::{SEGMENT_HEADER_LEN, read_frame};
    let (_, path) = auditloop_journal::files::list_segments(&state.join("journal"))
        .expect("segments")
        .into_iter()
        .next()
        .expect("a segment");
    let bytes = std::fs::read(path).expect("segment");
    let (mut off, mut first, mut last) = (SEGMENT_HEADER_LEN, 0, 0);
    while let Some(Ok(rec)) = bytes.get(off..).map(read_frame) {
        if first == 0 {
            first = rec.seq;
        }
        last = rec.seq;
        off += rec.len;
    }
    auditloop_protocol::batch::Batch {
        first_seq: first,
        last_seq: last,
        anchor: None,
        frames: bytes[SEGMENT_HEADER_LEN..off].to_vec(),
    }
    .encode_binary(1)
    .expect("encode")
}

#[test]
fn an_idle_agent_never_goes_silent_and_a_stopped_one_does_despite_replays() {
    harness::require_root();
    let dir = temp_dir("silence");
    let collector = Collector::start_with(
        &dir.join("collector"),
        0,
        &["--silence-secs", &SILENCE_SECS.to_string()],
    );
    let state = dir.join("state");
    let token = collector.enroll("quiet", &state);
    let config = format!(
        "ship:\n  collector: {}\n  token_file: {}\n  host_id: quiet\n  batch_max_ms: 20\n\
         capture:\n  disable: [{ALL_KINDS}]\n",
        collector.url(),
        token.display()
    );
    let agent = Agent::start_with_config(&config, &["--state-dir", state.to_str().expect("utf-8")]);
    collector.wait_host("quiet", Duration::from_secs(30), |h| {
        h["last_verified_seq"].as_u64().unwrap_or(0) > 1
    });
    // Idle for three silence periods: heartbeats keep it alive.
    std::thread::sleep(Duration::from_secs(3 * SILENCE_SECS));
    assert_eq!(
        silence_alerts(&collector, "quiet"),
        Vec::<Value>::new(),
        "an idle agent went silent"
    );
    let (status, _) = agent.stop_with(libc::SIGTERM);
    assert!(status.success());
    // Stopped: someone holding its token replays its old batch every second; silence comes all the same.
    let host_token = std::fs::read_to_string(&token)
        .expect("token")
        .trim()
        .to_owned();
    let replay = old_batch(&state);
    let deadline = Instant::now() + Duration::from_secs(4 * SILENCE_SECS);
    loop {
        let (status, _) =
            collector.post_batch("quiet", &host_token, CONTENT_TYPE_BINARY, replay.clone());
        assert_eq!(status, 200, "a replay of stored records is answered 200");
        if !silence_alerts(&collector, "quiet").is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a stopped agent never went silent while its old batch was replayed"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    drop(collector);
    remove_tree(&dir);
}
