//! Making syscall paths absolute in userspace.
//!
//! A relative path is joined to the directory its dirfd names (from the agent's descriptor table or
//! `/proc/<pid>/fd/<n>`) or to the process's cwd (tracked from chdir events, else `/proc/<pid>/cwd`), then
//! normalised lexically (`.`/`..` removed, symlinks not followed). Limits: a process that has already exited
//! and whose cwd or dirfd the agent never saw leaves the path relative (`resolved: false`).

use std::path::{Component, Path, PathBuf};

/// `AT_FDCWD` as the kernel passes it (a 32-bit -100 in a 64-bit slot).
pub const AT_FDCWD: i64 = -100;

/// Lexically normalises an absolute path: removes `.`, resolves `..`, collapses slashes.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for part in path.components() {
        match part {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
        }
    }
    out
}

/// Resolves `raw` against `base` (a directory) when it is relative; `None` when it is relative and no base is
/// known.
pub fn resolve(raw: &str, base: Option<&str>) -> Option<String> {
    let path = Path::new(raw);
    if path.is_absolute() {
        return Some(normalize(path).to_string_lossy().into_owned());
    }
    let base = base?;
    if raw.is_empty() {
        return Some(normalize(Path::new(base)).to_string_lossy().into_owned());
    }
    Some(
        normalize(&Path::new(base).join(path))
            .to_string_lossy()
            .into_owned(),
    )
}

/// The dirfd argument as the kernel sees it (an `int` in a 64-bit slot).
pub fn dirfd(raw: u64) -> i64 {
    i64::from(raw as u32 as i32)
}

/// `readlink /proc/<pid>/<what>` (e.g. `cwd`, `exe`, `fd/3`).
pub fn proc_link(pid: u32, what: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/{what}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(
            normalize(Path::new("/a/./b/../c//d")),
            PathBuf::from("/a/c/d")
        );
        assert_eq!(normalize(Path::new("/../..")), PathBuf::from("/"));
    }

    #[test]
    fn resolves_relative_and_absolute() {
        assert_eq!(
            resolve("/etc/../etc/passwd", None).as_deref(),
            Some("/etc/passwd")
        );
        assert_eq!(
            resolve("x/y", Some("/tmp/d")).as_deref(),
            Some("/tmp/d/x/y")
        );
        assert_eq!(resolve("../z", Some("/tmp/d")).as_deref(), Some("/tmp/z"));
        assert_eq!(resolve("rel", None), None);
        assert_eq!(resolve("", Some("/tmp/f")).as_deref(), Some("/tmp/f"));
    }

    #[test]
    fn dirfd_sign_extends_the_int() {
        assert_eq!(dirfd(0xffff_ff9c), AT_FDCWD);
        assert_eq!(dirfd(0xffff_ffff_ffff_ff9c), AT_FDCWD);
        assert_eq!(dirfd(3), 3);
    }
}
