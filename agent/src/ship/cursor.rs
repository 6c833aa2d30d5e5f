//! The ack cursor: the last sequence number the collector acknowledged, persisted so a restarted agent
//! resumes where shipping stopped, and the last one it holds as verified (covered by a checkpoint signed by
//! this host's key), which is how far retention may delete: records the collector holds only as pending may
//! still have to be resent. It only moves forward on a 200 (or to where the collector says it is, on a 409).
//! Replaying from an older cursor after a crash is harmless: the collector stores nothing twice.

use std::path::{Path, PathBuf};

use auditloop_journal::{JournalError, files};

use super::error::ShipError;
use serde::{Deserialize, Serialize};

/// The persisted ack cursor.
#[derive(Debug)]
pub struct AckCursor {
    path: PathBuf,
    acked: u64,
    verified: u64,
}

#[derive(Serialize, Deserialize)]
struct CursorFile {
    acked_seq: u64,
    /// Absent in files written before the collector told verified from pending: then `acked_seq`.
    #[serde(default)]
    verified_seq: Option<u64>,
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
            acked: file.as_ref().map_or(0, |f| f.acked_seq),
            verified: file.map_or(0, |f| f.verified_seq.unwrap_or(f.acked_seq)),
            path,
        })
    }

    /// The last acknowledged sequence number (0 = none).
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// The last sequence number the collector holds as verified (0 = none): the retention floor.
    pub fn verified(&self) -> u64 {
        self.verified
    }

    /// Records `acked` as acknowledged and `verified` (at most `acked`) as verified, atomically (write to a
    /// temporary file, then rename).
    pub fn store(&mut self, acked: u64, verified: u64) -> Result<(), ShipError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| JournalError::io_error(dir, e))?;
        }
        let verified = verified.min(acked);
        let file = CursorFile {
            acked_seq: acked,
            verified_seq: Some(verified),
        };
        files::write_json(&self.path, &file, false)?;
        (self.acked, self.verified) = (acked, verified);
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
        c.store(41, 30).unwrap();
        let back = AckCursor::load(dir.path()).unwrap();
        assert_eq!((back.acked(), back.verified()), (41, 30));
        c.store(50, 60).unwrap();
        assert_eq!(
            AckCursor::load(dir.path()).unwrap().verified(),
            50,
            "never past acked"
        );
        std::fs::write(dir.path().join("ship/cursor.json"), r#"{"acked_seq":7}"#).unwrap();
        let old = AckCursor::load(dir.path()).unwrap();
        assert_eq!(
            (old.acked(), old.verified()),
            (7, 7),
            "a cursor file of an older agent"
        );
        std::fs::write(dir.path().join("ship/cursor.json"), "{").unwrap();
        let err = AckCursor::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("cursor.json"), "{err}");
    }
}
