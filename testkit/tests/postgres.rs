//! The PostgreSQL helper against the real server: start, databases, restarts on the same port, and the
//! shared server's cleanup when its process exits. As root the server runs as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use auditloop_testkit::PgServer;

/// Set in the child process of [`the_shared_server_stops_when_its_process_exits`].
const SHARED_CHILD: &str = "AUDITLOOP_TESTKIT_SHARED_CHILD";

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("testkit-pg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Whether process `pid` runs (a zombie does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        !s.lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
    })
}

#[test]
fn a_server_keeps_its_data_and_port_across_restarts() {
    let dir = scratch("restart");
    let mut pg = PgServer::start(&dir).unwrap();
    let port = pg.port();
    let url = pg.create_database("restart").unwrap();
    assert_eq!(url, format!("postgres://postgres@127.0.0.1:{port}/restart"));
    assert!(dir.join("data/PG_VERSION").is_file());
    assert!(dir.join("postgres.log").is_file());
    let pid = pg.pid().unwrap();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert!(!uid.split_whitespace().skip(1).any(|id| id == "0"), "{uid}");
    }
    pg.psql(
        "restart",
        "CREATE TABLE t (n int); INSERT INTO t VALUES (1)",
    )
    .unwrap();

    // An immediate stop loses nothing committed; clients come back to the same URL.
    pg.stop_immediately();
    assert_eq!(pg.pid(), None);
    assert!(!alive(pid));
    assert!(pg.psql("restart", "SELECT 1").is_err());
    pg.start_again().unwrap();
    assert_eq!(pg.port(), port);
    assert_eq!(pg.url("restart"), url);
    assert_eq!(
        pg.psql("restart", "SELECT count(*) FROM t").unwrap().trim(),
        "1"
    );

    pg.stop();
    pg.start_again().unwrap();
    pg.psql("restart", "INSERT INTO t VALUES (2)").unwrap();
    // Restarting a running server stops it first.
    pg.start_again().unwrap();
    assert_eq!(
        pg.psql("restart", "SELECT sum(n) FROM t").unwrap().trim(),
        "3"
    );

    // Creating twice is an error; ensuring is not.
    let twice = pg.create_database("restart").unwrap_err().to_string();
    assert!(twice.contains("already exists"), "{twice}");
    assert_eq!(pg.ensure_database("restart").unwrap(), url);
    let other = pg.ensure_database("other").unwrap();
    assert_eq!(
        pg.psql("other", "SELECT current_database()")
            .unwrap()
            .trim(),
        "other"
    );
    assert!(other.ends_with("/other"));
    assert!(pg.create_database("Bad-Name").is_err());

    // Dropping stops it; a new server on the directory finds the cluster and its data.
    let pid = pg.pid().unwrap();
    drop(pg);
    assert!(!alive(pid));
    let pg = PgServer::start(&dir).unwrap();
    assert_eq!(
        pg.psql("restart", "SELECT sum(n) FROM t").unwrap().trim(),
        "3"
    );
    drop(pg);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_server_left_running_by_a_killed_process_is_taken_over() {
    let dir = scratch("stale");
    let first = PgServer::start(&dir).unwrap();
    let stale = first.pid().unwrap();
    // Forget it without stopping it, as a killed process would (its exit watcher is gone too: the
    // watcher only acts when the pipe closes, which `forget` prevents).
    first.psql("postgres", "SELECT 1").unwrap();
    std::mem::forget(first);
    let second = PgServer::start(&dir).unwrap();
    assert!(!alive(stale));
    second.psql("postgres", "SELECT 1").unwrap();
    drop(second);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_shared_server_gives_each_test_a_database_of_its_own() {
    let one = PgServer::shared().unwrap();
    let two = PgServer::shared().unwrap();
    assert!(std::ptr::eq(one, two));
    let a = one.fresh_database().unwrap();
    let b = one.fresh_database().unwrap();
    assert_ne!(a, b);
    let name = b.rsplit('/').next().unwrap();
    assert_eq!(
        one.psql(name, "SELECT current_database()").unwrap().trim(),
        name
    );
}

/// The child process of [`the_shared_server_stops_when_its_process_exits`]: starts the shared server,
/// prints its postmaster's pid and directory, and exits without stopping it.
#[test]
#[ignore = "run by the_shared_server_stops_when_its_process_exits"]
fn shared_server_child() {
    if std::env::var_os(SHARED_CHILD).is_none() {
        return;
    }
    let pg = PgServer::shared().unwrap();
    pg.fresh_database().unwrap();
    println!("shared-server {} {}", pg.pid().unwrap(), pg.dir().display());
}

#[test]
fn the_shared_server_stops_when_its_process_exits() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "shared_server_child", "--ignored", "--nocapture"])
        .env(SHARED_CHILD, "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        // The harness may print `test shared_server_child ... ` on the same line first.
        .find_map(|l| l.split_once("shared-server ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no pid in {stdout}"));
    let (pid, dir) = line.split_once(' ').unwrap();
    let dir = dir.split_whitespace().next().unwrap_or(dir);
    let pid: u32 = pid.parse().unwrap();
    let dir = Path::new(dir);
    let deadline = Instant::now() + Duration::from_secs(30);
    while (alive(pid) || dir.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !alive(pid),
        "postmaster {pid} still runs after its test process exited"
    );
    assert!(!dir.exists(), "{} is still there", dir.display());
}

#[test]
fn a_server_starts_inside_a_private_temporary_directory() {
    // As `tempfile::tempdir()` makes them: mode 0700, owned by the caller.
    let private = std::env::temp_dir().join(format!("testkit-pg-private-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let pg = PgServer::start(&private.join("pg")).unwrap();
    pg.psql("postgres", "SELECT 1").unwrap();
    drop(pg);
    std::fs::remove_dir_all(&private).unwrap();
}
