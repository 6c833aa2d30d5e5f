//! Forward-secure checkpoint signing keys.
//!
//! Epoch 0's Ed25519 seed is random; the seed of epoch `e + 1` is `SHA-256(EVOLVE_DOMAIN ‖ seed_e)`. The
//! checkpoint signed in epoch `e` carries the public key of epoch `e + 1`, so a verifier who trusts the
//! genesis public key can follow the keys forward. After each checkpoint the agent evolves and wipes the old
//! seed (in memory with `zeroize`; on disk the new key file is exchanged in atomically and the old one wiped in place): whoever takes the host
//! later holds only the current seed and cannot compute earlier ones, so cannot re-sign earlier epochs.
//!
//! The key file (`journal.key`, mode 0600 in a 0700 directory) holds JSON: epoch, seed and genesis public
//! key, all hex.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::JournalError;
use crate::atomic;

const EVOLVE_DOMAIN: &[u8] = b"auditloop/journal/key-evolve/v1";

/// The current epoch's signing key.
pub struct EpochKey {
    epoch: u64,
    seed: Zeroizing<[u8; 32]>,
    genesis_public: [u8; 32],
}

impl std::fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never prints the seed.
        f.debug_struct("EpochKey")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    epoch: u64,
    seed: String,
    genesis_public_key: String,
}

impl EpochKey {
    /// A fresh genesis key (epoch 0) from the OS random source.
    pub fn generate() -> Result<EpochKey, JournalError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|e| JournalError::Random(e.to_string()))?;
        let genesis_public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        Ok(EpochKey {
            epoch: 0,
            seed,
            genesis_public,
        })
    }

    /// A key at `epoch` from its seed (tests and tools).
    pub fn from_seed(epoch: u64, seed: [u8; 32], genesis_public: [u8; 32]) -> EpochKey {
        EpochKey {
            epoch,
            seed: Zeroizing::new(seed),
            genesis_public,
        }
    }

    /// Loads the key file, or `None` if it does not exist.
    pub fn load(path: &Path) -> Result<Option<EpochKey>, JournalError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => Zeroizing::new(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(JournalError::io(path, e)),
        };
        let bad = |why: &str| JournalError::KeyFile {
            path: path.to_owned(),
            why: why.to_owned(),
        };
        let file: KeyFile = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
        let mut seed_vec =
            Zeroizing::new(hex::decode(&file.seed).map_err(|_| bad("seed is not hex"))?);
        let seed: [u8; 32] = seed_vec
            .as_slice()
            .try_into()
            .map_err(|_| bad("seed is not 32 bytes"))?;
        seed_vec.zeroize();
        let genesis_public =
            parse_public_key(&file.genesis_public_key).map_err(|why| bad(&why.to_string()))?;
        Ok(Some(EpochKey::from_seed(file.epoch, seed, genesis_public)))
    }

    /// Writes the key file atomically with mode 0600 (the directory is created 0700), without needing
    /// free space once a first store has succeeded: the new key is written in place into the spare file
    /// beside it (always [`KEY_FILE_LEN`] bytes, so no block is allocated), synced, and exchanged with the
    /// key file in one `renameat2(RENAME_EXCHANGE)`; the spare then holds the old seed, which is wiped in
    /// place. A full disk can therefore never stop checkpoints from being signed.
    pub fn store(&self, path: &Path) -> Result<(), JournalError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| JournalError::io(dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| JournalError::io(dir, e))?;
        let text = Zeroizing::new(
            serde_json::to_string(&KeyFile {
                epoch: self.epoch,
                seed: hex::encode(self.seed.as_ref()),
                genesis_public_key: hex::encode(self.genesis_public),
            })
            .map_err(|e| JournalError::KeyFile {
                path: path.to_owned(),
                why: e.to_string(),
            })?,
        );
        // The spare now holds the previous seed (or nothing, after a first store): wipe it in place, which
        // also leaves a spare of the right size for the next store.
        let spare =
            atomic::replace_fixed(path, text.as_bytes(), KEY_FILE_LEN, true).map_err(|err| {
                match err {
                    JournalError::Encode(why) => JournalError::KeyFile {
                        path: path.to_owned(),
                        why,
                    },
                    other => other,
                }
            })?;
        atomic::write_in_place(&spare, &[b' '; KEY_FILE_LEN], true)?;
        Ok(())
    }

    /// Current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The genesis (epoch 0) public key: the trust anchor.
    pub fn genesis_public(&self) -> [u8; 32] {
        self.genesis_public
    }

    /// This epoch's public key.
    pub fn public(&self) -> [u8; 32] {
        SigningKey::from_bytes(&self.seed)
            .verifying_key()
            .to_bytes()
    }

    /// The next epoch's seed.
    fn next_seed(&self) -> Zeroizing<[u8; 32]> {
        let mut h = Sha256::new();
        h.update(EVOLVE_DOMAIN);
        h.update(self.seed.as_ref());
        Zeroizing::new(h.finalize().into())
    }

    /// The next epoch's public key.
    pub fn next_public(&self) -> [u8; 32] {
        SigningKey::from_bytes(&self.next_seed())
            .verifying_key()
            .to_bytes()
    }

    /// The public key of the epoch `n` epochs after this one (the seed is evolved in a scratch copy that is
    /// wiped).
    pub fn public_after(&self, n: u64) -> [u8; 32] {
        let mut seed = Zeroizing::new(*self.seed);
        for _ in 0..n {
            let mut h = Sha256::new();
            h.update(EVOLVE_DOMAIN);
            h.update(seed.as_ref());
            seed = Zeroizing::new(h.finalize().into());
        }
        SigningKey::from_bytes(&seed).verifying_key().to_bytes()
    }

    /// Signs `message` with this epoch's key.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        SigningKey::from_bytes(&self.seed).sign(message).to_bytes()
    }

    /// Moves to the next epoch; the old seed is wiped from memory.
    pub fn evolve(&mut self) {
        self.seed = self.next_seed();
        self.epoch += 1;
    }
}

/// Verifies an Ed25519 signature.
pub fn verify_signature(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    VerifyingKey::from_bytes(public)
        .map(|k| k.verify(message, &Signature::from_bytes(signature)).is_ok())
        .unwrap_or(false)
}

/// Why text is not a public key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublicKeyError {
    /// Not hex digits.
    #[error("public key is not hex")]
    NotHex,
    /// Hex of the wrong length.
    #[error("public key has {0} bytes, expected 32")]
    Length(usize),
}

/// Parses a hex public key.
pub fn parse_public_key(text: &str) -> Result<[u8; 32], PublicKeyError> {
    let bytes = hex::decode(text.trim()).map_err(|_| PublicKeyError::NotHex)?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| PublicKeyError::Length(bytes.len()))
}

/// Size of the key file and its spare: JSON padded with spaces.
pub const KEY_FILE_LEN: usize = 512;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evolution_is_deterministic_and_one_way_verifiable() {
        let mut key = EpochKey::generate().unwrap();
        let genesis = key.public();
        assert_eq!(key.genesis_public(), genesis);
        let next = key.next_public();
        let sig = key.sign(b"m");
        assert!(verify_signature(&genesis, b"m", &sig));
        key.evolve();
        assert_eq!((key.epoch(), key.public()), (1, next));
        assert!(!verify_signature(&next, b"m", &sig));
        assert!(verify_signature(&next, b"n", &key.sign(b"n")));
    }

    #[test]
    fn stores_in_place_and_wipes_the_old_seed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/journal.key");
        let mut key = EpochKey::generate().unwrap();
        key.store(&path).unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        key.evolve();
        key.store(&path).unwrap();
        let spare = std::fs::read(atomic::spare_path(&path)).unwrap();
        assert_eq!(spare, vec![b' '; KEY_FILE_LEN], "the old seed is wiped");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), KEY_FILE_LEN as u64);
        assert_ne!(std::fs::read_to_string(&path).unwrap(), first);
        let loaded = EpochKey::load(&path).unwrap().unwrap();
        assert_eq!((loaded.epoch(), loaded.public()), (1, key.public()));
        let mode = std::fs::metadata(atomic::spare_path(&path))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        // A spare planted as a symlink is never written through.
        std::fs::remove_file(atomic::spare_path(&path)).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, atomic::spare_path(&path)).unwrap();
        key.evolve();
        assert!(key.store(&path).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }

    #[test]
    fn store_and_load_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/journal.key");
        let mut key = EpochKey::generate().unwrap();
        key.evolve();
        key.store(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = EpochKey::load(&path).unwrap().unwrap();
        assert_eq!(
            (loaded.epoch(), loaded.public(), loaded.genesis_public()),
            (1, key.public(), key.genesis_public())
        );
        assert!(EpochKey::load(&dir.path().join("none")).unwrap().is_none());
        std::fs::write(&path, "{").unwrap();
        assert!(
            EpochKey::load(&path)
                .unwrap_err()
                .to_string()
                .contains("journal.key")
        );
    }
}
