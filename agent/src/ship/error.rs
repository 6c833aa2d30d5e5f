//! Why shipping could not start or had to stop.

use std::path::PathBuf;

use auditloop_journal::JournalError;
use auditloop_protocol::batch::BatchError;

/// An error of the ship stage. Answers of the collector are not errors (they are [`super::client::Outcome`]s
/// the shipper acts on); these are the failures that stop it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShipError {
    /// The journal could not be read, or the ack cursor not stored.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The token file could not be read.
    #[error("reading token file {path}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The token file holds no token.
    #[error("token file {0} is empty")]
    EmptyToken(PathBuf),
    /// `/etc/machine-id` (the default host id) could not be read.
    #[error("reading /etc/machine-id for the host id (set --host-id)")]
    MachineId(#[source] std::io::Error),
    /// No collector URL was given.
    #[error("no collector URL to ship to")]
    NoCollector,
    /// The host id cannot be used in the collector's URL path.
    #[error("host id `{0}` must be 1 to 128 characters of letters, digits, `-`, `_` and `.`")]
    BadHostId(String),
    /// The ack cursor file does not parse.
    #[error("{path}: bad ack cursor")]
    Cursor {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: JournalError,
    },
    /// The HTTP client could not be set up.
    #[error(transparent)]
    Client(#[from] super::client::ClientError),
    /// A batch could not be encoded.
    #[error("encoding a batch")]
    Encode(#[source] BatchError),
    /// The shipper's thread or runtime could not be started.
    #[error("starting the shipper")]
    Start(#[source] std::io::Error),
    /// The shipper's thread panicked.
    #[error("the shipper thread panicked")]
    Panicked,
}
