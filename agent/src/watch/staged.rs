//! Files watched for a while on top of the configured watch list: the files a drill overlay staged
//! (see [`crate::actions::overlay`]). The journal task adds and removes them; the capture task asks
//! whether a touched path is one of them. Kept in memory only, so an agent restart drops them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// A set of extra watched files, shared between the journal task and the capture task.
#[derive(Clone, Debug, Default)]
pub struct StagedPaths(Arc<Mutex<BTreeSet<PathBuf>>>);

impl StagedPaths {
    /// Starts watching `path` (already normalised and confined by the caller).
    pub fn add(&self, path: &Path) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.to_owned());
    }

    /// Stops watching `path`.
    pub fn remove(&self, path: &Path) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(path);
    }

    /// Whether `path` (lexically normalised here) is staged.
    pub fn contains(&self, path: &Path) -> bool {
        let path = crate::watch::normalize(path);
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&path)
    }
}

#[cfg(test)]
mod tests {
    use super::StagedPaths;
    use std::path::Path;

    #[test]
    fn shared_between_clones_and_normalised() {
        let staged = StagedPaths::default();
        let other = staged.clone();
        staged.add(Path::new("/tmp/auditloop-drill-x/sshd_config"));
        assert!(other.contains(Path::new("/tmp/auditloop-drill-x/./sshd_config")));
        other.remove(Path::new("/tmp/auditloop-drill-x/sshd_config"));
        assert!(!staged.contains(Path::new("/tmp/auditloop-drill-x/sshd_config")));
    }
}
