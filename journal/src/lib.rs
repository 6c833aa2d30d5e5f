//! auditloop's tamper-evident journal.
//!
//! Every event is appended to segment files in which each record commits to all records before it (a
//! SHA-256 hash chain), and at least once a second a checkpoint signs the chain head with a forward-secure
//! Ed25519 key (see [`keys`]). Any change, deletion, reordering or truncation is found by [`verify`], which
//! names the first bad record. The journal is the agent's only spool: it never drops a record, and
//! retention never deletes records below the shipper's acknowledged floor.
//!
//! Layout of a journal directory: `seg-<index>.alj` segments, `HEAD` (seq and hash of the last durable
//! record), `ANCHOR` (where the retained chain starts and which key is valid there), `LADDER` (signed links
//! from the genesis key to every later epoch's key, see [`ladder_file`]).
#![deny(missing_docs)]

pub mod atomic;
pub mod chain;
pub mod damage;
pub mod files;
pub mod keys;
pub mod ladder;
pub mod ladder_file;
pub mod legacy;
pub mod reader;
pub mod record;
pub mod tail;
pub mod verify;
pub mod writer;

use std::path::{Path, PathBuf};

pub use record::{Checkpoint, Hash, Payload, SegmentStart};
pub use verify::{Damage, HeadState, Problem, Report, Trust, Unproven, VerifyOptions, verify};
pub use writer::{
    DEFAULT_LOCK_WAIT, FsyncPolicy, Journal, JournalOptions, Recovery, RetentionFloor,
};

/// Errors of the journal library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another writer has the journal open.
    #[error(
        "{dir}: the journal is open for writing by another process (is another `auditloop run` using this state directory?)"
    )]
    InUse {
        /// The journal directory.
        dir: PathBuf,
    },
    /// The key file is unusable.
    #[error("{path}: bad key file: {why}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The OS random source failed.
    #[error("random source: {0}")]
    Random(String),
    /// A record could not be encoded.
    #[error("encoding a record: {0}")]
    Encode(String),
    /// The journal on disk is damaged in a way the writer will not repair (only a torn tail is repaired).
    #[error("{path}: {why}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The key file and the journal disagree about the key epoch.
    #[error(
        "key epoch mismatch: key file {key_file} is at epoch {key_epoch}, journal's last checkpoint is epoch {journal_epoch}"
    )]
    KeyEpoch {
        /// The key file.
        key_file: PathBuf,
        /// Its epoch.
        key_epoch: u64,
        /// The last checkpoint's epoch.
        journal_epoch: u64,
    },
    /// The journal cannot show how the key at its retained start descends from the genesis key: it has no
    /// key ladder, or one that starts after genesis (a journal written before key ladders existed).
    #[error("{path}: the key at the retained start cannot be traced to the genesis key: {why}")]
    Untraceable {
        /// The ladder file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The disk holding the journal is (nearly) full: the reserve kept ahead of the current segment could
    /// not be renewed.
    #[error("{dir}: the disk is full (the journal's reserve could not be renewed)")]
    LowSpace {
        /// The journal directory.
        dir: PathBuf,
    },
}

impl JournalError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> JournalError {
        JournalError::io_error(path, source)
    }

    /// A failed file operation on `path` (for callers that manage files beside the journal's).
    pub fn io_error(path: &Path, source: std::io::Error) -> JournalError {
        JournalError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
