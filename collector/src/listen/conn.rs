//! Serving one connection with hyper (HTTP/1.1) and enforcing its timeouts.
//!
//! A connection is in one of three phases: idle (no request in progress, nothing received since the last
//! answer), receiving headers (bytes of a new request arrived, the handler has not started) and busy (a
//! handler runs). Idle for longer than the idle timeout, or receiving headers for longer than the header
//! timeout, the connection is closed; a busy connection is never cut. Told to close (its slot was taken, or
//! the server stops), an idle connection closes at once and a busy one after its answer.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::listen::Shared;
use crate::listen::slots::Slot;

/// How long a new connection waits for the slot of the idle connection it displaced.
const ADMIT_WAIT: Duration = Duration::from_secs(1);
/// How long a connection told to close may take to send the rest of its last answer.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Where a connection stands.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// No request in progress and nothing received since `since`.
    Idle { since: Instant },
    /// A request's first bytes arrived at `since`; its handler has not started.
    Headers { since: Instant },
    /// A handler runs.
    Busy,
}

/// One connection's phase, its slot and how many requests it served.
struct Tracker {
    slot: Slot,
    phase: watch::Sender<Phase>,
    in_flight: AtomicUsize,
    served: AtomicU64,
}

impl Tracker {
    fn new(slot: Slot) -> Tracker {
        Tracker {
            slot,
            phase: watch::Sender::new(Phase::Idle {
                since: Instant::now(),
            }),
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
        }
    }

    /// Idle from now (after a TLS handshake).
    fn idle_from_now(&self) {
        self.phase.send_replace(Phase::Idle {
            since: Instant::now(),
        });
    }

    /// Bytes arrived: an idle connection starts receiving a request.
    fn bytes_in(&self) {
        self.phase.send_if_modified(|phase| match phase {
            Phase::Idle { .. } => {
                *phase = Phase::Headers {
                    since: Instant::now(),
                };
                true
            }
            Phase::Headers { .. } | Phase::Busy => false,
        });
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.served.fetch_add(1, Ordering::Relaxed);
        self.slot.busy();
        self.phase.send_replace(Phase::Busy);
    }

    fn request_done(&self) {
        if self.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.slot.idle();
            self.idle_from_now();
        }
    }

    fn served_any(&self) -> bool {
        self.served.load(Ordering::Relaxed) > 0
    }
}

/// Serves one accepted TCP connection: takes a slot (or closes it), completes the TLS handshake if the
/// listener has TLS, then serves HTTP/1.1 until the client leaves, a timeout expires, the slot is taken
/// or `stop` turns true.
pub(super) async fn run<S>(
    tcp: TcpStream,
    peer: SocketAddr,
    service: S,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) where
    S: tower::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let Some(slot) = shared.slots.admit(ADMIT_WAIT).await else {
        return;
    };
    // Best effort: answers are small and should not wait for Nagle.
    let _ = tcp.set_nodelay(true);
    let tracker = Arc::new(Tracker::new(slot));
    let Some(acceptor) = &shared.tls else {
        serve_http(tcp, peer, service, &tracker, &shared, stop).await;
        return;
    };
    let handshake = tokio::time::timeout(shared.timeouts.tls_handshake, acceptor.accept(tcp));
    let tls = tokio::select! {
        result = handshake => match result {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(%peer, "TLS handshake failed: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        () = tracker.slot.evicted() => return,
        _ = stop.wait_for(|stopping| *stopping) => return,
    };
    tracker.idle_from_now();
    serve_http(tls, peer, service, &tracker, &shared, stop).await;
}

async fn serve_http<I, S>(
    io: I,
    peer: SocketAddr,
    service: S,
    tracker: &Arc<Tracker>,
    shared: &Shared,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let timeouts = shared.timeouts;
    let io = TokioIo::new(TrackedIo {
        io,
        tracker: Arc::clone(tracker),
    });
    let service = TrackedService {
        inner: TowerToHyperService::new(service),
        tracker: Arc::clone(tracker),
    };
    let mut builder = http1::Builder::new();
    // hyper's own header timeout also runs between requests; the phases below time both apart.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut phase = tracker.phase.subscribe();
    let mut closing: Option<Instant> = None;
    loop {
        let current = *phase.borrow_and_update();
        let deadline = match (current, closing) {
            (Phase::Busy, _) => None,
            // Told to close: a request not yet received is not waited for, nor an unused connection.
            (Phase::Headers { .. }, Some(_)) => return,
            (Phase::Idle { .. }, Some(_)) if !tracker.served_any() => return,
            (Phase::Headers { since }, None) => Some((since + timeouts.header_read, "header read")),
            (Phase::Idle { since }, None) => Some((since + timeouts.idle, "idle")),
            (Phase::Idle { since }, Some(asked)) => {
                let grace = since.max(asked) + CLOSE_GRACE;
                Some(((since + timeouts.idle).min(grace), "close"))
            }
        };
        tokio::select! {
            biased;
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                return;
            }
            () = close_requested(&tracker.slot, &mut stop), if closing.is_none() => {
                closing = Some(Instant::now());
                conn.as_mut().graceful_shutdown();
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = expire(deadline.map(|(at, _)| at)) => {
                if let Some((_, what)) = deadline {
                    tracing::debug!(%peer, "{what} timeout: connection closed");
                }
                return;
            }
        }
    }
}

async fn close_requested(slot: &Slot, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        () = slot.evicted() => {}
        _ = stop.wait_for(|stopping| *stopping) => {}
    }
}

async fn expire(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The connection's byte stream, telling the tracker when bytes arrive.
struct TrackedIo<I> {
    io: I,
    tracker: Arc<Tracker>,
}

impl<I: AsyncRead + Unpin> AsyncRead for TrackedIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.tracker.bytes_in();
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for TrackedIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The connection's service, telling the tracker when a handler starts and ends.
struct TrackedService<S> {
    inner: S,
    tracker: Arc<Tracker>,
}

/// Marks the request done when dropped: when the answer is ready, or when hyper drops the handler.
struct RequestGuard(Arc<Tracker>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.request_done();
    }
}

impl<S, R> hyper::service::Service<R> for TrackedService<S>
where
    S: hyper::service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, request: R) -> Self::Future {
        self.tracker.request_started();
        let guard = RequestGuard(Arc::clone(&self.tracker));
        let answer = self.inner.call(request);
        Box::pin(async move {
            let result = answer.await;
            drop(guard);
            result
        })
    }
}
