//! `cargo xtask package`: Debian packages of the agent (`auditloop`) and the collector
//! (`auditloop-collector`), built from the release binaries and the files under `packaging/` into
//! `<target dir>/package/`.
//!
//! What goes into each package is written once, in [`agent`] and [`collector`]; [`deb`] stages the tree
//! and hands it to Debian's own `dpkg-deb --root-owner-group --build`, so the archive format, ownership and
//! permission checks are dpkg's, not ours.

mod deb;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::cmd;
use deb::{Entry, Spec};

/// The two `.deb` files one run builds.
#[derive(Debug)]
pub struct Packages {
    /// `auditloop_<version>_<arch>.deb`.
    pub agent: PathBuf,
    /// `auditloop-collector_<version>_<arch>.deb`.
    pub collector: PathBuf,
}

/// `cargo xtask package`: sets up, builds and prints where the packages are.
pub fn package() -> anyhow::Result<ExitCode> {
    crate::setup::setup()?;
    let packages = build_packages()?;
    println!("{}", packages.agent.display());
    println!("{}", packages.collector.display());
    Ok(ExitCode::SUCCESS)
}

/// Builds the release binaries, then both packages (the caller has run setup: the agent's build script
/// builds the kernel programs).
pub fn build_packages() -> anyhow::Result<Packages> {
    deb::require_dpkg_deb()?;
    cmd::build_release()?;
    let workspace = Workspace::read()?;
    let arch = cmd::output(cmd::command("dpkg").arg("--print-architecture"))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .context(
            "`dpkg --print-architecture` failed: packages are built on Debian or a derivative",
        )?;
    let out = workspace.target_dir.join("package");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let root = cmd::workspace_root();
    let build = |spec: Spec| deb::build(&spec, &workspace.version, &arch, &out);
    Ok(Packages {
        agent: build(agent(&root, &workspace))?,
        collector: build(collector(&root, &workspace))?,
    })
}

/// Cargo's release output directory (`<target dir>/release`).
pub fn release_dir() -> anyhow::Result<PathBuf> {
    Ok(Workspace::read()?.target_dir.join("release"))
}

/// What cargo says about the workspace: its version and where it builds.
struct Workspace {
    /// The agent crate's version (the workspace version).
    version: String,
    /// Cargo's target directory (`CARGO_TARGET_DIR` or `target/`).
    target_dir: PathBuf,
    /// The workspace license expression.
    license: String,
    /// The workspace repository URL.
    homepage: String,
}

impl Workspace {
    /// Runs `cargo metadata`.
    fn read() -> anyhow::Result<Workspace> {
        let text =
            cmd::output(cmd::cargo().args(["metadata", "--no-deps", "--format-version", "1"]))
                .context("`cargo metadata` failed")?;
        let meta: serde_json::Value =
            serde_json::from_str(&text).context("parsing `cargo metadata` output")?;
        let Some(agent) = meta["packages"]
            .as_array()
            .and_then(|all| all.iter().find(|p| p["name"] == "auditloop"))
        else {
            bail!("`cargo metadata` lists no package `auditloop`");
        };
        let field = |name: &str| agent[name].as_str().unwrap_or_default().to_owned();
        let Some(target_dir) = meta["target_directory"].as_str() else {
            bail!("`cargo metadata` gives no target_directory");
        };
        Ok(Workspace {
            version: field("version"),
            target_dir: PathBuf::from(target_dir),
            license: field("license"),
            homepage: field("repository"),
        })
    }

    /// The release build of binary `name`.
    fn release_bin(&self, name: &str) -> PathBuf {
        self.target_dir.join("release").join(name)
    }
}

/// Files every package carries in `/usr/share/doc/<name>/`.
fn docs(root: &Path, name: &str) -> Vec<Entry> {
    vec![
        Entry::file(
            root.join("docs/operations.md"),
            format!("usr/share/doc/{name}/operations.md"),
            0o644,
        ),
        Entry::copyright(root, format!("usr/share/doc/{name}/copyright")),
    ]
}

/// The agent package.
fn agent(root: &Path, workspace: &Workspace) -> Spec {
    let dir = root.join("packaging/auditloop");
    let mut files = vec![
        Entry::file(
            workspace.release_bin("auditloop"),
            "usr/bin/auditloop".into(),
            0o755,
        ),
        Entry::file(
            dir.join("auditloop.service"),
            "lib/systemd/system/auditloop.service".into(),
            0o644,
        ),
        Entry::conffile(dir.join("config.yaml"), "etc/auditloop/config.yaml".into()),
        // The repository's default rules, as they are: one copy, never a fork.
        Entry::conffile(
            root.join("rules/default.yaml"),
            "etc/auditloop/rules.d/default.yaml".into(),
        ),
    ];
    files.extend(docs(root, "auditloop"));
    Spec {
        name: "auditloop",
        binaries: vec![workspace.release_bin("auditloop")],
        extra_depends: Vec::new(),
        summary: "eBPF host audit agent with a tamper-evident journal",
        description: "auditloop captures process, file and network activity with eBPF programs, \
                      hash-chains every event into a journal sealed by forward-secure signatures, \
                      applies local rules (alert, kill, roll back) and ships the journal to an \
                      auditloop-collector.",
        license: workspace.license.clone(),
        homepage: workspace.homepage.clone(),
        files,
        scripts: dir,
        packaging: root.join("packaging"),
    }
}

/// The collector package. Its config file comes with the collector's `--config` option; it is packaged
/// once `packaging/auditloop-collector/config.yaml` exists.
fn collector(root: &Path, workspace: &Workspace) -> Spec {
    let dir = root.join("packaging/auditloop-collector");
    let mut files = vec![
        Entry::file(
            workspace.release_bin("auditloop-collector"),
            "usr/bin/auditloop-collector".into(),
            0o755,
        ),
        Entry::file(
            dir.join("auditloop-collector.service"),
            "lib/systemd/system/auditloop-collector.service".into(),
            0o644,
        ),
    ];
    let config = dir.join("config.yaml");
    if config.exists() {
        files.push(Entry::conffile(
            config,
            "etc/auditloop-collector/config.yaml".into(),
        ));
    }
    files.extend(docs(root, "auditloop-collector"));
    Spec {
        name: "auditloop-collector",
        binaries: vec![workspace.release_bin("auditloop-collector")],
        // postinst creates the service's system user with useradd.
        extra_depends: vec!["passwd".into()],
        summary: "central collector for auditloop agents",
        description: "auditloop-collector receives the journals auditloop agents ship, checks every \
                      batch's hash chain and checkpoint signatures against the host's enrolled key, \
                      stores the records in SQLite, serves queries and raises alerts for forgeries, \
                      gaps and silent hosts.",
        license: workspace.license.clone(),
        homepage: workspace.homepage.clone(),
        files,
        scripts: dir,
        packaging: root.join("packaging"),
    }
}
