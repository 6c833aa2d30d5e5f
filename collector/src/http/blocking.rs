//! Running store calls (which block) from handlers.

use std::sync::Arc;

use crate::http::error::AppError;
use crate::store::{Store, StoreError};

/// Runs a store call on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, AppError> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| AppError::Internal(format!("store task: {e}")))?
        .map_err(AppError::from)
}

/// Runs CPU-heavy work over the store (a replay of stored events) on a blocking thread; the work answers
/// with the HTTP error itself.
pub(crate) async fn blocking_work<T: Send + 'static>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| AppError::Internal(format!("replay task: {e}")))?
}
