//! The collector's token files and optional YAML configuration file.
//!
//! The configuration file lists per-host tokens, each given inline or as a file (a relative `token_file` is
//! taken from the configuration file's directory):
//!
//! ```yaml
//! hosts:
//!   web-1:
//!     token_file: tokens/web-1
//!   db-1:
//!     token: "6f1c…"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::{TokenError, Tokens};

/// Why the tokens or the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file could not be read.
    #[error("{}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A token file holds no token.
    #[error("{}: token file is empty", path.display())]
    EmptyToken {
        /// The file.
        path: PathBuf,
    },
    /// The configuration file is invalid.
    #[error("{}: {why}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The tokens conflict.
    #[error(transparent)]
    Tokens(#[from] TokenError),
}

/// The configuration file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Per-host tokens, by host name.
    #[serde(default)]
    pub hosts: BTreeMap<String, HostToken>,
}

/// One host's token: inline or in a file (exactly one of the two).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostToken {
    /// The token itself.
    pub token: Option<String>,
    /// A file holding the token.
    pub token_file: Option<PathBuf>,
}

/// Reads a token file: its content without surrounding whitespace, which must not be empty.
pub fn read_token_file(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(ConfigError::EmptyToken {
            path: path.to_owned(),
        });
    }
    Ok(token.to_owned())
}

/// Reads the configuration file and the per-host tokens it names.
pub fn read_host_tokens(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })?;
    let invalid = |why: String| ConfigError::Invalid {
        path: path.to_owned(),
        why,
    };
    let config: ConfigFile = if text.trim().is_empty() {
        ConfigFile::default()
    } else {
        serde_yaml_ng::from_str(&text).map_err(|e| invalid(e.to_string()))?
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut tokens = Vec::with_capacity(config.hosts.len());
    for (host, entry) in config.hosts {
        let token = match (entry.token, entry.token_file) {
            (Some(token), None) => {
                let token = token.trim().to_owned();
                if token.is_empty() {
                    return Err(invalid(format!("hosts.{host}.token is empty")));
                }
                token
            }
            (None, Some(file)) => read_token_file(&base.join(file))?,
            _ => {
                return Err(invalid(format!(
                    "hosts.{host}: give exactly one of `token` and `token_file`"
                )));
            }
        };
        tokens.push((host, token));
    }
    Ok(tokens)
}

/// Loads every token: the shared agent token file, the admin token file and the configuration file's
/// per-host tokens.
pub fn load_tokens(
    agent_token_file: &Path,
    admin_token_file: &Path,
    config: Option<&Path>,
) -> Result<Tokens, ConfigError> {
    let agent = read_token_file(agent_token_file)?;
    let admin = read_token_file(admin_token_file)?;
    let hosts = match config {
        Some(path) => read_host_tokens(path)?,
        None => Vec::new(),
    };
    Ok(Tokens::new(&agent, &admin, hosts)?)
}

#[cfg(test)]
mod tests {
    use super::{load_tokens, read_host_tokens, read_token_file};
    use crate::auth::Access;

    #[test]
    fn config_tokens_inline_and_from_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tokens")).unwrap();
        std::fs::write(dir.path().join("tokens/web"), "web-token\n").unwrap();
        std::fs::write(dir.path().join("agent"), " agent-token\n").unwrap();
        std::fs::write(dir.path().join("admin"), "admin-token").unwrap();
        let config = dir.path().join("collector.yaml");
        std::fs::write(
            &config,
            "hosts:\n  web:\n    token_file: tokens/web\n  db:\n    token: db-token\n",
        )
        .unwrap();
        let tokens = load_tokens(
            &dir.path().join("agent"),
            &dir.path().join("admin"),
            Some(&config),
        )
        .unwrap();
        assert_eq!(
            tokens.host_access("web", Some("web-token")),
            Access::Granted
        );
        assert_eq!(tokens.host_access("db", Some("db-token")), Access::Granted);
        assert_eq!(
            tokens.host_access("db", Some("web-token")),
            Access::Forbidden
        );
        assert_eq!(
            tokens.host_access("x", Some("agent-token")),
            Access::Granted
        );
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = read_token_file(&missing).unwrap_err().to_string();
        assert!(err.starts_with(&missing.display().to_string()), "{err}");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n  \n").unwrap();
        let err = read_token_file(&empty).unwrap_err().to_string();
        assert_eq!(err, format!("{}: token file is empty", empty.display()));
        let config = dir.path().join("c.yaml");
        std::fs::write(&config, "hosts:\n  web:\n    token: a\n    token_file: b\n").unwrap();
        let err = read_host_tokens(&config).unwrap_err().to_string();
        assert!(err.contains("exactly one"), "{err}");
        std::fs::write(&config, "hots: {}\n").unwrap();
        let err = read_host_tokens(&config).unwrap_err().to_string();
        assert!(
            err.starts_with(&config.display().to_string()) && err.contains("hots"),
            "{err}"
        );
    }
}
