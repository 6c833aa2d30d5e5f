//! `cargo xtask cluster`: a local collector cluster, as several replicas behind one PostgreSQL run in
//! production: builds the release collector, starts PostgreSQL on the cluster in `DIR/pg` (kept between
//! runs, like its database `auditloop`), starts N replicas on consecutive loopback ports sharing that
//! database and the admin and enrollment tokens in `DIR`, prints what an agent needs to ship to them, and
//! stops everything on Ctrl-C (replicas first, then PostgreSQL).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};
use auditloop_testkit::{CollectorProcess, CollectorSpec, PgServer};

use crate::cmd;
use crate::setup;

/// The database the replicas share.
const DATABASE: &str = "auditloop";
/// Where the printed commands put a host's own token (`auditloop enroll --token-out`).
const HOST_TOKEN: &str = "/var/lib/auditloop/host.token";

/// Options of `cargo xtask cluster`.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// How many collector replicas to start.
    #[arg(long, default_value_t = 3)]
    replicas: u16,
    /// Port of the first replica; the others listen on the next ports.
    #[arg(long, default_value_t = 8441)]
    base_port: u16,
    /// Directory for the tokens and PostgreSQL's cluster (`pg/`) [default: <target>/cluster].
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Set by SIGINT or SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Runs the cluster until Ctrl-C.
pub fn cluster(args: &ClusterArgs) -> anyhow::Result<ExitCode> {
    ensure!(args.replicas >= 1, "--replicas must be at least 1");
    let ports = replica_ports(args.base_port, args.replicas)?;
    setup::ensure_packages(setup::POSTGRES_PACKAGES)?;
    cmd::run(cmd::cargo().args(["build", "--release", "-p", "auditloop-collector"]))?;
    let target = cmd::target_dir()?;
    let bin = target.join("release/auditloop-collector");
    let dir = args.dir.clone().unwrap_or_else(|| target.join("cluster"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    // Installed before anything starts, so a Ctrl-C during the start still stops what has started.
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(signal, on_stop_signal as *const () as libc::sighandler_t) };
    }
    let mut pg = PgServer::start(&dir.join("pg"))
        .with_context(|| format!("starting PostgreSQL in {}", dir.join("pg").display()))?;
    let db = pg.ensure_database(DATABASE)?;
    eprintln!(
        "xtask: PostgreSQL on 127.0.0.1:{} (cluster in {}), database {db}",
        pg.port(),
        pg.dir().display()
    );
    let mut replicas = Vec::new();
    for port in &ports {
        let spec = CollectorSpec {
            listen: format!("127.0.0.1:{port}"),
            db: Some(db.clone()),
            ..CollectorSpec::new(bin.clone(), &dir)
        };
        let replica = CollectorProcess::start(&spec).with_context(|| {
            format!(
                "starting replica {} on 127.0.0.1:{port} with --db {db} (is the port in use? does this \
                 collector support --db postgres://?)",
                replicas.len() + 1
            )
        })?;
        replicas.push(replica);
    }
    let urls: Vec<String> = replicas.iter().map(CollectorProcess::url).collect();
    print_guide(&urls, &dir);
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "xtask: stopping {} replica(s), then PostgreSQL",
        replicas.len()
    );
    for replica in &mut replicas {
        replica.stop();
    }
    pg.stop();
    Ok(ExitCode::SUCCESS)
}

/// `base`, `base + 1`, ... for `n` replicas; an error when they pass 65535.
fn replica_ports(base: u16, n: u16) -> anyhow::Result<Vec<u16>> {
    (0..n)
        .map(|i| {
            base.checked_add(i)
                .with_context(|| format!("--base-port {base} leaves no room for {n} replicas"))
        })
        .collect()
}

/// Prints the replicas, the token files and how an agent enrolls and ships to them.
fn print_guide(urls: &[String], dir: &Path) {
    let admin = dir.join("admin.token");
    let enroll = dir.join("enroll.token");
    let first = urls.first().map_or("", String::as_str);
    println!("replicas:");
    for url in urls {
        println!("  {url}");
    }
    println!("admin token file:      {}", admin.display());
    println!("enrollment token file: {}", enroll.display());
    println!("enroll a host (once):");
    println!(
        "  auditloop enroll --collector {first} --enroll-token-file {} --token-out {HOST_TOKEN}",
        enroll.display()
    );
    println!("agent config (/etc/auditloop/config.yaml):");
    print!("{}", agent_snippet(urls));
    println!("console: {first}/ (log in with the admin token); Ctrl-C stops the cluster.");
}

/// The `ship:` section of an agent config shipping to `urls` with failover.
fn agent_snippet(urls: &[String]) -> String {
    format!(
        "ship:\n  collector: [{}]\n  token_file: {HOST_TOKEN}\n",
        urls.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_listen_on_consecutive_ports() {
        assert_eq!(replica_ports(8441, 3).unwrap(), vec![8441, 8442, 8443]);
        assert_eq!(replica_ports(65535, 1).unwrap(), vec![65535]);
        assert!(replica_ports(65535, 2).is_err());
    }

    #[test]
    fn the_agent_snippet_lists_every_replica() {
        let urls = [
            "http://127.0.0.1:8441".to_owned(),
            "http://127.0.0.1:8442".to_owned(),
        ];
        assert_eq!(
            agent_snippet(&urls),
            "ship:\n  collector: [http://127.0.0.1:8441, http://127.0.0.1:8442]\n  \
             token_file: /var/lib/auditloop/host.token\n"
        );
    }
}
