//! Why a store operation failed, in terms every backend can report.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed (or could not be reached).
    #[error("database: {0}")]
    Database(String),
    /// The host's stored record changed while the batch was being verified (the compare-and-set on its next
    /// sequence number failed); nothing was stored.
    #[error("host {0}: stored state changed concurrently")]
    Conflict(String),
    /// Stored data does not read back.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A host to enroll (without `replace`) is stored already.
    #[error("host {0} exists")]
    HostExists(String),
}
