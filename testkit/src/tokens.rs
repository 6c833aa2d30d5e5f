//! Bearer tokens in files, as the collector and the agent read them: one line, mode 0600.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::TestkitError;

/// A fresh random token: 32 bytes from the OS, in hex.
pub fn random_token() -> Result<String, TestkitError> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(TestkitError::io("reading /dev/urandom"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `token` to `path` (replacing it), mode 0600.
pub fn write_token(path: &Path, token: &str) -> Result<(), TestkitError> {
    let what = format!("writing {}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(TestkitError::io(what.clone()))?;
    file.write_all(format!("{token}\n").as_bytes())
        .map_err(TestkitError::io(what))
}

/// The token in `path`, writing `token` there first when the file does not exist (so a restart in the same
/// directory keeps its tokens).
pub fn keep_or_write(path: &Path, token: &str) -> Result<String, TestkitError> {
    if !path.exists() {
        write_token(path, token)?;
    }
    let text = std::fs::read_to_string(path)
        .map_err(TestkitError::io(format!("reading {}", path.display())))?;
    Ok(text.trim().to_owned())
}
