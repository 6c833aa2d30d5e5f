//! One `.deb`: a staged tree (files with their modes, `DEBIAN/{control,conffiles,md5sums}` and the
//! maintainer scripts), built by `dpkg-deb --root-owner-group --build`.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::cmd;

/// Maintainer scripts a package may have, in `packaging/<name>/`.
const SCRIPTS: &[&str] = &["preinst", "postinst", "prerm", "postrm"];

/// A script line replaced by the file it names (relative to `packaging/`), so the packages share shell
/// functions without a file of their own on the installed system.
const INCLUDE: &str = "#@include ";

/// Dependency used when `dpkg-shlibdeps` is not installed or fails.
const FALLBACK_DEPENDS: &str = "libc6";

/// Where a packaged file's content comes from.
#[derive(Debug)]
enum Source {
    /// A file of the repository or the build.
    File(PathBuf),
    /// Text generated here.
    Text(String),
}

/// One file of a package.
#[derive(Debug)]
pub struct Entry {
    source: Source,
    /// Path below the package root, without a leading `/`.
    dest: String,
    mode: u32,
    conffile: bool,
}

impl Entry {
    /// A regular file.
    pub fn file(source: PathBuf, dest: String, mode: u32) -> Entry {
        Entry {
            source: Source::File(source),
            dest,
            mode,
            conffile: false,
        }
    }

    /// A configuration file (0644): dpkg keeps the administrator's changes on upgrade and removes it
    /// only on purge.
    pub fn conffile(source: PathBuf, dest: String) -> Entry {
        Entry {
            conffile: true,
            ..Entry::file(source, dest, 0o644)
        }
    }

    /// The Debian copyright file, from the repository's license files.
    pub fn copyright(root: &Path, dest: String) -> Entry {
        let mit = std::fs::read_to_string(root.join("LICENSE-MIT")).unwrap_or_default();
        let mut text = String::from(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
             Upstream-Name: auditloop\n\n\
             Files: *\nCopyright: auditloop contributors\nLicense: MIT or Apache-2.0\n\n\
             License: Apache-2.0\n On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.\n\n\
             License: MIT\n",
        );
        for line in mit.lines() {
            if line.trim().is_empty() {
                text.push_str(" .\n");
            } else {
                let _ = writeln!(text, " {line}");
            }
        }
        Entry {
            source: Source::Text(text),
            dest,
            mode: 0o644,
            conffile: false,
        }
    }
}

/// What one package is.
#[derive(Debug)]
pub struct Spec {
    /// Package name.
    pub name: &'static str,
    /// ELF files whose shared-library dependencies become `Depends`.
    pub binaries: Vec<PathBuf>,
    /// Dependencies beyond the shared libraries.
    pub extra_depends: Vec<String>,
    /// The description's first line.
    pub summary: &'static str,
    /// The description's body (one paragraph; wrapped here).
    pub description: &'static str,
    /// License expression.
    pub license: String,
    /// Project URL.
    pub homepage: String,
    /// Its files.
    pub files: Vec<Entry>,
    /// Directory holding its maintainer scripts (`packaging/<name>/`).
    pub scripts: PathBuf,
    /// Directory `#@include` lines name files relative to (`packaging/`).
    pub packaging: PathBuf,
}

/// Stages `spec` below `out/stage/` and builds `out/<name>_<version>_<arch>.deb`; returns its path.
pub fn build(spec: &Spec, version: &str, arch: &str, out: &Path) -> anyhow::Result<PathBuf> {
    let stage = out.join("stage").join(spec.name);
    if stage.exists() {
        std::fs::remove_dir_all(&stage)
            .with_context(|| format!("removing the old stage {}", stage.display()))?;
    }
    let mut installed_kib = 0;
    for entry in &spec.files {
        installed_kib += stage_file(&stage, entry)?.div_ceil(1024);
    }
    let control = stage.join("DEBIAN");
    make_dir(&stage, &control)?;
    let depends = depends(spec, &out.join("stage"))?;
    write(
        &control.join("control"),
        &control_text(spec, version, arch, &depends, installed_kib),
        0o644,
    )?;
    let conffiles: String = spec
        .files
        .iter()
        .filter(|e| e.conffile)
        .map(|e| format!("/{}\n", e.dest))
        .collect();
    if !conffiles.is_empty() {
        write(&control.join("conffiles"), &conffiles, 0o644)?;
    }
    let md5sums = cmd::output(
        cmd::command("md5sum")
            .current_dir(&stage)
            .args(spec.files.iter().map(|e| e.dest.as_str())),
    )
    .context("`md5sum` over the staged files failed")?;
    write(&control.join("md5sums"), &md5sums, 0o644)?;
    for script in SCRIPTS {
        let path = spec.scripts.join(script);
        if path.exists() {
            let text = expand_includes(&path, &spec.packaging)?;
            write(&control.join(script), &text, 0o755)?;
        }
    }
    let deb = out.join(format!("{}_{version}_{arch}.deb", spec.name));
    cmd::run(
        cmd::command("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "-z1", "--build"])
            .arg(&stage)
            .arg(&deb),
    )?;
    Ok(deb)
}

/// Copies or writes `entry` into the stage (parent directories 0755); returns its size in bytes.
fn stage_file(stage: &Path, entry: &Entry) -> anyhow::Result<u64> {
    let dest = stage.join(&entry.dest);
    if let Some(parent) = dest.parent() {
        make_dir(stage, parent)?;
    }
    match &entry.source {
        Source::File(source) => {
            std::fs::copy(source, &dest)
                .with_context(|| format!("copying {} to {}", source.display(), dest.display()))?;
            set_mode(&dest, entry.mode)?;
        }
        Source::Text(text) => write(&dest, text, entry.mode)?,
    }
    Ok(std::fs::metadata(&dest)
        .with_context(|| format!("stat {}", dest.display()))?
        .len())
}

/// `path` and its missing parents up to `stage`, each 0755 (dpkg-deb refuses a group- or other-writable
/// `DEBIAN/`, and the modes of directories it packs are what dpkg installs).
fn make_dir(stage: &Path, path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    for dir in path.ancestors().take_while(|d| d.starts_with(stage)) {
        set_mode(dir, 0o755)?;
    }
    Ok(())
}

fn write(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    set_mode(path, mode)
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// The script at `path` with every `#@include FILE` line replaced by `FILE` (relative to `base`).
fn expand_includes(path: &Path, base: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        match line.strip_prefix(INCLUDE) {
            Some(name) => {
                let included = base.join(name.trim());
                let body = std::fs::read_to_string(&included).with_context(|| {
                    format!("{}: including {}", path.display(), included.display())
                })?;
                out.push_str(&body);
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// `Depends`: the shared libraries the binaries link, as `dpkg-shlibdeps` computes them from the
/// installed packages' symbol files (or plain `libc6` without it), and the spec's extra dependencies.
fn depends(spec: &Spec, scratch: &Path) -> anyhow::Result<String> {
    let mut all = vec![shlib_depends(&spec.binaries, scratch).unwrap_or_else(|| {
        eprintln!(
            "xtask: package: dpkg-shlibdeps unavailable or failed; {}: Depends: {FALLBACK_DEPENDS}",
            spec.name
        );
        FALLBACK_DEPENDS.into()
    })];
    all.extend(spec.extra_depends.iter().cloned());
    Ok(all.join(", "))
}

/// `dpkg-shlibdeps -O` over `binaries`, run in a scratch directory holding the minimal `debian/control`
/// it insists on.
fn shlib_depends(binaries: &[PathBuf], scratch: &Path) -> Option<String> {
    let dir = scratch.join("shlibdeps");
    std::fs::create_dir_all(dir.join("debian")).ok()?;
    std::fs::write(
        dir.join("debian/control"),
        "Source: auditloop\n\nPackage: auditloop\nArchitecture: any\n",
    )
    .ok()?;
    let out = cmd::output(
        cmd::command("dpkg-shlibdeps")
            .current_dir(&dir)
            .args(["-O", "--warnings=0"])
            .args(binaries.iter().map(|b| {
                let mut arg = std::ffi::OsString::from("-e");
                arg.push(b);
                arg
            })),
    )?;
    out.lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
}

/// `DEBIAN/control`.
fn control_text(spec: &Spec, version: &str, arch: &str, depends: &str, kib: u64) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "Package: {}", spec.name);
    let _ = writeln!(text, "Version: {version}");
    let _ = writeln!(text, "Architecture: {arch}");
    let _ = writeln!(
        text,
        "Maintainer: auditloop maintainers <auditloop@example.invalid>"
    );
    let _ = writeln!(text, "Installed-Size: {kib}");
    let _ = writeln!(text, "Depends: {depends}");
    let _ = writeln!(text, "Section: admin");
    let _ = writeln!(text, "Priority: optional");
    if !spec.homepage.is_empty() {
        let _ = writeln!(text, "Homepage: {}", spec.homepage);
    }
    let _ = writeln!(text, "License: {}", spec.license);
    let _ = writeln!(text, "Description: {}", spec.summary);
    for line in wrap(spec.description, 78) {
        let _ = writeln!(text, " {line}");
    }
    text
}

/// `text` split into lines of at most `width` characters at spaces (a longer word gets a line of its own).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

/// Fails unless `dpkg-deb` is installed.
pub fn require_dpkg_deb() -> anyhow::Result<()> {
    if which::which("dpkg-deb").is_err() {
        bail!("dpkg-deb is not installed (apt-get install dpkg)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wrap_keeps_lines_within_the_width() {
        let lines = wrap("aaa bbb ccc ddd", 7);
        assert_eq!(lines, ["aaa bbb", "ccc ddd"]);
    }
}
