//! The collector's token files: the admin token and the optional enrollment token.
//!
//! Host tokens are not configured: the collector issues them when a host is enrolled and keeps only their
//! digests in its database (see [`crate::auth`]).

use std::path::{Path, PathBuf};

use crate::auth::{TokenError, Tokens};

/// Why the tokens could not be loaded.
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
    /// The tokens conflict.
    #[error(transparent)]
    Tokens(#[from] TokenError),
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

/// Loads the admin token file and, if given, the enrollment token file.
pub fn load_tokens(
    admin_token_file: &Path,
    enroll_token_file: Option<&Path>,
) -> Result<Tokens, ConfigError> {
    load_all_tokens(admin_token_file, enroll_token_file, None, None)
}

/// Loads the admin token file and, if given, the enrollment, approver and viewer token files.
pub fn load_all_tokens(
    admin_token_file: &Path,
    enroll_token_file: Option<&Path>,
    approver_token_file: Option<&Path>,
    viewer_token_file: Option<&Path>,
) -> Result<Tokens, ConfigError> {
    let admin = read_token_file(admin_token_file)?;
    let enroll = enroll_token_file.map(read_token_file).transpose()?;
    let approver = approver_token_file.map(read_token_file).transpose()?;
    let viewer = viewer_token_file.map(read_token_file).transpose()?;
    Ok(Tokens::new(&admin, enroll.as_deref())?
        .with_people(approver.as_deref(), viewer.as_deref())?)
}

#[cfg(test)]
mod tests {
    use super::{load_tokens, read_token_file};
    use crate::auth::{Identity, digest};

    #[test]
    fn tokens_load_from_their_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin"), " admin-token\n").unwrap();
        std::fs::write(dir.path().join("enroll"), "enroll-token").unwrap();
        let tokens =
            load_tokens(&dir.path().join("admin"), Some(&dir.path().join("enroll"))).unwrap();
        assert_eq!(
            tokens.identify(&digest("admin-token")),
            Some(Identity::Admin)
        );
        assert_eq!(
            tokens.identify(&digest("enroll-token")),
            Some(Identity::Enrollment)
        );
        let admin_only = load_tokens(&dir.path().join("admin"), None).unwrap();
        assert!(!admin_only.enrollment_enabled());
        std::fs::write(dir.path().join("same"), "admin-token").unwrap();
        let err = load_tokens(&dir.path().join("admin"), Some(&dir.path().join("same")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("the same"), "{err}");
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
        let err = load_tokens(&empty, None).unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
    }
}
