//! `cargo xtask lint`: structure checks the compiler does not make, run on every crate's sources.
//!
//! - [`modules`]: no module imports a sibling that (directly or through others) imports it back; the
//!   arrows between the modules of one parent point one way.
//! - [`arms`]: no `_ =>` arm in a `match` over the project's vocabularies (event kinds and bodies, actions,
//!   loss stages, file and net ops, alert kinds, host statuses), so adding a value makes the compiler list
//!   every place that must handle it.
//!
//! Test code (`#[cfg(test)]` items and modules) is left out: tests may reach anywhere.

mod arms;
mod modules;
mod source;

use std::path::Path;

use anyhow::bail;

use crate::cmd::workspace_root;

/// Crate source directories checked, relative to the workspace root.
const CRATES: &[&str] = &[
    "agent/src",
    "agent-common/src",
    "agent-ebpf/src",
    "collector/src",
    "journal/src",
    "model/src",
    "model/derive/src",
    "protocol/src",
    "rules/src",
    "testkit/src",
    "xtask/src",
];

/// Runs every check; fails listing every finding.
pub fn lint() -> anyhow::Result<()> {
    let root = workspace_root();
    let mut findings = Vec::new();
    for dir in CRATES {
        let krate = source::Crate::load(&root, Path::new(dir))?;
        findings.extend(modules::cycles(&krate));
        findings.extend(arms::wildcards(&krate));
    }
    if findings.is_empty() {
        eprintln!("xtask: lint: no module cycles, no wildcard arms over vocabularies");
        return Ok(());
    }
    for f in &findings {
        eprintln!("xtask: lint: {f}");
    }
    bail!("{} structure finding(s)", findings.len())
}
