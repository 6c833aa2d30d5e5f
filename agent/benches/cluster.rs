//! Fleet ingest on this machine: stored events/s with hosts shipping in parallel to 1 and to 3 collector
//! replicas on one PostgreSQL server, and to one collector on SQLite for comparison, in one run.
//!
//! Each of [`HOSTS`] hosts has a journal of [`EVENTS_PER_HOST`] events written beforehand (the same
//! journals, copied, for every setup). The agents' own shippers (in this process, one per host) start
//! together; host `i` lists the replicas starting from replica `i % replicas`, as a load balancer would
//! spread them. Stored events/s = all events / time until every host's last record was acknowledged
//! (acknowledged means committed in the database). Everything (PostgreSQL, replicas, shippers) shares this
//! machine's cores, so the figures say where the work goes, not what a fleet of machines would reach.
//!
//! Run with `cargo xtask bench cluster` (it builds the release collector and passes its path in
//! `AUDITLOOP_COLLECTOR_BIN`; PostgreSQL comes from `cargo xtask setup`).
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark aborts on any error"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use auditloop::ship::{self, ShipSettings};
use auditloop_journal::RetentionFloor;
use auditloop_journal::{FsyncPolicy, Journal, JournalOptions};
use auditloop_model::{Event, EventBody, File, FileOp, Process, WallTime};
use auditloop_testkit::postgres::PgServer;
use auditloop_testkit::{CollectorProcess, CollectorSpec};
use tokio::sync::watch;

const HOSTS: usize = 4;
const EVENTS_PER_HOST: u64 = 250_000;

fn event(host: usize, i: u64) -> Event {
    Event {
        seq: 0,
        time: WallTime::now(),
        mono_ns: i,
        process: Process {
            pid: 4000 + u32::try_from(i % 64).unwrap(),
            tid: 4000 + u32::try_from(i % 64).unwrap(),
            ppid: 1,
            comm: "bench".into(),
            exe: "/usr/bin/bench".into(),
            ..Process::default()
        },
        event: EventBody::File(File {
            op: FileOp::Open,
            syscall: "openat".into(),
            path: format!("/var/lib/app{host}/data-{}.bin", i % 1000),
            flags: 0o1101,
            ret: Some(3),
            ..File::default()
        }),
    }
}

/// Writes the journals every setup copies.
fn write_journals(dir: &Path) -> Vec<PathBuf> {
    (0..HOSTS)
        .map(|h| {
            let state = dir.join(format!("host{h}"));
            let mut opts = JournalOptions::in_state_dir(&state, "bench");
            opts.fsync = FsyncPolicy::Never;
            let mut journal = Journal::open(opts).unwrap();
            for i in 0..EVENTS_PER_HOST {
                journal.append_event(&mut event(h, i)).unwrap();
            }
            journal.close().unwrap();
            state
        })
        .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

fn head(state: &Path) -> u64 {
    let text = std::fs::read_to_string(state.join("journal/HEAD")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["seq"]
        .as_u64()
        .unwrap()
}

/// Enrolls `host` with the genesis key of the journal under `state` at `url`; returns its token file.
fn enroll(state: &Path, url: &str, enroll_token: &str, host: &str) -> PathBuf {
    let key = auditloop_journal::keys::EpochKey::load(&state.join("keys/journal.key"))
        .unwrap()
        .expect("the journal key");
    let answer: serde_json::Value = reqwest::blocking::Client::new()
        .post(format!("{url}/v1/enroll"))
        .bearer_auth(enroll_token)
        .json(&serde_json::json!({
            "host_id": host,
            "genesis_public_key": hex::encode(key.genesis_public()),
        }))
        .send()
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .unwrap();
    let file = state.join("ship.token");
    std::fs::write(&file, answer["token"].as_str().unwrap()).unwrap();
    file
}

/// Ships every journal (fresh copies under `dir`) to `replicas` at once; returns stored events/s.
fn run(dir: &Path, journals: &[PathBuf], replicas: &[CollectorProcess]) -> (f64, Duration) {
    std::fs::create_dir_all(dir).unwrap();
    let urls: Vec<String> = replicas.iter().map(CollectorProcess::url).collect();
    let mut shippers = Vec::new();
    let mut states = Vec::new();
    for (h, journal) in journals.iter().enumerate() {
        let state = dir.join(format!("host{h}"));
        copy_tree(journal, &state);
        let host = format!("bench-{h}");
        let token = enroll(&state, &urls[0], &replicas[0].enroll_token, &host);
        let mut collectors = urls.clone();
        collectors.rotate_left(h % urls.len());
        states.push((state, host, token, collectors));
    }
    let start = Instant::now();
    for (state, host, token, collectors) in &states {
        let acked = RetentionFloor::acknowledged_up_to(0);
        let (tx, rx) = watch::channel(None);
        let settings = ShipSettings {
            collectors: collectors.clone(),
            token_file: token.clone(),
            host_id: host.clone(),
            ca_file: None,
            client_cert: None,
            batch_max_bytes: 1024 * 1024,
            batch_max_wait: Duration::from_millis(200),
            timeout: Duration::from_secs(60),
            insecure_http: false,
        };
        let cursor = ship::cursor::AckCursor::load(state).unwrap();
        let handle = ship::spawn(
            settings,
            state.join("journal"),
            cursor,
            acked.clone(),
            rx,
            auditloop::telemetry::Telemetry::default(),
            None,
        )
        .unwrap();
        shippers.push((head(state), acked, tx, handle));
    }
    while shippers
        .iter()
        .any(|(last, acked, _, _)| acked.acknowledged() < *last)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = start.elapsed();
    for (_, _, stop, handle) in shippers {
        stop.send_replace(Some(Instant::now()));
        handle.join().unwrap();
    }
    let events = HOSTS as f64 * EVENTS_PER_HOST as f64;
    (events / elapsed.as_secs_f64(), elapsed)
}

fn collector_bin() -> PathBuf {
    auditloop_testkit::bins::collector_bin()
        .expect("AUDITLOOP_COLLECTOR_BIN (run through `cargo xtask bench cluster`)")
}

/// `n` replicas on database `url`, sharing one token directory.
fn replicas(dir: &Path, url: &str, n: usize) -> Vec<CollectorProcess> {
    (0..n)
        .map(|_| {
            let mut spec = CollectorSpec::new(collector_bin(), dir);
            spec.db = Some(url.to_owned());
            CollectorProcess::start(&spec).unwrap()
        })
        .collect()
}

/// The bytes PostgreSQL keeps per stored record (table and indexes), and the payload bytes per record.
fn bytes_per_record(pg: &PgServer, db: &str) -> (f64, f64) {
    let out = pg
        .psql(
            db,
            "SELECT (SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits \
             WHERE inhparent = 'records'::regclass), (SELECT count(*) FROM records), \
             (SELECT sum(length(payload)) FROM records)",
        )
        .unwrap();
    let fields: Vec<f64> = out
        .split(|c: char| c == '|' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    (fields[0] / fields[1], fields[2] / fields[1])
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let journals = write_journals(&dir.path().join("journals"));
    let pg = PgServer::start(&dir.path().join("pg")).unwrap();
    let total = HOSTS as u64 * EVENTS_PER_HOST;
    println!("cluster ingest: {HOSTS} hosts x {EVENTS_PER_HOST} events shipped at once");

    let sqlite = CollectorProcess::start(&CollectorSpec::new(
        collector_bin(),
        &dir.path().join("sqlite"),
    ))
    .unwrap();
    let (rate, took) = run(&dir.path().join("run-sqlite"), &journals, &[sqlite]);
    println!(
        "  SQLite, 1 collector: {total} events in {:.2} s = {rate:.0} events/s",
        took.as_secs_f64()
    );

    // What the search indexes cost: the same run without the pid, path and address indexes.
    let setups: [(usize, &[&str]); 3] = [
        (1, &[]),
        (3, &[]),
        (
            1,
            &[
                "records_pid",
                "records_path",
                "records_local_addr",
                "records_remote_addr",
            ],
        ),
    ];
    for (i, (n, dropped)) in setups.into_iter().enumerate() {
        let db = format!("bench{i}");
        let url = pg.create_database(&db).unwrap();
        let collectors = replicas(&dir.path().join(format!("tokens{i}")), &url, n);
        for index in dropped {
            pg.psql(&db, &format!("DROP INDEX {index}")).unwrap();
        }
        let (rate, took) = run(
            &dir.path().join(format!("run-pg{i}")),
            &journals,
            &collectors,
        );
        let (bytes, payload) = bytes_per_record(&pg, &db);
        let without = if dropped.is_empty() {
            String::new()
        } else {
            format!(" without {}", dropped.join(", "))
        };
        println!(
            "  PostgreSQL, {n} replica(s){without}: {total} events in {:.2} s = {rate:.0} events/s; \
             {bytes:.0} bytes stored per record ({payload:.0} of them payload)",
            took.as_secs_f64()
        );
        drop(collectors);
    }
}
