//! Serving the API until a shutdown signal: in-flight requests finish, the silence watcher stops, and every
//! task's error is reported.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::alerts;
use crate::api::{AppState, app};
use crate::store::{INDEX_INTERVAL, Store, StoreError};

/// Why serving stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Http(std::io::Error),
    /// The silence watcher failed.
    #[error("silence watcher: {0}")]
    Silence(StoreError),
    /// A task panicked or was cancelled.
    #[error("task: {0}")]
    Task(String),
}

/// Serves `state` on `listener` until `shutdown` completes, then lets in-flight requests finish. With
/// `silence` set, raises `silence` alerts for hosts quiet that long.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    silence: Option<Duration>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let indexer = tokio::spawn(index_behind(Arc::clone(state.store()), stopped.clone()));
    let watcher = silence.map(|silence| {
        tokio::spawn(alerts::watch_silence(
            Arc::clone(state.store()),
            silence,
            alerts::silence_check_interval(silence),
            stopped,
        ))
    });
    let served = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await;
    // The receiver may be gone already if the watcher failed; its error is reported below.
    let _ = stop.send(true);
    indexer.await.map_err(|e| ServeError::Task(e.to_string()))?;
    if let Some(watcher) = watcher {
        watcher
            .await
            .map_err(|e| ServeError::Task(e.to_string()))?
            .map_err(ServeError::Silence)?;
    }
    served.map_err(ServeError::Http)?;
    tracing::info!("stopped");
    Ok(())
}

/// Indexes the records stored batches left for the store's search index, every [`INDEX_INTERVAL`], until
/// `stop` turns true. Failures are logged and retried: queries stay complete without the index.
async fn index_behind(store: Arc<dyn Store>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(INDEX_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = stop.changed() => if changed.is_err() || *stop.borrow() {
                return;
            },
        }
        let store = Arc::clone(&store);
        match tokio::task::spawn_blocking(move || store.index_pending(1)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "search index not updated; will retry"),
            Err(e) => tracing::warn!(error = %e, "search index task failed; will retry"),
        }
    }
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
