//! A collector cluster: 3 replicas on one PostgreSQL database, 4 real agents (their own journals and
//! enrolled host ids) shipping in parallel under load, each listing every replica. One replica is killed
//! and restarted mid-run, and PostgreSQL is restarted once. At the end every host's chain in the database
//! is complete and verified again from the database alone: zero loss, zero duplicates.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use auditloop_collector::store::{PgStore, Store};
use auditloop_testkit::postgres::PgServer;
use harness::collector::{Collector, free_port};
use harness::{Agent, temp_dir};

use crate::ship::assert_same_chain;

const REPLICAS: usize = 3;
const AGENTS: usize = 4;

/// A config shipping to `urls` (in order) as `host` with `token`.
fn config(urls: &[String], host: &str, token: &Path) -> String {
    let list: String = urls.iter().map(|u| format!("    - {u}\n")).collect();
    format!(
        "ship:\n  collector:\n{list}  token_file: {}\n  host_id: {host}\n  batch_max_ms: 50\n  \
         timeout_secs: 10\n",
        token.display()
    )
}

/// Runs short-lived processes until the flag clears: steady event load for every agent.
fn load(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let _ = Command::new("/bin/true").arg("cluster-load").status();
            n += 1;
        }
        n
    })
}

/// `(count, distinct seqs, min seq, max seq)` of `host`'s rows in the database.
fn rows_of(pg: &PgServer, db: &str, host: &str) -> (u64, u64, u64, u64) {
    let out = pg
        .psql(
            db,
            &format!(
                "SELECT count(*), count(DISTINCT r.seq), min(r.seq), max(r.seq) FROM records r \
                 JOIN hosts h ON h.id = r.host_id WHERE h.name = '{host}'"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let n: Vec<u64> = out
        .trim()
        .split('|')
        .map(|f| f.trim().parse().unwrap_or_else(|e| panic!("{e}: {out}")))
        .collect();
    (n[0], n[1], n[2], n[3])
}

/// Waits until `host` has stored anything at `replica`.
fn wait_started(replica: &Collector, host: &str) {
    replica.wait_host(host, Duration::from_secs(120), |h| {
        h["last_seq"].as_u64() > Some(0)
    });
}

#[test]
fn three_replicas_and_a_postgres_restart_lose_and_duplicate_nothing() {
    let dir = temp_dir("cluster");
    let mut pg = PgServer::start(&dir.join("pg")).unwrap_or_else(|e| panic!("{e}"));
    let url = pg
        .create_database("cluster")
        .unwrap_or_else(|e| panic!("{e}"));
    let tokens = dir.join("replicas");
    let ports: Vec<u16> = (0..REPLICAS).map(|_| free_port()).collect();
    let mut replicas: Vec<Collector> = ports
        .iter()
        .map(|port| Collector::start_replica(&tokens, *port, &url))
        .collect();
    let urls: Vec<String> = replicas.iter().map(Collector::url).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(Arc::clone(&stop));
    let mut agents: Vec<(String, PathBuf, Agent)> = Vec::new();
    for i in 0..AGENTS {
        let host = format!("cluster-{i}");
        let state = dir.join(&host);
        // Enrolled through one replica, known to all of them.
        let token = replicas[i % REPLICAS].enroll(&host, &state);
        let mut order = urls.clone();
        order.rotate_left(i % REPLICAS);
        let agent = Agent::start_with_config(
            &config(&order, &host, &token),
            &["--state-dir", state.to_str().expect("utf-8")],
        );
        agents.push((host, state, agent));
    }
    for (host, _, _) in &agents {
        wait_started(&replicas[0], host);
    }

    // A replica dies mid-run: the agents that shipped to it move on to the next one in their list.
    replicas[1].kill();
    std::thread::sleep(Duration::from_secs(3));
    replicas[1] = Collector::start_replica(&tokens, ports[1], &url);
    let marker = harness::marker("after-replica");
    let _ = Command::new("/bin/true").arg(&marker).status();
    std::thread::sleep(Duration::from_secs(2));

    // The database restarts: every replica fails its batches meanwhile (nothing half-stored), the agents
    // keep their journals and retry, and the replicas' pools reconnect.
    pg.stop_immediately();
    std::thread::sleep(Duration::from_secs(2));
    pg.start_again().unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let before: Vec<u64> = agents
        .iter()
        .map(|(host, _, _)| {
            replicas[2]
                .host(host)
                .and_then(|h| h["last_seq"].as_u64())
                .unwrap_or(0)
        })
        .collect();
    // Every host gets past where it stood: ingest resumed after the restart.
    for ((host, _, _), was) in agents.iter().zip(&before) {
        loop {
            let now = replicas[2]
                .host(host)
                .and_then(|h| h["last_seq"].as_u64())
                .unwrap_or(0);
            if now > *was {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{host} never shipped again after the restart"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    // The agent that listed the killed replica first moved on along its list.
    let switched = agents[1].2.stderr();
    assert!(
        switched.contains("switching collector") && switched.contains(&format!("from={}", urls[1])),
        "cluster-1 failed over from the killed replica:\n{switched}"
    );
    stop.store(true, Ordering::Relaxed);
    let spawned = loader.join().expect("load thread");
    assert!(spawned > 10, "load ran ({spawned} processes)");
    for (host, state, agent) in agents {
        let (status, _) = agent.stop_with(libc::SIGTERM);
        assert!(status.success(), "{host} stopped cleanly");
        // The whole local chain, once, verified up to its final checkpoint: through any replica.
        let entry = assert_same_chain(&replicas[agents_replica(&host)], &host, &state);
        let last = entry["last_seq"].as_u64().expect("last_seq");
        // And in the database itself: every seq from 1 to the head, each once.
        assert_eq!(
            rows_of(&pg, "cluster", &host),
            (last, last, 1, last),
            "{host}: rows, distinct seqs, first, last"
        );
    }

    // Verified again from the database alone: every stored record's hash from its payload, the chain's
    // contiguity and every checkpoint signature along the host's key chain.
    let store = PgStore::connect(&url).unwrap_or_else(|e| panic!("{e}"));
    for i in 0..AGENTS {
        let host = format!("cluster-{i}");
        let found = auditloop_collector::reverify::reverify(&store, &host)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("{host} is stored"));
        assert!(found.first_bad.is_none(), "{host}: {:?}", found.first_bad);
        assert!(found.signatures > 0, "{host}: checkpoints checked");
        let stored = store.host(&host).unwrap_or_else(|e| panic!("{e}"));
        let stored = stored.unwrap_or_else(|| panic!("{host}"));
        assert_eq!(
            found.records, stored.records,
            "{host}: every record re-verified"
        );
        assert_eq!(stored.status.as_str(), "verified", "{host}");
    }
    // The killed replica's restart and the database restart raised no chain alert on any host.
    let alerts = replicas[0].get("/v1/alerts?limit=1000");
    let chain: Vec<_> = alerts["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|a| a["kind"] != "silence")
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    assert!(
        chain.is_empty(),
        "no gap, fork or forgery alerts: {chain:?}"
    );
    drop(replicas);
    drop(pg);
    harness::remove_tree(&dir);
}

/// Any replica answers for any host; the test reads through the one the host listed first.
fn agents_replica(host: &str) -> usize {
    host.rsplit('-')
        .next()
        .and_then(|i| i.parse::<usize>().ok())
        .map_or(0, |i| i % REPLICAS)
}

/// Retention drops day partitions, which only the PostgreSQL store has: asked of a SQLite file, the
/// collector refuses to start and says why, before it touches the file.
#[test]
fn retention_with_a_sqlite_file_is_refused_at_start() {
    let dir = temp_dir("retention-sqlite");
    std::fs::create_dir_all(&dir).expect("dir");
    let token = dir.join("admin.token");
    std::fs::write(&token, "admin-secret-token-for-retention\n").expect("token");
    let out = Command::new(harness::collector::collector_bin())
        .args(["--listen", "127.0.0.1:0", "--retention-days", "7", "--db"])
        .arg(dir.join("c.db"))
        .arg("--admin-token-file")
        .arg(&token)
        .output()
        .expect("collector");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("retention_days needs a PostgreSQL database"),
        "{stderr}"
    );
    assert!(!dir.join("c.db").exists(), "the file was not created");
    harness::remove_tree(&dir);
}
