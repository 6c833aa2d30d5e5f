//! The settings the collector serves with ([`Settings`]): the command line ([`Args`]) over the
//! configuration file ([`ConfigFile`], `--config`) over the defaults.
//!
//! A flag given on the command line always wins over the file; a setting in neither takes its default, and
//! the three required ones (`listen`, `db`, `admin_token_file`) stop the collector with an error naming
//! the setting, its flag and its key. Nothing here opens a socket or reads a token: TLS files are read
//! when [`Settings::listen_options`] is called.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::Args;
use crate::config_file::{ConfigFile, ConfigFileError};
use crate::groups::HostGroups;
use crate::http::{DEFAULT_MAX_BODY_BYTES, default_max_concurrent_batches};
use crate::lineage::{DEFAULT_WINDOW_MS, LineageOptions};
use crate::listen::{DEFAULT_MAX_CONNECTIONS, ListenOptions, Timeouts, TlsError, load_acceptor};

/// Default silence period, in seconds.
pub const DEFAULT_SILENCE_SECS: u64 = 300;

/// Why the settings are not usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// The configuration file could not be read or parsed.
    #[error(transparent)]
    File(#[from] ConfigFileError),
    /// A required setting is in neither the command line nor the file.
    #[error("missing setting `{key}`: give {flag}{}", in_file(.file.as_deref(), .key))]
    Missing {
        /// The setting's key in the file.
        key: &'static str,
        /// Its flag.
        flag: &'static str,
        /// The configuration file, if one was given.
        file: Option<PathBuf>,
    },
    /// A TLS certificate without its key, or a key without its certificate.
    #[error("{given} needs {needed} too")]
    HalfTls {
        /// The one given (`--tls-cert`, or `tls_cert` of the file).
        given: String,
        /// The one missing.
        needed: &'static str,
    },
}

fn in_file(file: Option<&Path>, key: &str) -> String {
    match file {
        Some(file) => format!(", or set `{key}` in {}", file.display()),
        None => format!(", or `{key}` in a --config file"),
    }
}

/// Everything the collector serves with, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Address of the API.
    pub listen: String,
    /// Database: a SQLite file, or a PostgreSQL URL ([`is_postgres_url`](crate::store::is_postgres_url)).
    pub db: PathBuf,
    /// The admin token's file.
    pub admin_token_file: PathBuf,
    /// The enrollment token's file, if enrollment by token is on.
    pub enroll_token_file: Option<PathBuf>,
    /// The approver token's file, if any.
    pub approver_token_file: Option<PathBuf>,
    /// The viewer token's file, if any.
    pub viewer_token_file: Option<PathBuf>,
    /// Certificate chain and key to serve HTTPS with.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Seconds of silence before a `silence` alert (0 = off).
    pub silence_secs: u64,
    /// Largest batch body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Connections served at once.
    pub max_connections: usize,
    /// Batches in progress at once.
    pub max_concurrent_batches: usize,
    /// The lineage join window, in milliseconds.
    pub lineage_window_ms: u64,
    /// Days of stored records kept, if retention is on (PostgreSQL only).
    pub retention_days: Option<u64>,
    /// Address of the metrics endpoint, if it is on.
    pub metrics_listen: Option<String>,
    /// Host groups (file only).
    pub groups: HostGroups,
    /// Connection timeouts (flags only, for tests).
    pub timeouts: Timeouts,
}

impl Settings {
    /// Reads `--config` if given and merges it under `args`.
    pub fn resolve(args: &Args) -> Result<Settings, SettingsError> {
        let file = args.config.as_deref().map(ConfigFile::load).transpose()?;
        Settings::merge(args, file.unwrap_or_default())
    }

    /// Merges `file` (read from `args.config`) under `args`, then the defaults.
    pub fn merge(args: &Args, file: ConfigFile) -> Result<Settings, SettingsError> {
        let missing = |key, flag| SettingsError::Missing {
            key,
            flag,
            file: args.config.clone(),
        };
        let listen = args.listen.clone().or(file.listen);
        let db = args.db.clone().or(file.db);
        let admin = args.admin_token_file.clone().or(file.admin_token_file);
        let cert = pick(&args.tls_cert, "--tls-cert", file.tls_cert, "tls_cert");
        let key = pick(&args.tls_key, "--tls-key", file.tls_key, "tls_key");
        let tls = match (cert, key) {
            (Some((cert, _)), Some((key, _))) => Some((cert, key)),
            (Some((_, given)), None) => {
                return Err(SettingsError::HalfTls {
                    given,
                    needed: "--tls-key",
                });
            }
            (None, Some((_, given))) => {
                return Err(SettingsError::HalfTls {
                    given,
                    needed: "--tls-cert",
                });
            }
            (None, None) => None,
        };
        let default = Timeouts::default();
        Ok(Settings {
            listen: listen.ok_or_else(|| missing("listen", "--listen"))?,
            db: db.ok_or_else(|| missing("db", "--db"))?,
            admin_token_file: admin
                .ok_or_else(|| missing("admin_token_file", "--admin-token-file"))?,
            enroll_token_file: args.enroll_token_file.clone().or(file.enroll_token_file),
            approver_token_file: args
                .approver_token_file
                .clone()
                .or(file.approver_token_file),
            viewer_token_file: args.viewer_token_file.clone().or(file.viewer_token_file),
            tls,
            silence_secs: args
                .silence_secs
                .or(file.silence_secs)
                .unwrap_or(DEFAULT_SILENCE_SECS),
            max_body_bytes: args
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(DEFAULT_MAX_BODY_BYTES),
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(DEFAULT_MAX_CONNECTIONS),
            max_concurrent_batches: args
                .max_concurrent_batches
                .or(file.max_concurrent_batches)
                .unwrap_or_else(default_max_concurrent_batches),
            lineage_window_ms: args
                .lineage_window_ms
                .or(file.lineage_window_ms)
                .unwrap_or(DEFAULT_WINDOW_MS),
            retention_days: args.retention_days.or(file.retention_days),
            metrics_listen: args.metrics_listen.clone().or(file.metrics.listen),
            groups: file.groups,
            timeouts: Timeouts {
                header_read: args.header_read_timeout.unwrap_or(default.header_read),
                idle: args.idle_timeout.unwrap_or(default.idle),
                tls_handshake: args.tls_handshake_timeout.unwrap_or(default.tls_handshake),
            },
        })
    }

    /// The silence period, if silence alerts are on.
    pub fn silence(&self) -> Option<Duration> {
        (self.silence_secs > 0).then(|| Duration::from_secs(self.silence_secs))
    }

    /// The lineage walk's bounds: the join window and the defaults.
    pub fn lineage(&self) -> LineageOptions {
        LineageOptions::with_window_ms(self.lineage_window_ms)
    }

    /// How connections are served: TLS from the certificate and key (read now), the cap and timeouts.
    pub fn listen_options(&self) -> Result<ListenOptions, TlsError> {
        let tls = match &self.tls {
            Some((cert, key)) => Some(load_acceptor(cert, key)?),
            None => None,
        };
        Ok(ListenOptions {
            tls,
            max_connections: self.max_connections,
            timeouts: self.timeouts,
        })
    }
}

/// The flag's value if given, else the file's; with the name of where it came from.
fn pick(
    flag: &Option<PathBuf>,
    flag_name: &str,
    file: Option<PathBuf>,
    key: &str,
) -> Option<(PathBuf, String)> {
    match (flag, file) {
        (Some(path), _) => Some((path.clone(), flag_name.to_owned())),
        (None, Some(path)) => Some((path, format!("`{key}` of the config file"))),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests;
