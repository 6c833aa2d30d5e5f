//! Serving the API (and, when configured, the metrics endpoint on a listener of its own) until a shutdown
//! signal: in-flight requests finish, the silence watcher stops, and every task's error is reported. Connections (TLS, limits, timeouts) are [`listen`](crate::listen)'s. The store
//! keeps its own background work (search index, log checkpoints) and stops it when dropped.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::http::{AppState, app};
use crate::listen::{self, ListenOptions};
use crate::scrape::{self, MetricsEndpoint};
use crate::silence;
use crate::store::StoreError;

/// Why serving stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The silence watcher failed.
    #[error("silence watcher: {0}")]
    Silence(StoreError),
    /// The metrics endpoint failed.
    #[error("metrics endpoint: {0}")]
    Metrics(std::io::Error),
    /// A task panicked or was cancelled.
    #[error("task: {0}")]
    Task(String),
}

/// Serves `state` on `listener` as `options` say until `shutdown` completes, then lets in-flight requests
/// finish. With `silence` set, raises `silence` alerts for hosts quiet that long; with `metrics`, serves
/// the metrics endpoint until then too.
pub async fn serve(
    listener: TcpListener,
    options: ListenOptions,
    state: AppState,
    silence: Option<Duration>,
    metrics: Option<MetricsEndpoint>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let watcher = silence.map(|silence| {
        tokio::spawn(silence::watch_silence(
            Arc::clone(state.store()),
            silence,
            silence::silence_check_interval(silence),
            stopped.clone(),
        ))
    });
    let metrics = metrics.map(|endpoint| {
        let mut stopped = stopped.clone();
        let stop_scraping = async move {
            // An error means the sender is gone: the API has stopped either way.
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        tokio::spawn(scrape::serve(
            endpoint,
            Arc::clone(state.store()),
            stop_scraping,
        ))
    });
    let router = app(state.clone()).merge(crate::console::router(state));
    listen::serve(listener, options, router, shutdown).await;
    // The receivers may be gone already if a task failed; its error is reported below.
    let _ = stop.send(true);
    if let Some(metrics) = metrics {
        metrics
            .await
            .map_err(|e| ServeError::Task(e.to_string()))?
            .map_err(ServeError::Metrics)?;
    }
    if let Some(watcher) = watcher {
        watcher
            .await
            .map_err(|e| ServeError::Task(e.to_string()))?
            .map_err(ServeError::Silence)?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Completes at the first SIGTERM or SIGINT.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down; finishing requests in flight");
    })
}
