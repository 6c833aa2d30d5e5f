//! Development-only helpers shared by the integration tests, the benchmarks and `cargo xtask`: where the
//! built binaries are ([`bins`]), fresh tokens in files ([`tokens`]), a real `auditloop-collector`
//! process on loopback ([`collector`]) and a real PostgreSQL server for it to use ([`postgres`]).
//!
//! This crate starts and stops processes; it knows the binaries' command lines and nothing of their
//! internals. Nothing in it is part of the product: no shipped crate may depend on it.
#![deny(missing_docs)]

pub mod bins;
pub mod collector;
pub mod postgres;
pub mod tokens;

pub use collector::{CollectorProcess, CollectorSpec};
pub use postgres::PgServer;

/// Why a helper failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    /// A binary is not where it should be.
    #[error(
        "{0} is missing: build it first (`cargo xtask test` does) or set the environment variable"
    )]
    MissingBinary(std::path::PathBuf),
    /// A file or process operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The collector did not start.
    #[error("the collector did not start: it printed {0:?} instead of `listening on ADDR`")]
    NotListening(String),
    /// PostgreSQL is not installed (or not usable) here.
    #[error(
        "PostgreSQL is missing: {0}; run `cargo xtask setup` (it installs Debian's `postgresql`) or set \
         AUDITLOOP_PG_BIN to a PostgreSQL bin directory"
    )]
    MissingPostgres(String),
    /// A PostgreSQL server or client program failed.
    #[error("{what}:\n{detail}")]
    Postgres {
        /// What failed.
        what: String,
        /// What it printed (stderr, or the end of the server log).
        detail: String,
    },
    /// A database name the helpers refuse.
    #[error("{0:?} is not a test database name: use 1 to 63 of [a-z0-9_]")]
    InvalidDatabaseName(String),
}

impl TestkitError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestkitError {
        let what = what.into();
        move |source| TestkitError::Io { what, source }
    }
}
