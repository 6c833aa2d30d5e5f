//! `auditloop key show`: the journal's genesis public key.

use std::path::Path;

use anyhow::Context;
use auditloop_journal::keys::EpochKey;

/// Prints the genesis public key of the journal key under `state_dir`.
pub fn show(state_dir: &Path) -> anyhow::Result<()> {
    let path = state_dir.join("keys").join("journal.key");
    let key = EpochKey::load(&path)?.with_context(|| {
        format!(
            "{}: no journal key yet (it is created when `auditloop run` first starts)",
            path.display()
        )
    })?;
    println!("{}", hex::encode(key.genesis_public()));
    Ok(())
}
