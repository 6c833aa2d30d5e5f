//! The ack cursor: the last sequence number the collector acknowledged, persisted so a restarted agent
//! resumes where shipping stopped. It only moves forward on a 200 (or to where the collector says it is, on a
//! 409). Replaying from an older cursor after a crash is harmless: the collector stores nothing twice.

use std::path::{Path, PathBuf};

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
    pub fn load(state_dir: &Path) -> anyhow::Result<AckCursor> {
        use anyhow::Context;
        let path = state_dir.join("ship").join("cursor.json");
        let acked = match std::fs::read_to_string(&path) {
            Ok(text) => {
                serde_json::from_str::<CursorFile>(&text)
                    .with_context(|| format!("{}: bad ack cursor", path.display()))?
                    .acked_seq
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(AckCursor { path, acked })
    }

    /// The last acknowledged sequence number (0 = none).
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Records `seq` as acknowledged, atomically (write to a temporary file, then rename).
    pub fn store(&mut self, seq: u64) -> anyhow::Result<()> {
        use anyhow::Context;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_string(&CursorFile { acked_seq: seq })?;
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("renaming to {}", self.path.display()))?;
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
