//! Accepting the API's connections: plain TCP or TLS (rustls), a bounded number at once, and timeouts on
//! every connection, so that clients which connect and stay silent, trickle their headers or never finish a
//! handshake cannot hold the collector's sockets.
//!
//! - `tls.rs`: the certificate and key ([`load_acceptor`]).
//! - `slots.rs`: at most [`ListenOptions::max_connections`] connections; when full, the longest idle one
//!   makes room for a newcomer, and when every one is mid-request the newcomer is closed.
//! - `conn.rs`: one connection served with hyper, its idle, header and handshake timeouts ([`Timeouts`]).
//!
//! Handlers see the client's address as axum's `ConnectInfo<SocketAddr>`, over TCP and TLS alike. A
//! request in progress is never cut: at shutdown, accepting stops, idle connections close and busy ones
//! close after their answer.

mod conn;
mod slots;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::Service;

pub use tls::{TlsError, load_acceptor};

use crate::listen::slots::Slots;

/// Default [`ListenOptions::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Open files kept beside the connections (database, logs, the listener).
const SPARE_FILES: u64 = 64;

/// How long a connection may take for each step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// From a request's first byte to its last header byte.
    pub header_read: Duration,
    /// Without a request in progress (from accept or the end of the last answer to the next byte).
    pub idle: Duration,
    /// From accept to a completed TLS handshake.
    pub tls_handshake: Duration,
}

impl Default for Timeouts {
    /// 10 s for headers, 60 s idle, 10 s for the TLS handshake.
    fn default() -> Timeouts {
        Timeouts {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            tls_handshake: Duration::from_secs(10),
        }
    }
}

/// How the API is served.
#[derive(Clone)]
pub struct ListenOptions {
    /// HTTPS with this acceptor; plain HTTP without.
    pub tls: Option<TlsAcceptor>,
    /// Connections served at once.
    pub max_connections: usize,
    /// The connections' timeouts.
    pub timeouts: Timeouts,
}

impl Default for ListenOptions {
    /// Plain HTTP, [`DEFAULT_MAX_CONNECTIONS`], the default timeouts.
    fn default() -> ListenOptions {
        ListenOptions {
            tls: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            timeouts: Timeouts::default(),
        }
    }
}

impl std::fmt::Debug for ListenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenOptions")
            .field("tls", &self.tls.is_some())
            .field("max_connections", &self.max_connections)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

/// What every connection of one listener shares.
struct Shared {
    slots: Arc<Slots>,
    tls: Option<TlsAcceptor>,
    timeouts: Timeouts,
}

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in progress finish and
/// returns once every connection is closed. Accept errors (such as running out of file descriptors) are
/// logged and retried, never fatal.
pub async fn serve(
    listener: TcpListener,
    options: ListenOptions,
    app: Router,
    shutdown: impl Future<Output = ()> + Send,
) {
    raise_open_file_limit(options.max_connections);
    if options.tls.is_none()
        && let Ok(addr) = listener.local_addr()
        && !addr.ip().is_loopback()
    {
        tracing::warn!(
            %addr,
            "serving plain HTTP on a non-loopback address: tokens and batches cross the network in the \
             clear unless a TLS proxy is in front (--tls-cert and --tls-key serve HTTPS)"
        );
    }
    let shared = Arc::new(Shared {
        slots: Slots::new(options.max_connections),
        tls: options.tls,
        timeouts: options.timeouts,
    });
    let mut make_service = app.into_make_service_with_connect_info::<SocketAddr>();
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(done) = connections.join_next(), if !connections.is_empty() => report(done),
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let Ok(service) = make_service.call(peer).await;
                    connections.spawn(conn::run(
                        tcp,
                        peer,
                        service,
                        Arc::clone(&shared),
                        stopped.clone(),
                    ));
                }
                Err(e) => accept_failed(&e).await,
            },
        }
    }
    drop(listener);
    // Every connection holds a receiver, so this cannot fail while one is open.
    let _ = stop.send(true);
    while let Some(done) = connections.join_next().await {
        report(done);
    }
}

fn report(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done
        && e.is_panic()
    {
        tracing::error!("connection task panicked: {e}");
    }
}

/// After a failed accept: errors of the one connection are skipped; others (out of file descriptors or
/// memory) are logged and retried after a pause, so the loop does not spin.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    ) {
        return;
    }
    tracing::error!("accepting a connection: {e}; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Raises the soft open-file limit to the hard one, and warns when that still leaves no room for
/// `max_connections`.
fn raise_open_file_limit(max_connections: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let limit = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    let wanted = (max_connections as u64).saturating_add(SPARE_FILES);
    if limit < wanted {
        tracing::warn!(
            open_files = limit,
            max_connections,
            "the open-file limit leaves room for fewer connections than --max-connections; \
             connections beyond it fail to be accepted (raise the limit, e.g. LimitNOFILE=)"
        );
    }
}

#[cfg(test)]
mod tests;
