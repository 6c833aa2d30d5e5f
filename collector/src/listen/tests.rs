//! The listener against real sockets: the client's address reaches handlers over TCP and TLS, timeouts
//! close idle and slow connections, a full listener makes room by closing its longest idle connection, and
//! shutdown waits for requests in progress.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio_rustls::TlsConnector;

use super::{ListenOptions, Timeouts, load_acceptor, serve};

/// `/peer` answers the client's address; `/wait` answers once `release` is notified.
fn app(release: Arc<Notify>) -> Router {
    Router::new()
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
        .route(
            "/wait",
            get(move || async move {
                release.notified().await;
                "released"
            }),
        )
}

/// A listener serving [`app`] with `options` until the returned sender fires.
struct Server {
    addr: SocketAddr,
    release: Arc<Notify>,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

async fn start(options: ListenOptions) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let release = Arc::new(Notify::new());
    let (stop, stopped) = oneshot::channel();
    let done = tokio::spawn(serve(listener, options, app(Arc::clone(&release)), async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        release,
        stop: Some(stop),
        done,
    }
}

fn options(timeouts: Timeouts, max_connections: usize) -> ListenOptions {
    ListenOptions {
        tls: None,
        max_connections,
        timeouts,
    }
}

fn quick() -> Timeouts {
    Timeouts {
        header_read: Duration::from_millis(600),
        idle: Duration::from_millis(1500),
        tls_handshake: Duration::from_millis(600),
    }
}

/// Sends a GET of `path` on `io` (keep-alive) and returns the answer's body.
async fn get_on<I: AsyncRead + AsyncWrite + Unpin>(io: &mut I, path: &str) -> String {
    io.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), io.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(
            n > 0,
            "closed before answering: {:?}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|v| v.trim().parse().ok())
                .expect("content-length");
            if body.len() >= length {
                return body.to_owned();
            }
        }
    }
}

/// Waits until the peer closes `io`; returns how long that took. Fails after `limit`.
async fn closed_within<I: AsyncRead + Unpin>(io: &mut I, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(limit, io.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("still open after {limit:?}"),
        }
    }
}

/// Whether the peer has closed `tcp` (without waiting).
async fn is_closed(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_millis(50), tcp.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn handlers_see_the_client_address_over_tcp() {
    let server = start(ListenOptions::default()).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    assert_eq!(get_on(&mut tcp, "/peer").await, local.to_string());
    // Keep-alive: a second request on the same connection.
    assert_eq!(get_on(&mut tcp, "/peer").await, local.to_string());
}

#[tokio::test]
async fn handlers_see_the_client_address_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, ca.cert.pem()).unwrap();
    std::fs::write(&key, ca.signing_key.serialize_pem()).unwrap();
    let server = start(ListenOptions {
        tls: Some(load_acceptor(&cert, &key).unwrap()),
        ..ListenOptions::default()
    })
    .await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(get_on(&mut tls, "/peer").await, local.to_string());
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, ca.cert.pem()).unwrap();
    std::fs::write(&key, ca.signing_key.serialize_pem()).unwrap();
    let server = start(ListenOptions {
        tls: Some(load_acceptor(&cert, &key).unwrap()),
        ..options(quick(), 8)
    })
    .await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let took = closed_within(&mut tcp, Duration::from_secs(5)).await;
    assert!(took >= Duration::from_millis(500), "{took:?}");
}

#[tokio::test]
async fn trickled_headers_are_cut_at_the_header_timeout_but_idle_waits_longer() {
    let server = start(options(quick(), 8)).await;
    // Idle past the header timeout: still served.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(!get_on(&mut idle, "/peer").await.is_empty());
    let answered = Instant::now();
    // Headers a byte at a time: cut at the header timeout, counted from the first byte.
    let start = Instant::now();
    let request = b"GET /peer HTTP/1.1\r\nHost: t\r\nX-Slow: ";
    let mut cut = None;
    for byte in request
        .iter()
        .chain(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter())
    {
        if slow.write_all(&[*byte]).await.is_err() || is_closed(&mut slow).await {
            cut = Some(start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cut = cut.expect("the trickling connection was never closed");
    assert!(
        cut >= Duration::from_millis(500) && cut < Duration::from_millis(1400),
        "{cut:?}"
    );
    // The idle one goes once idle for the idle timeout after its answer.
    closed_within(&mut idle, Duration::from_secs(5)).await;
    let idle_for = answered.elapsed();
    assert!(
        idle_for >= Duration::from_millis(1400) && idle_for < Duration::from_secs(3),
        "{idle_for:?}"
    );
}

#[tokio::test]
async fn a_full_listener_closes_its_longest_idle_connection_not_busy_ones() {
    let server = start(options(Timeouts::default(), 3)).await;
    let mut busy = TcpStream::connect(server.addr).await.unwrap();
    busy.write_all(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut oldest = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut younger = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A fourth connection: the oldest idle one makes room.
    let mut newcomer = TcpStream::connect(server.addr).await.unwrap();
    assert!(!get_on(&mut newcomer, "/peer").await.is_empty());
    assert!(
        is_closed(&mut oldest).await,
        "the longest idle connection stays"
    );
    assert!(!is_closed(&mut younger).await);
    // Every connection busy: a newcomer is closed at once, the busy ones are untouched.
    younger
        .write_all(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    newcomer
        .write_all(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut refused = TcpStream::connect(server.addr).await.unwrap();
    let took = closed_within(&mut refused, Duration::from_secs(2)).await;
    assert!(took < Duration::from_millis(500), "{took:?}");
    server.release.notify_waiters();
    for conn in [&mut busy, &mut younger, &mut newcomer] {
        let mut buf = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(
            text.starts_with("HTTP/1.1 200") && text.ends_with("released"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_finishes_requests_in_progress() {
    let mut server = start(ListenOptions::default()).await;
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    let mut busy = TcpStream::connect(server.addr).await.unwrap();
    busy.write_all(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop.take().unwrap().send(()).unwrap();
    closed_within(&mut idle, Duration::from_secs(2)).await;
    assert!(!server.done.is_finished());
    server.release.notify_waiters();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), busy.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("released"),
        "{answer}"
    );
    tokio::time::timeout(Duration::from_secs(5), server.done)
        .await
        .unwrap()
        .unwrap();
}
