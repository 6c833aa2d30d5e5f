//! The kernels and busybox, as Debian packages: `apt-get download` into the cache directory, extracted
//! there with `dpkg-deb -x`. A package already in the cache is used as it is (no network).

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::Kernel;
use crate::cmd::{self, command};

/// Downloads and extracts the newest package of `kernel`'s line; returns its `vmlinuz`.
pub fn kernel(cache: &Path, kernel: Kernel) -> anyhow::Result<PathBuf> {
    let (pattern, prefix): (&str, &str) = match kernel {
        Kernel::V6_1 => (
            r"^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$",
            "linux-image-6.1.0-",
        ),
        Kernel::V6_12 => (
            r"^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$",
            "linux-image-6.12.",
        ),
    };
    let package = match newest(pattern) {
        Some(name) => name,
        // No package lists (offline, or apt-get update never ran): the newest one cached earlier.
        None => newest_cached(cache, prefix).with_context(|| {
            format!("no package matches {pattern} (apt-cache search) and none is cached")
        })?,
    };
    let tree = extract(cache, &package)?;
    let boot = tree.join("boot");
    let entries =
        std::fs::read_dir(&boot).with_context(|| format!("reading {}", boot.display()))?;
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .with_context(|| format!("{package} has no boot/vmlinuz-*"))
}

/// Downloads and extracts `busybox-static`; returns the busybox binary.
pub fn busybox(cache: &Path) -> anyhow::Result<PathBuf> {
    let bin = extract(cache, "busybox-static")?.join("bin/busybox");
    anyhow::ensure!(bin.is_file(), "busybox-static has no {}", bin.display());
    Ok(bin)
}

/// The newest package whose name matches `pattern` (`apt-cache search --names-only`), by version sort.
fn newest(pattern: &str) -> Option<String> {
    let text = cmd::output(command("apt-cache").args(["search", "--names-only", pattern]))?;
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    names.sort_by(|a, b| version_cmp(a, b));
    names.pop()
}

/// The newest extracted package in `cache` whose name starts with `prefix`.
fn newest_cached(cache: &Path, prefix: &str) -> Option<String> {
    let mut names: Vec<String> = std::fs::read_dir(cache.join("x"))
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix) && n.ends_with("-unsigned"))
        .collect();
    names.sort_by(|a, b| version_cmp(a, b));
    names.pop()
}

/// Compares two names as `sort -V` does for these: runs of digits by value, the rest byte by byte.
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(s: &str) -> Vec<Result<u64, String>> {
        let mut out = Vec::new();
        let mut rest = s;
        while let Some(c) = rest.chars().next() {
            let digit = c.is_ascii_digit();
            let end = rest
                .find(|ch: char| ch.is_ascii_digit() != digit)
                .unwrap_or(rest.len());
            let (run, tail) = rest.split_at(end);
            out.push(if digit {
                Ok(run.parse().unwrap_or(u64::MAX))
            } else {
                Err(run.to_owned())
            });
            rest = tail;
        }
        out
    }
    parts(a).cmp(&parts(b))
}

/// The package's extracted tree `<cache>/x/<package>`, downloading and extracting it when missing.
fn extract(cache: &Path, package: &str) -> anyhow::Result<PathBuf> {
    let tree = cache.join("x").join(package);
    if tree.join(".complete").exists() {
        return Ok(tree);
    }
    let deb = match cached_deb(cache, package) {
        Some(deb) => deb,
        None => {
            cmd::run(
                command("apt-get")
                    .current_dir(cache)
                    .args(["download", "-q", package]),
            )
            .with_context(|| format!("downloading {package}"))?;
            cached_deb(cache, package)
                .with_context(|| format!("apt-get download left no {package}_*.deb"))?
        }
    };
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(&tree).with_context(|| format!("creating {}", tree.display()))?;
    cmd::run(command("dpkg-deb").arg("-x").arg(&deb).arg(&tree))?;
    std::fs::write(tree.join(".complete"), deb.to_string_lossy().as_bytes())
        .with_context(|| format!("marking {} complete", tree.display()))?;
    Ok(tree)
}

/// The newest `<package>_*.deb` in the cache.
fn cached_deb(cache: &Path, package: &str) -> Option<PathBuf> {
    let prefix = format!("{package}_");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(cache)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with(&prefix) && n.ends_with(".deb")
            })
        })
        .collect();
    debs.sort_by(|a, b| version_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
    debs.pop()
}

#[cfg(test)]
mod tests {
    use super::version_cmp;
    use std::cmp::Ordering;

    #[test]
    fn versions_sort_by_number() {
        assert_eq!(
            version_cmp(
                "linux-image-6.1.0-9-cloud-amd64-unsigned",
                "linux-image-6.1.0-57-cloud-amd64-unsigned"
            ),
            Ordering::Less
        );
        assert_eq!(
            version_cmp(
                "linux-image-6.12.118+deb12-cloud-amd64-unsigned",
                "linux-image-6.12.99+deb12-cloud-amd64-unsigned"
            ),
            Ordering::Greater
        );
    }
}
