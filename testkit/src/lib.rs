//! Development-only helpers shared by the integration tests, the benchmarks and `cargo xtask`: where the
//! built binaries are ([`bins`]), fresh tokens in files ([`tokens`]), and a real `auditloop-collector`
//! process on loopback ([`collector`]).
//!
//! This crate starts and stops processes; it knows the binaries' command lines and nothing of their
//! internals. Nothing in it is part of the product: no shipped crate may depend on it.
#![deny(missing_docs)]

pub mod bins;
pub mod collector;
pub mod tokens;

pub use collector::{CollectorProcess, CollectorSpec};

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
}

impl TestkitError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestkitError {
        let what = what.into();
        move |source| TestkitError::Io { what, source }
    }
}
