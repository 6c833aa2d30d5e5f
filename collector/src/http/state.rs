//! What every request handler shares ([`AppState`]).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::Tokens;
use crate::groups::HostGroups;
use crate::http::limit::{BatchLimit, default_max_concurrent_batches};
use crate::ingest::Ingest;
use crate::lineage::LineageOptions;
use crate::store::Store;

/// Default `--max-body-bytes`: 16 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Fleet-wide learns and rules diffs running at once (each reads up to a million events on a blocking
/// thread); past it, requests are answered 503 at once.
pub const MAX_REPLAYS: usize = 2;

/// What every request handler shares: the store, ingest into it, the accepted tokens, the body limit,
/// the lineage walk's bounds, the host groups and the bound on replays.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
    batch_limit: BatchLimit,
    lineage: Arc<LineageOptions>,
    groups: Arc<HostGroups>,
    replays: Arc<Semaphore>,
    tls: bool,
}

struct Shared {
    store: Arc<dyn Store>,
    ingest: Ingest,
    tokens: Tokens,
    max_body_bytes: usize,
}

impl AppState {
    /// State over `store`, accepting `tokens`, bounding batch bodies to `max_body_bytes`.
    pub fn new(store: Arc<dyn Store>, tokens: Tokens, max_body_bytes: usize) -> AppState {
        AppState {
            inner: Arc::new(Shared {
                ingest: Ingest::new(Arc::clone(&store)),
                store,
                tokens,
                max_body_bytes,
            }),
            batch_limit: BatchLimit::new(default_max_concurrent_batches()),
            lineage: Arc::new(LineageOptions::default()),
            groups: Arc::new(HostGroups::default()),
            replays: Arc::new(Semaphore::new(MAX_REPLAYS)),
            tls: false,
        }
    }

    /// Knows `groups` (default: none).
    pub fn with_groups(mut self, groups: HostGroups) -> AppState {
        self.groups = Arc::new(groups);
        self
    }

    /// The host groups.
    pub(crate) fn groups(&self) -> &HostGroups {
        &self.groups
    }

    /// A turn to replay stored events (a learn or a diff), if fewer than [`MAX_REPLAYS`] run.
    pub(crate) fn replay_turn(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.replays).try_acquire_owned().ok()
    }

    /// Says the collector serves TLS (console cookies are then `Secure`).
    pub fn with_tls(mut self, tls: bool) -> AppState {
        self.tls = tls;
        self
    }

    /// Whether the collector serves TLS.
    pub(crate) fn serves_tls(&self) -> bool {
        self.tls
    }

    /// Walks lineages within `options` (default: [`LineageOptions::default`]).
    pub fn with_lineage(mut self, options: LineageOptions) -> AppState {
        self.lineage = Arc::new(options);
        self
    }

    /// The lineage walk's bounds.
    pub(crate) fn lineage_options(&self) -> &LineageOptions {
        &self.lineage
    }

    /// Bounds the batches in progress at once to `max` (default four per core; see [`BatchLimit`]).
    pub fn with_max_concurrent_batches(mut self, max: usize) -> AppState {
        self.batch_limit = BatchLimit::new(max);
        self
    }

    /// The bound on batches in progress.
    pub(super) fn batch_limit(&self) -> &BatchLimit {
        &self.batch_limit
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Ingest into the store.
    pub(super) fn ingest(&self) -> &Ingest {
        &self.inner.ingest
    }

    /// The accepted tokens.
    pub(crate) fn tokens(&self) -> &Tokens {
        &self.inner.tokens
    }

    /// The key console sessions are signed with.
    pub(crate) fn session_key(&self) -> [u8; 32] {
        self.inner.tokens.session_key()
    }

    /// The largest batch body accepted, in bytes.
    pub(super) fn max_body_bytes(&self) -> usize {
        self.inner.max_body_bytes
    }
}
