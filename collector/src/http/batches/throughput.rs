//! A throughput measurement of the whole ingest path: decode, verify and commit on one thread, then four
//! hosts at once through the router.

use std::time::Instant;

use auditloop_protocol::batch::{Batch, CONTENT_TYPE_BINARY};
use axum::http::StatusCode;

use crate::http::testutil::TestApp;
use crate::ingest::{HostState, check};
use crate::store::{Enrollment, SqliteStore, Store};
use crate::testutil::{TestJournal, batch_of};

/// Measures storing 200k exec events shipped in batches like the agent's (about 1 MiB of frames, zstd):
/// one host through the blocking ingest path (per-phase times), then four hosts at once through the HTTP
/// router on a two-thread runtime.
/// `cargo test --release -p auditloop-collector --lib -- --ignored --nocapture throughput`
#[test]
#[ignore = "measurement; run in release"]
fn throughput() {
    const PER_BATCH: u64 = 4_000;
    let mut j = TestJournal::new("h");
    j.execs(200_000);
    let last = j.last_seq();
    let frames = j.frames();
    let encoded: Vec<Vec<u8>> = (1..=last)
        .step_by(PER_BATCH as usize)
        .map(|from| {
            let batch = batch_of(&frames, from, (from + PER_BATCH - 1).min(last));
            batch.encode_binary(1).unwrap()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
    let key = j.genesis_key();
    store
        .enroll(&Enrollment {
            host: "h",
            genesis_key: key,
            token_digest: [7; 32],
            replace: false,
            now_ns: 1,
        })
        .unwrap();
    let mut state = HostState::enrolled(key);
    let mut wall = [0.0; 3];
    let mut cpu = [0.0; 3];
    let start = Instant::now();
    for body in &encoded {
        let (t0, c0) = (Instant::now(), thread_cpu());
        let batch = Batch::decode(CONTENT_TYPE_BINARY, body).unwrap();
        let (t1, c1) = (Instant::now(), thread_cpu());
        let verified = check(&state, &batch, |_| None).unwrap();
        let (t2, c2) = (Instant::now(), thread_cpu());
        let expected_next_seq = state.next_seq();
        store
            .commit(&verified.commit("h", expected_next_seq, 1))
            .unwrap();
        state = verified.state.clone();
        for (i, (w, c)) in [
            (t1 - t0, c1 - c0),
            (t2 - t1, c2 - c1),
            (t2.elapsed(), thread_cpu() - c2),
        ]
        .into_iter()
        .enumerate()
        {
            wall[i] += w.as_secs_f64();
            cpu[i] += c;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "one host: {last} records in {} batches, {secs:.2} s = {:.0} records/s",
        encoded.len(),
        last as f64 / secs
    );
    for (i, phase) in ["decode", "verify", "store"].iter().enumerate() {
        println!(
            "  {phase}: {:.2} s wall, {:.2} s CPU on the ingest thread ({:.0} records/s of CPU)",
            wall[i],
            cpu[i],
            last as f64 / cpu[i]
        );
    }
    assert_eq!(store.host("h").unwrap().unwrap().records, last);

    const HOSTS: usize = 4;
    let app = TestApp::new();
    let mut tokens = Vec::new();
    runtime_once(async {
        for h in 0..HOSTS {
            let (status, body) = app
                .enroll_as(
                    Some(crate::http::testutil::ENROLL_TOKEN),
                    &format!("host{h}"),
                    &hex::encode(key),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            tokens.push(body["token"].as_str().unwrap().to_owned());
        }
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    runtime.block_on(async {
        let shippers = (0..HOSTS).map(|h| {
            let (app, encoded, token) = (&app, &encoded, &tokens[h]);
            async move {
                for body in encoded {
                    let host = format!("host{h}");
                    let (status, answer) = app
                        .post_raw(&host, Some(token), CONTENT_TYPE_BINARY, body.clone())
                        .await;
                    assert_eq!(status, StatusCode::OK, "{answer}");
                }
            }
        });
        futures_join_all(shippers).await;
    });
    let secs = start.elapsed().as_secs_f64();
    let total = last * HOSTS as u64;
    println!(
        "{HOSTS} hosts at once over HTTP: {total} records in {secs:.2} s = {:.0} records/s",
        total as f64 / secs
    );
}

/// Runs `f` to completion on a runtime of its own.
fn runtime_once(f: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f);
}

/// Runs futures concurrently on the current task.
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    std::future::poll_fn(|cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}

/// CPU time of the calling thread, in seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}
