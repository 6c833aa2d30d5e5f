//! The ack cursor: the last sequence number the collector acknowledged, persisted so a restarted agent
//! resumes where shipping stopped. It only moves forward on a 200 (or to where the collector says it is, on a
//! 409). Replaying from an older cursor after a crash is harmless: the collector stores nothing twice.

use std::path::{Path, PathBuf};

use auditloop_journal::{JournalError, files};

use super::error::ShipError;
use serde::{Deserialize, Serialize};

/// The persisted ack cursor.
#[derive(Debug)]
pub struct AckCursor {
    path: PathBuf,
    acked: u64,
}

#[derive(Serialize, Deserialize)]
struct CursorFile {
    acked_seq: u64,
}

impl AckCursor {
    /// Loads `<state_dir>/ship/cursor.json` (absent = nothing acknowledged yet).
    pub fn load(state_dir: &Path) -> Result<AckCursor, ShipError> {
        let path = state_dir.join("ship").join("cursor.json");
        let file: Option<CursorFile> =
            files::read_json(&path).map_err(|source| ShipError::Cursor {
                path: path.clone(),
                source,
            })?;
        Ok(AckCursor {
            acked: file.map_or(0, |f| f.acked_seq),
            path,
        })
    }

    /// The last acknowledged sequence number (0 = none).
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Records `seq` as acknowledged, atomically (write to a temporary file, then rename).
    pub fn store(&mut self, seq: u64) -> Result<(), ShipError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| JournalError::io_error(dir, e))?;
        }
        files::write_json(&self.path, &CursorFile { acked_seq: seq }, false)?;
        self.acked = seq;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persists_across_loads() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = AckCursor::load(dir.path()).unwrap();
        assert_eq!(c.acked(), 0);
        c.store(41).unwrap();
        assert_eq!(AckCursor::load(dir.path()).unwrap().acked(), 41);
        std::fs::write(dir.path().join("ship/cursor.json"), "{").unwrap();
        let err = AckCursor::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("cursor.json"), "{err}");
    }
}
