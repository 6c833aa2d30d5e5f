//! Cross-host lineage at a real collector: two agents with their own host ids and state dirs on this
//! machine, each blind to the other's program (`capture.ignore.comms`), so host A records only the client
//! and host B only the server. A connection from A's client to B's listener on loopback is joined at the
//! collector, and the lineage of the process B's server spawned after accepting it names A's client; a
//! connection from a program neither host records stays unmatched.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use harness::collector::{Collector, free_port};
use harness::{Agent, remove_tree, require_root, temp_dir};
use serde_json::Value;

/// The server: accepts `n` connections on 127.0.0.1:`port`; after each, forks a child that runs
/// `/bin/true <marker>-<i>`, then prints `<peer port> <child pid>` and waits for the peer to close.
const SERVER: &str = r#"
import os, socket, sys
port, n, marker = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(8)
print("listening", flush=True)
for i in range(n):
    c, peer = s.accept()
    pid = os.fork()
    if pid == 0:
        os.execv("/bin/true", ["/bin/true", f"{marker}-{i}"])
    os.waitpid(pid, 0)
    print(f"{peer[1]} {pid}", flush=True)
    c.recv(1)
    c.close()
"#;

/// The client: connects to 127.0.0.1:`port`, prints its own port, stays connected a second.
const CLIENT: &str = r#"
import socket, sys, time
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print(c.getsockname()[1], flush=True)
time.sleep(1.0)
c.close()
"#;

/// A program this test started; killed when dropped.
struct Program {
    child: Child,
    lines: Receiver<String>,
}

impl Program {
    /// Runs the interpreter at `path` on `script` with `args`.
    fn start(path: &Path, script: &str, args: &[&str]) -> Program {
        let mut child = Command::new(path)
            .arg("-c")
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", path.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Program { child, lines }
    }

    /// The next line it prints; fails the test when it ends first or prints nothing for 30 s.
    fn line(&mut self) -> String {
        match self.lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(e) => panic!(
                "program {} printed no line ({e}); status {:?}",
                self.child.id(),
                self.child.try_wait()
            ),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for it to exit successfully.
    fn finish(mut self) {
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "program {} failed: {status}", self.pid());
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A copy of the Python interpreter at `dir/name`: a program whose task name is `name` (at most 15 bytes).
fn interpreter(dir: &Path, name: &str) -> PathBuf {
    assert!(name.len() <= 15, "task names are at most 15 bytes: {name}");
    let python = std::fs::canonicalize("/usr/bin/python3")
        .expect("this test needs /usr/bin/python3 (a copy of it is the test's client and server)");
    let path = dir.join(name);
    std::fs::copy(&python, &path).expect("copy the interpreter");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::canonicalize(&path).expect("canonical path")
}

/// Starts an agent shipping `state` to `collector` as `host`, blind to the programs named `ignore`.
fn agent(collector: &Collector, host: &str, state: &Path, ignore: &[&str]) -> Agent {
    let token = collector.enroll(host, state);
    let config = format!(
        "capture:\n  ignore:\n    comms: [{}]\nship:\n  collector: {}\n  token_file: {}\n  host_id: {host}\n  batch_max_ms: 20\n",
        ignore.join(", "),
        collector.url(),
        token.display()
    );
    Agent::start_with_config(&config, &["--state-dir", state.to_str().expect("utf-8")])
}

/// Waits until the collector serves (verified) exactly one event for `query`; returns it.
fn verified_event(collector: &Collector, query: &str, what: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = collector.get(&format!("/v1/events?{query}"));
        let events = page["events"].as_array().cloned().unwrap_or_default();
        match events.as_slice() {
            [one] => {
                assert_eq!(one["verified"], true, "{what}: {one}");
                return one.clone();
            }
            [] => {}
            many => panic!("{what}: more than one event for {query}: {many:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "{what}: no verified event for {query} at the collector within 60 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The one arrival of `answer`'s lineage at `depth`.
fn at_depth(answer: &Value, depth: u64) -> &Value {
    let arrivals = answer["lineage"]["arrivals"].as_array().expect("arrivals");
    let at: Vec<&Value> = arrivals
        .iter()
        .filter(|a| a["depth"].as_u64() == Some(depth))
        .collect();
    assert_eq!(at.len(), 1, "one arrival at depth {depth}: {answer}");
    at[0]
}

#[test]
fn a_connection_between_two_hosts_is_joined_and_names_the_client() {
    require_root();
    let dir = temp_dir("lineage");
    let collector = Collector::start(&dir.join("collector"), 0);
    let tag = std::process::id() % 10_000;
    let (srv, cli, ghost) = (
        format!("lsrv{tag}"),
        format!("lcli{tag}"),
        format!("lgho{tag}"),
    );
    let (srv_path, cli_path, ghost_path) = (
        interpreter(&dir, &srv),
        interpreter(&dir, &cli),
        interpreter(&dir, &ghost),
    );
    // Host A sees the client only, host B the server only; neither sees the ghost client.
    let agent_a = agent(&collector, "host-a", &dir.join("a"), &[&srv, &ghost]);
    let agent_b = agent(&collector, "host-b", &dir.join("b"), &[&cli, &ghost]);

    let port = free_port();
    let marker = harness::marker("lineage");
    let mut server = Program::start(&srv_path, SERVER, &[&port.to_string(), "2", &marker]);
    assert_eq!(server.line(), "listening");
    let mut client = Program::start(&cli_path, CLIENT, &[&port.to_string()]);
    let client_port: u16 = client.line().parse().expect("client port");
    let first = server.line();
    assert!(first.starts_with(&format!("{client_port} ")), "{first}");
    let client_pid = client.pid();
    client.finish();
    let mut unseen = Program::start(&ghost_path, CLIENT, &[&port.to_string()]);
    let ghost_port: u16 = unseen.line().parse().expect("ghost port");
    let second = server.line();
    assert!(second.starts_with(&format!("{ghost_port} ")), "{second}");
    unseen.finish();
    server.finish();

    // Both hosts' records of the connection, verified at the collector.
    let connect = verified_event(
        &collector,
        &format!("host=host-a&kind=net&local_port={client_port}&remote_port={port}"),
        "A's connect",
    );
    assert_eq!(connect["event"]["process"]["pid"], client_pid, "{connect}");
    let accept = verified_event(
        &collector,
        &format!("host=host-b&kind=net&local_port={port}&remote_port={client_port}"),
        "B's accept",
    );
    assert_eq!(accept["event"]["event"]["net"]["op"], "accept", "{accept}");
    let child = verified_event(
        &collector,
        &format!("host=host-b&kind=exec&q={marker}-0"),
        "the child B's server ran after the accept",
    );
    let unseen_child = verified_event(
        &collector,
        &format!("host=host-b&kind=exec&q={marker}-1"),
        "the child B's server ran for the ghost",
    );
    // Neither host recorded the ghost's connect.
    let ghost_connects = collector.get(&format!(
        "/v1/events?kind=net&local_port={ghost_port}&pending=true"
    ));
    assert_eq!(
        ghost_connects["events"].as_array().map(Vec::len),
        Some(0),
        "{ghost_connects}"
    );

    // The lineage of the child names A's client as where it came from.
    let answer = collector.get(&format!("/v1/lineage?host=host-b&seq={}", child["seq"]));
    let lineage = &answer["lineage"];
    let true_exe = std::fs::canonicalize("/bin/true").expect("/bin/true");
    assert_eq!(
        lineage["process"]["exe"],
        true_exe.to_str().expect("utf-8"),
        "{answer}"
    );
    let server_pid = accept["event"]["process"]["pid"].clone();
    assert_eq!(lineage["ancestors"][0]["pid"], server_pid, "{answer}");
    assert_eq!(
        lineage["ancestors"][0]["exe"],
        srv_path.to_str().expect("utf-8"),
        "{answer}"
    );
    // The server accepted (depth 1). The harness process above it may have accepted connections of other
    // tests running beside this one: those arrive at depth 2 and beyond.
    let arrival = at_depth(&answer, 1);
    assert_eq!(arrival["via"], "tcp", "{answer}");
    assert_eq!(arrival["accept_seq"], accept["seq"], "{answer}");
    assert_eq!(arrival["join"]["status"], "matched", "{answer}");
    let origin = &arrival["join"]["origin"];
    assert_eq!(origin["connect"]["host"], "host-a", "{answer}");
    assert_eq!(origin["connect"]["seq"], connect["seq"], "{answer}");
    assert_eq!(origin["connect"]["pid"], client_pid, "{answer}");
    assert_eq!(origin["connect"]["comm"], cli.as_str(), "{answer}");
    assert_eq!(
        origin["connect"]["exe"],
        cli_path.to_str().expect("utf-8"),
        "{answer}"
    );
    assert_eq!(origin["lineage"]["host"], "host-a", "{answer}");
    assert_eq!(origin["lineage"]["process"]["pid"], client_pid, "{answer}");

    // The accept itself arrived over the same connection.
    let answer = collector.get(&format!("/v1/lineage?host=host-b&seq={}", accept["seq"]));
    let arrival = at_depth(&answer, 0);
    assert_eq!(
        arrival["join"]["origin"]["connect"]["seq"], connect["seq"],
        "{answer}"
    );

    // A connection no host recorded the other end of: unmatched, with the reason.
    let answer = collector.get(&format!(
        "/v1/lineage?host=host-b&seq={}",
        unseen_child["seq"]
    ));
    let arrival = at_depth(&answer, 1);
    assert_eq!(arrival["earlier_accepts"], 1, "{answer}");
    assert_eq!(
        arrival["remote"]["port"], ghost_port,
        "the ghost's connection: {answer}"
    );
    assert_eq!(arrival["join"]["status"], "unmatched", "{answer}");
    assert_eq!(arrival["join"]["reason"], "no_connect", "{answer}");

    drop(agent_a);
    drop(agent_b);
    drop(collector);
    remove_tree(&dir);
}
