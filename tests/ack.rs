//! The agent does not take the collector's word for deletions: answers that acknowledge what was never
//! sent (a 409 naming a sequence number past the journal, a 200 without a receipt or acknowledging beyond
//! the batch) move neither the ack cursor nor retention. A collector answering truthfully lets retention
//! delete, which shows the test would see a deletion.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditloop_protocol::batch::{Batch, CONTENT_TYPE_BINARY};
use harness::{Agent, agent_bin, temp_dir};

/// How the fake collector answers a batch.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// 409 with an `expected_seq` far past anything the agent wrote.
    HugeGap,
    /// 200 with a body that is not a receipt.
    EmptyOk,
    /// 200 whose receipt acknowledges far beyond the batch.
    OverAck,
    /// 200 acknowledging exactly the batch (what a real collector says).
    Truthful,
}

/// A collector that answers every batch as `answer` says and stores nothing.
struct FakeCollector {
    port: u16,
    batches: Arc<Mutex<u64>>,
    stop: Arc<AtomicBool>,
}

impl FakeCollector {
    fn start(answer: Answer) -> FakeCollector {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let batches = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, done) = (Arc::clone(&batches), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                stream.set_nonblocking(false).expect("blocking");
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("timeout");
                let Some(batch) = read_batch(&stream) else {
                    continue;
                };
                *count.lock().expect("count") += 1;
                let (status, body) = match answer {
                    Answer::HugeGap => (
                        "409 Conflict",
                        r#"{"error":"gap","expected_seq":4611686018427387904}"#.to_owned(),
                    ),
                    Answer::EmptyOk => ("200 OK", "{}".to_owned()),
                    Answer::OverAck => (
                        "200 OK",
                        format!(
                            r#"{{"stored":1,"duplicates":0,"next_seq":{}}}"#,
                            batch.last_seq + 1_000_000
                        ),
                    ),
                    Answer::Truthful => (
                        "200 OK",
                        format!(
                            r#"{{"stored":{},"duplicates":0,"next_seq":{}}}"#,
                            batch.len(),
                            batch.last_seq + 1
                        ),
                    ),
                };
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FakeCollector {
            port,
            batches,
            stop,
        }
    }

    fn batches(&self) -> u64 {
        *self.batches.lock().expect("count")
    }
}

impl Drop for FakeCollector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads one HTTP request and decodes its body as a batch.
fn read_batch(stream: &std::net::TcpStream) -> Option<Batch> {
    let mut reader = BufReader::new(stream);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    match Batch::decode(CONTENT_TYPE_BINARY, &body) {
        Ok(batch) => Some(batch),
        Err(e) => {
            eprintln!("fake collector: not a batch ({e}), {length} bytes");
            None
        }
    }
}

/// The journal's `ANCHOR` sequence number: 1 until retention deletes a segment.
fn anchor_seq(state: &Path) -> u64 {
    let text = std::fs::read_to_string(state.join("journal/ANCHOR")).expect("ANCHOR");
    let anchor: serde_json::Value = serde_json::from_str(&text).expect("ANCHOR json");
    anchor["seq"].as_u64().expect("seq")
}

/// Runs an agent with small segments and tight retention shipping to a collector answering `answer`,
/// under exec load for a few seconds; returns the anchor's sequence number, the segments left, and the
/// agent's log.
fn run_against(answer: Answer) -> (u64, usize, String) {
    let fake = FakeCollector::start(answer);
    let dir = temp_dir("ack");
    let token = dir.join("token");
    std::fs::write(&token, "host-token\n").expect("token");
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod token");
    let config = format!(
        "journal:\n  segment_bytes: 16384\n  max_bytes: 32768\nship:\n  collector: http://127.0.0.1:{}\n  \
         token_file: {}\n  host_id: ack-test\n  batch_max_bytes: 4096\n  batch_max_ms: 20\n",
        fake.port,
        token.display()
    );
    let state = dir.join("state");
    let mut agent =
        Agent::start_with_config(&config, &["--state-dir", state.to_str().expect("utf-8")]);
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
    while std::time::Instant::now() < deadline {
        let _ = Command::new("/bin/true").arg("ack-load").status();
    }
    agent.wait_until(Duration::from_secs(10), |_| fake.batches() >= 3);
    let log = agent.stderr();
    let (status, _) = agent.stop_with(libc::SIGTERM);
    assert!(status.success(), "{answer:?}: agent exit {status}: {log}");
    let verify = Command::new(agent_bin())
        .arg("verify")
        .arg(state.join("journal"))
        .output()
        .expect("verify");
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{answer:?}: journal verifies: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let segments = auditloop_journal::files::list_segments(&state.join("journal"))
        .expect("segments")
        .len();
    let result = (anchor_seq(&state), segments, log);
    harness::remove_tree(&dir);
    result
}

#[test]
fn answers_that_acknowledge_what_was_not_sent_delete_nothing() {
    harness::require_root();
    let (anchor, segments, _) = run_against(Answer::Truthful);
    assert!(
        anchor > 1,
        "a truthful collector lets retention delete (anchor {anchor}, {segments} segments)"
    );
    for (answer, says) in [
        (Answer::HugeGap, "past the last record this journal wrote"),
        (Answer::EmptyOk, "not a batch receipt"),
        (Answer::OverAck, "200 acknowledges up to"),
    ] {
        let (anchor, segments, log) = run_against(answer);
        assert_eq!(
            anchor, 1,
            "{answer:?}: nothing deleted ({segments} segments): {log}"
        );
        assert!(segments > 2, "{answer:?}: the journal rotated: {segments}");
        assert!(
            log.contains("collector answer refused") && log.contains(says),
            "{answer:?}: the anomaly is logged ({says}): {log}"
        );
    }
}
