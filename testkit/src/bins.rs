//! Where the built binaries are: `$AUDITLOOP_BIN` / `$AUDITLOOP_COLLECTOR_BIN` when set, else in the
//! target directory the calling executable runs from (`target/<profile>/`, also for test executables under
//! `target/<profile>/deps/`), and where helpers keep scratch files (the target directory's `tmp/`).

use std::path::{Path, PathBuf};

use crate::TestkitError;

/// The `auditloop` agent binary.
pub fn agent_bin() -> Result<PathBuf, TestkitError> {
    find("AUDITLOOP_BIN", "auditloop")
}

/// The `auditloop-collector` binary.
pub fn collector_bin() -> Result<PathBuf, TestkitError> {
    find("AUDITLOOP_COLLECTOR_BIN", "auditloop-collector")
}

fn find(variable: &str, name: &str) -> Result<PathBuf, TestkitError> {
    if let Some(path) = std::env::var_os(variable) {
        return Ok(PathBuf::from(path));
    }
    let exe =
        std::env::current_exe().map_err(TestkitError::io("finding the running executable"))?;
    let dir = exe.parent().map(profile_dir).unwrap_or_default();
    let bin = dir.join(name);
    if bin.exists() {
        Ok(bin)
    } else {
        Err(TestkitError::MissingBinary(bin))
    }
}

/// A directory for scratch files: the `tmp/` of the cargo target directory the calling executable runs
/// from (the one holding `CACHEDIR.TAG`, also with a `--target` triple in the path), else the system's
/// temporary directory.
pub fn scratch_dir() -> PathBuf {
    let target = std::env::current_exe().ok().and_then(|exe| {
        let profile = profile_dir(exe.parent()?);
        let target = profile
            .ancestors()
            .skip(1)
            .take(2)
            .find(|dir| dir.join("CACHEDIR.TAG").is_file())?
            .to_owned();
        Some(target)
    });
    match target {
        Some(target) => target.join("tmp"),
        None => std::env::temp_dir(),
    }
}

/// `target/<profile>` for an executable's directory (test executables live in its `deps/`).
fn profile_dir(dir: &Path) -> PathBuf {
    match dir.file_name() {
        Some(name) if name == "deps" => dir.parent().unwrap_or(dir).to_owned(),
        _ => dir.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_executables_find_binaries_one_level_up() {
        assert_eq!(
            profile_dir(Path::new("/t/target/debug/deps")),
            Path::new("/t/target/debug")
        );
        assert_eq!(
            profile_dir(Path::new("/t/target/release")),
            Path::new("/t/target/release")
        );
    }
}
