//! The collector's connection and batch limits, against the real `auditloop-collector`: 2,000 idle
//! connections leave `/healthz` answering, connections mid-request are never cut to admit more, 50
//! concurrent zstd bombs leave it alive with bounded memory, trickled headers are cut at the header timeout,
//! HTTPS with a CA made here, and 429 with `Retry-After` beyond `--max-concurrent-batches`.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use auditloop_protocol::api::{ENROLL, batches_path};
use auditloop_protocol::batch::{Batch, CONTENT_TYPE_BINARY, MAX_DECODED};
use harness::collector::collector_bin;
use harness::tls::make_ca;
use harness::{remove_tree, temp_dir};

/// A collector started by [`start_collector`], killed when dropped.
struct Collector {
    /// `127.0.0.1:<port>`.
    addr: String,
    /// A host allowed to ship batches, and its token.
    host: String,
    host_token: String,
    child: Child,
    stderr: Arc<Mutex<String>>,
}

/// Starts `auditloop-collector` in `dir` with `extra` flags on a free loopback port, with a host that may
/// ship batches (enrolled over plain HTTP; a collector serving HTTPS has none); `Err` holds its exit status
/// and stderr if it did not start listening. The one place that knows the token flags.
fn start_collector(dir: &Path, extra: &[&str]) -> Result<Collector, String> {
    std::fs::write(dir.join("enroll.token"), "limits-enroll-token\n").expect("enroll token");
    std::fs::write(dir.join("admin.token"), "limits-admin-token\n").expect("admin token");
    let mut child = Command::new(collector_bin())
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--db")
        .arg(dir.join("collector.db"))
        .arg("--enroll-token-file")
        .arg(dir.join("enroll.token"))
        .arg("--admin-token-file")
        .arg(dir.join("admin.token"))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting auditloop-collector");
    let stderr = Arc::new(Mutex::new(String::new()));
    let reader = {
        let stderr = Arc::clone(&stderr);
        let pipe = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = stderr.lock().expect("stderr");
                text.push_str(&line);
                text.push('\n');
            }
        })
    };
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let Some(addr) = first.strip_prefix("listening on ") else {
        let _ = child.kill();
        let status = child.wait().expect("wait");
        let _ = reader.join();
        let stderr = stderr.lock().expect("stderr").clone();
        return Err(format!("{status}: {stderr}"));
    };
    std::thread::spawn(move || for _ in lines {});
    let addr = addr.trim().to_owned();
    let host = "limits-host".to_owned();
    let host_token = if extra.contains(&"--tls-cert") {
        String::new()
    } else {
        enroll(&addr, &host)
    };
    Ok(Collector {
        addr,
        host,
        host_token,
        child,
        stderr,
    })
}

/// Enrolls `host` (with any key: these tests never get past decoding) on the collector at `addr`; its
/// token.
fn enroll(addr: &str, host: &str) -> String {
    let body = format!(
        r#"{{"host_id":"{host}","genesis_public_key":"{}"}}"#,
        "11".repeat(32)
    );
    let request = format!(
        "POST {ENROLL} HTTP/1.1\r\nHost: collector\r\nAuthorization: Bearer limits-enroll-token\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = exchange(addr, request.as_bytes(), Duration::from_secs(10)).expect("enroll");
    assert_eq!(answer.status, 201, "{answer:?}");
    let answer: serde_json::Value = serde_json::from_str(&answer.body).expect("EnrollResponse");
    answer["token"].as_str().expect("token").to_owned()
}

impl Collector {
    fn start(dir: &Path, extra: &[&str]) -> Collector {
        start_collector(dir, extra).unwrap_or_else(|e| panic!("collector did not start: {e}"))
    }

    fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }

    /// Whether the process still runs.
    fn alive(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// A field of `/proc/<pid>/status`, in kB.
    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in {status}"))
    }

    /// The sockets the process holds open (the listener and its connections).
    fn sockets(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .expect("/proc/<pid>/fd")
            .filter_map(Result::ok)
            .filter(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
            })
            .count()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr").clone()
    }

    /// The head of a batch POST for the collector's host, announcing `len` body bytes.
    fn batch_head(&self, len: usize) -> Vec<u8> {
        format!(
            "POST {} HTTP/1.1\r\nHost: collector\r\nAuthorization: Bearer {}\r\n\
             Content-Type: {CONTENT_TYPE_BINARY}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n",
            batches_path(&self.host),
            self.host_token
        )
        .into_bytes()
    }

    /// A whole batch POST of `body`.
    fn batch_request(&self, body: &[u8]) -> Vec<u8> {
        let mut request = self.batch_head(body.len());
        request.extend_from_slice(body);
        request
    }

    /// `GET /healthz` on a new connection: the answer and how long it took.
    fn healthz(&self) -> (Answer, Duration) {
        let start = Instant::now();
        let answer = exchange(
            &self.addr,
            &get_request("/healthz"),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("GET /healthz: {e}\n{}", self.stderr()));
        (answer, start.elapsed())
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// The header block, lowercased.
    head: String,
    body: String,
}

fn get_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: collector\r\nConnection: close\r\n\r\n").into_bytes()
}

/// Reads an answer from `stream` until the server closes it.
fn read_answer(stream: &mut TcpStream) -> std::io::Result<Answer> {
    let mut bytes = Vec::new();
    let read = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        read?;
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("no HTTP answer: {text:?}"),
        ));
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidData, head.to_owned()))?;
    Ok(Answer {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    })
}

/// Sends `request` on a new connection to `addr` and reads the answer. A failed write (the server may
/// answer before reading a whole body) still reads what the server said.
fn exchange(addr: &str, request: &[u8], timeout: Duration) -> std::io::Result<Answer> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let written = stream.write_all(request);
    match read_answer(&mut stream) {
        Ok(answer) => Ok(answer),
        Err(e) => Err(written.err().unwrap_or(e)),
    }
}

/// Whether the peer closed `stream` (waiting at most 100 ms for a verdict).
fn closed_by_peer(mut stream: &TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// Waits until the peer closes `stream`; how long that took. Fails after `limit`.
fn wait_closed(stream: &TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if closed_by_peer(stream) {
            return start.elapsed();
        }
    }
    panic!("connection still open after {limit:?}");
}

/// Raises this process's open-file limit to at least `n` (its children inherit it).
fn raise_open_files(n: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(got, 0, "getrlimit: {}", std::io::Error::last_os_error());
    if limit.rlim_cur >= n {
        return;
    }
    limit.rlim_cur = n;
    limit.rlim_max = limit.rlim_max.max(n);
    // SAFETY: as above.
    let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(
        set,
        0,
        "setrlimit({n}): {}",
        std::io::Error::last_os_error()
    );
}

#[test]
fn two_thousand_idle_connections_leave_healthz_answering() {
    raise_open_files(8192);
    let dir = temp_dir("limits-idle");
    let mut collector = Collector::start(&dir, &[]);
    let idle: Vec<TcpStream> = (0..2000)
        .map(|i| {
            TcpStream::connect(&collector.addr).unwrap_or_else(|e| panic!("connection {i}: {e}"))
        })
        .collect();
    let (answer, took) = collector.healthz();
    assert_eq!((answer.status, answer.body.as_str()), (200, "ok"));
    assert!(
        took < Duration::from_secs(1),
        "/healthz took {took:?} with 2,000 idle connections"
    );
    // The cap (1,024 by default) holds: the listener, at most 1,024 connections, a few closing.
    let sockets = collector.sockets();
    eprintln!("/healthz answered in {took:?}; the collector holds {sockets} sockets");
    assert!(sockets <= 1024 + 16, "{sockets} sockets open");
    // Room was made by closing the connections idle longest, not the recent ones.
    let oldest_closed = idle.iter().take(100).filter(|s| closed_by_peer(s)).count();
    assert_eq!(
        oldest_closed, 100,
        "the longest idle connections are closed"
    );
    let newest_closed = idle
        .iter()
        .rev()
        .take(100)
        .filter(|s| closed_by_peer(s))
        .count();
    assert_eq!(newest_closed, 0, "the most recent connections stay open");
    assert!(collector.alive(), "{}", collector.stderr());
    drop(idle);
    drop(collector);
    remove_tree(&dir);
}

#[test]
fn connections_mid_request_are_never_cut_to_admit_more() {
    let dir = temp_dir("limits-busy");
    let collector = Collector::start(&dir, &["--max-connections", "4"]);
    // Four batches whose bodies are still arriving.
    let mut busy: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut stream = TcpStream::connect(&collector.addr).expect("connect");
            stream.write_all(&collector.batch_head(100)).expect("head");
            stream.write_all(&[0; 10]).expect("part of the body");
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // A fifth connection is closed at once.
    let newcomer = TcpStream::connect(&collector.addr).expect("connect");
    let took = wait_closed(&newcomer, Duration::from_secs(3));
    assert!(took < Duration::from_millis(900), "closed after {took:?}");
    // The four finish undisturbed: each gets the answer to its (garbled) batch.
    for stream in &mut busy {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream.write_all(&[0; 90]).expect("rest of the body");
        let answer = read_answer(stream).expect("answer");
        assert_eq!(answer.status, 400, "{answer:?}");
        assert!(answer.body.contains("zstd"), "{answer:?}");
    }
    let (answer, _) = collector.healthz();
    assert_eq!(answer.status, 200);
    drop(collector);
    remove_tree(&dir);
}

/// zstd bombs: small bodies whose content is 64 MiB or more, each refused in its own way.
fn bombs() -> Vec<(&'static str, Vec<u8>)> {
    let compress = |raw: &[u8]| zstd::bulk::compress(raw, 3).expect("zstd");
    // The bincode envelope of a batch 1..=1 without anchor up to its frames' length prefix (bincode's
    // varint: 253 then a u64).
    let claiming = |len: u64| {
        let mut raw = vec![1, 1, 0, 253];
        raw.extend_from_slice(&len.to_le_bytes());
        raw
    };
    let zeros = compress(&vec![0; MAX_DECODED + (1 << 20)]);
    let mut huge_claim = claiming(1 << 40);
    huge_claim.resize(MAX_DECODED - 1024, 0);
    let mut short_claim = claiming(MAX_DECODED as u64 - 64);
    short_claim.resize(1 << 20, 0);
    let mut ladder = vec![1, 1, 1, 32];
    ladder.extend_from_slice(&[7; 32]);
    ladder.extend_from_slice(&[0, 32]);
    ladder.extend_from_slice(&[9; 32]);
    ladder.push(253);
    ladder.extend_from_slice(&(1u64 << 50).to_le_bytes());
    ladder.resize(MAX_DECODED - 1024, 0);
    let full = Batch {
        first_seq: 1,
        last_seq: 1,
        anchor: None,
        frames: vec![0xab; MAX_DECODED - 1024],
    }
    .encode_binary(3)
    .expect("encode");
    vec![
        ("zeros past the limit", zeros),
        ("frames claiming 2^40 bytes", compress(&huge_claim)),
        (
            "frames claiming 64 MiB, 1 MiB there",
            compress(&short_claim),
        ),
        ("a ladder claiming 2^50 links", compress(&ladder)),
        ("64 MiB of garbage frames", full),
    ]
}

/// The high-water mark of the collector's resident memory under the bombs, measured on the debug build
/// with `--max-concurrent-batches 8` (docs/collector.md gives the measurement): well under 1 GiB.
const BOMB_RSS_BOUND_KIB: u64 = 1024 * 1024;

#[test]
fn fifty_concurrent_zstd_bombs_leave_the_collector_alive_with_bounded_memory() {
    let dir = temp_dir("limits-bombs");
    let mut collector = Collector::start(&dir, &["--max-concurrent-batches", "8"]);
    let bombs = bombs();
    for (name, body) in &bombs {
        assert!(
            body.len() < 1 << 20,
            "{name}: {} bytes compressed",
            body.len()
        );
    }
    let requests: Vec<(&str, Arc<Vec<u8>>)> = bombs
        .iter()
        .map(|(name, body)| (*name, Arc::new(collector.batch_request(body))))
        .collect();
    let start_rss = collector.status_kib("VmRSS:");
    let barrier = Arc::new(Barrier::new(50));
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let (name, request) = requests[i % requests.len()].clone();
            let barrier = Arc::clone(&barrier);
            let addr = collector.addr.clone();
            std::thread::spawn(move || {
                barrier.wait();
                (name, exchange(&addr, &request, Duration::from_secs(120)))
            })
        })
        .collect();
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for thread in threads {
        let (name, outcome) = thread.join().expect("client thread");
        let key = match outcome {
            Ok(answer) => {
                let status = answer.status;
                assert!(
                    (200..300).contains(&status) || (400..500).contains(&status) || status == 503,
                    "{name}: {answer:?}"
                );
                if status == 429 {
                    assert!(answer.head.contains("retry-after: 1"), "{answer:?}");
                }
                format!("{name}: {status}")
            }
            Err(e) => format!("{name}: {}", e.kind()),
        };
        *outcomes.entry(key).or_default() += 1;
    }
    // A reset or refused connection only counts against the collector if it died.
    assert!(
        collector.alive(),
        "collector died: {outcomes:?}\n{}",
        collector.stderr()
    );
    let (answer, _) = collector.healthz();
    assert_eq!(answer.status, 200);
    let hwm = collector.status_kib("VmHWM:");
    eprintln!("bombs: {outcomes:?}; RSS at start {start_rss} kB, high-water mark {hwm} kB");
    assert!(
        hwm < BOMB_RSS_BOUND_KIB,
        "RSS high-water mark {hwm} kB (bound {BOMB_RSS_BOUND_KIB} kB): {outcomes:?}"
    );
    drop(collector);
    remove_tree(&dir);
}

#[test]
fn trickled_headers_are_cut_at_the_header_timeout() {
    let dir = temp_dir("limits-slowloris");
    let collector = Collector::start(
        &dir,
        &["--header-read-timeout", "2s", "--idle-timeout", "6s"],
    );
    let mut idle = TcpStream::connect(&collector.addr).expect("connect");
    let mut slow = TcpStream::connect(&collector.addr).expect("connect");
    let start = Instant::now();
    let request = b"GET /healthz HTTP/1.1\r\nHost: collector\r\nX-Slow: ";
    let mut cut = None;
    for byte in request.iter().chain([b'a'; 100].iter()) {
        if slow.write_all(&[*byte]).is_err() || closed_by_peer(&slow) {
            cut = Some(start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let cut = cut.expect("the trickling connection was never closed");
    assert!(
        cut >= Duration::from_millis(1800) && cut < Duration::from_secs(4),
        "cut after {cut:?} (header timeout 2 s)"
    );
    // A connection that sent nothing is idle, not slow: after the header timeout it is still served.
    idle.write_all(&get_request("/healthz")).expect("request");
    idle.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let answer = read_answer(&mut idle).expect("answer on the idle connection");
    assert_eq!((answer.status, answer.body.as_str()), (200, "ok"));
    drop(collector);
    remove_tree(&dir);
}

fn https_client(ca_pem: &str) -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA pem");
    reqwest::blocking::Client::builder()
        .tls_certs_only([ca])
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

#[test]
fn https_with_a_ca_made_here_and_clear_errors_for_bad_files() {
    let dir = temp_dir("limits-tls");
    let (ca_pem, cert, key) = make_ca(&dir, "server");
    let (other_ca, _, other_key) = make_ca(&dir, "other");
    let path = |p: &Path| p.to_str().expect("utf-8").to_owned();
    let mut collector = Collector::start(
        &dir,
        &[
            "--tls-cert",
            &path(&cert),
            "--tls-key",
            &path(&key),
            "--tls-handshake-timeout",
            "1s",
        ],
    );
    let port = collector.port();
    for url in [
        format!("https://127.0.0.1:{port}/healthz"),
        format!("https://localhost:{port}/healthz"),
    ] {
        let response = https_client(&ca_pem)
            .get(&url)
            .send()
            .unwrap_or_else(|e| panic!("{url}: {e:?}\n{}", collector.stderr()));
        assert_eq!(response.status().as_u16(), 200, "{url}");
        assert_eq!(response.text().expect("body"), "ok");
    }
    // A client trusting another CA refuses the server.
    let err = https_client(&other_ca)
        .get(format!("https://127.0.0.1:{port}/healthz"))
        .send()
        .expect_err("a server certificate from an untrusted CA");
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");
    // Plain HTTP to the HTTPS port gets no answer.
    let plain = exchange(
        &collector.addr,
        &get_request("/healthz"),
        Duration::from_secs(5),
    );
    assert!(
        plain.as_ref().is_err() || plain.as_ref().is_ok_and(|a| a.status != 200),
        "{plain:?}"
    );
    // A client that never starts its handshake is closed at the handshake timeout.
    let stalled = TcpStream::connect(&collector.addr).expect("connect");
    let took = wait_closed(&stalled, Duration::from_secs(5));
    assert!(took >= Duration::from_millis(800), "closed after {took:?}");
    assert!(collector.alive(), "{}", collector.stderr());
    drop(collector);

    // Bad files: the collector does not start, and says which file and why.
    let missing = dir.join("missing.crt");
    let garbage = dir.join("garbage.key");
    std::fs::write(&garbage, "not a key\n").expect("garbage");
    for (cert_file, key_file, says) in [
        (&missing, &key, vec![path(&missing)]),
        (
            &cert,
            &garbage,
            vec![path(&garbage), "not a PEM private key".into()],
        ),
        (&cert, &other_key, vec![path(&cert), path(&other_key)]),
    ] {
        let err = match start_collector(
            &dir,
            &["--tls-cert", &path(cert_file), "--tls-key", &path(key_file)],
        ) {
            Ok(_) => panic!("started with {cert_file:?} and {key_file:?}"),
            Err(e) => e,
        };
        for text in says {
            assert!(err.contains(&text), "{text:?} not in {err}");
        }
    }
    remove_tree(&dir);
}

#[test]
fn batches_beyond_the_bound_get_429_with_retry_after() {
    let dir = temp_dir("limits-429");
    let collector = Collector::start(&dir, &["--max-concurrent-batches", "1"]);
    let small = Batch {
        first_seq: 1,
        last_seq: 1,
        anchor: None,
        frames: vec![1; 64],
    }
    .encode_binary(3)
    .expect("encode");
    // A batch whose body is still arriving holds the one place.
    let mut holder = TcpStream::connect(&collector.addr).expect("connect");
    holder
        .write_all(&collector.batch_head(small.len() + 100))
        .expect("head");
    holder.write_all(&small[..10]).expect("part of the body");
    std::thread::sleep(Duration::from_millis(300));
    let request = collector.batch_request(&small);
    let answer = exchange(&collector.addr, &request, Duration::from_secs(10)).expect("answer");
    assert_eq!(answer.status, 429, "{answer:?}");
    assert!(
        answer.head.contains("\r\nretry-after: 1\r\n")
            || answer.head.ends_with("\r\nretry-after: 1"),
        "{answer:?}"
    );
    let body: serde_json::Value = serde_json::from_str(&answer.body).expect("ErrorBody");
    assert_eq!(
        body["error"], "1 batches are in progress already; retry",
        "{body}"
    );
    // The holder finishes and gets its own answer; then the place is free again.
    holder.write_all(&small[10..]).expect("rest");
    holder.write_all(&[0; 100]).expect("rest");
    holder
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let held = read_answer(&mut holder).expect("answer");
    assert_ne!(held.status, 429, "{held:?}");
    let again = exchange(&collector.addr, &request, Duration::from_secs(10)).expect("answer");
    assert_ne!(again.status, 429, "{again:?}");
    assert!((400..500).contains(&again.status), "{again:?}");
    drop(collector);
    remove_tree(&dir);
}
