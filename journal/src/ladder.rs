//! The key ladder: signed links from the genesis public key to a later epoch's public key, kept beside the
//! anchor so that a chain whose first records (and their checkpoints) were deleted by retention can still be
//! traced back to the host's genesis key.
//!
//! A [`KeyLink`] is signed by the key of epoch `from` and names the public key of epoch `to`. The agent
//! writes a step link (`to = from + 1`) with every checkpoint, and at every epoch that is a multiple of
//! [`SKIP`] also a skip link to epoch `from + SKIP` (it can derive that key: seeds evolve forward
//! deterministically). A ladder therefore needs at most `epoch / SKIP` skip links plus fewer than `SKIP` step
//! links: [`KeyLadder::push`] drops the step links a skip link makes redundant.
//!
//! Trust: a link can only be made by whoever holds the seed of its `from` epoch. Whoever takes the host at
//! epoch `E` holds seed `E` (and can derive later ones), never an earlier one, so links that end at or before
//! `E` cannot be forged.

use serde::{Deserialize, Serialize};

use crate::keys::{EpochKey, verify_signature};

/// Epoch distance of a skip link.
pub const SKIP: u64 = 1024;
/// Domain separation of the signed link message.
const LINK_DOMAIN: &[u8] = b"auditloop/journal/key-link/v1";

/// One signed link: epoch `from`'s key vouches for epoch `to`'s public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyLink {
    /// The signing epoch.
    pub from: u64,
    /// The epoch whose public key this link names (`from + 1` or `from + SKIP`).
    pub to: u64,
    /// Epoch `to`'s public key.
    #[serde(with = "hex32")]
    pub public_key: [u8; 32],
    /// Ed25519 signature by epoch `from`'s key over [`KeyLink::message`].
    #[serde(with = "hex64")]
    pub signature: [u8; 64],
}

impl KeyLink {
    /// The message a link signs.
    pub fn message(from: u64, to: u64, public_key: &[u8; 32]) -> Vec<u8> {
        let mut m = Vec::with_capacity(LINK_DOMAIN.len() + 48);
        m.extend_from_slice(LINK_DOMAIN);
        m.extend_from_slice(&from.to_le_bytes());
        m.extend_from_slice(&to.to_le_bytes());
        m.extend_from_slice(public_key);
        m
    }

    /// The step link from `key`'s epoch to the next.
    pub fn step(key: &EpochKey) -> KeyLink {
        KeyLink::signed(key, key.epoch() + 1, key.next_public())
    }

    /// The skip link from `key`'s epoch to `SKIP` epochs later.
    pub fn skip(key: &EpochKey) -> KeyLink {
        KeyLink::signed(key, key.epoch() + SKIP, key.public_after(SKIP))
    }

    fn signed(key: &EpochKey, to: u64, public_key: [u8; 32]) -> KeyLink {
        let from = key.epoch();
        KeyLink {
            from,
            to,
            public_key,
            signature: key.sign(&KeyLink::message(from, to, &public_key)),
        }
    }

    /// Whether `signer` (epoch `from`'s public key) made this link.
    pub fn verifies_with(&self, signer: &[u8; 32]) -> bool {
        self.to > self.from
            && verify_signature(
                signer,
                &KeyLink::message(self.from, self.to, &self.public_key),
                &self.signature,
            )
    }
}

/// Why a ladder does not lead from the genesis key to an epoch's key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LadderError {
    /// No link continues from `at` towards the target epoch.
    #[error("the key ladder has no link from epoch {at} towards epoch {target}")]
    Missing {
        /// The epoch reached.
        at: u64,
        /// The epoch sought.
        target: u64,
    },
    /// A link's signature does not verify with the key it continues from.
    #[error("the key ladder's link from epoch {from} to {to} is not signed by epoch {from}'s key")]
    BadSignature {
        /// Signing epoch.
        from: u64,
        /// Named epoch.
        to: u64,
    },
    /// The ladder reaches the target epoch with another key than the one claimed.
    #[error("the key ladder gives epoch {epoch} another public key than the one claimed")]
    WrongKey {
        /// The epoch.
        epoch: u64,
    },
}

/// The links from genesis to the latest epoch, in order of `from`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyLadder {
    /// Skip links, then the step links since the last skip point.
    pub links: Vec<KeyLink>,
}

impl KeyLadder {
    /// Adds `link` and drops the step links that skip links already span.
    pub fn push(&mut self, link: KeyLink) {
        self.links.push(link);
        let reach = self.skip_reach();
        self.links
            .retain(|l| l.to - l.from == SKIP || l.from >= reach);
        self.links.sort_by_key(|l| (l.from, l.to));
        self.links.dedup_by_key(|l| (l.from, l.to));
    }

    /// Highest epoch, not past the latest signing epoch, that skip links reach contiguously from genesis.
    fn skip_reach(&self) -> u64 {
        let latest = self.links.iter().map(|l| l.from).max().unwrap_or(0);
        let mut at = 0;
        while at + SKIP <= latest && self.links.iter().any(|l| l.from == at && l.to == at + SKIP) {
            at += SKIP;
        }
        at
    }

    /// Epoch `target`'s public key, followed from `genesis` along verified links (the longest hop that does
    /// not pass `target` at each step).
    pub fn resolve(&self, genesis: &[u8; 32], target: u64) -> Result<[u8; 32], LadderError> {
        let (mut at, mut key) = (0u64, *genesis);
        while at < target {
            let link = self
                .links
                .iter()
                .filter(|l| l.from == at && l.to <= target)
                .max_by_key(|l| l.to)
                .ok_or(LadderError::Missing { at, target })?;
            if !link.verifies_with(&key) {
                return Err(LadderError::BadSignature {
                    from: link.from,
                    to: link.to,
                });
            }
            (at, key) = (link.to, link.public_key);
        }
        Ok(key)
    }

    /// Checks that epoch `epoch`'s key is `claimed`, traced from `genesis`.
    pub fn check(
        &self,
        genesis: &[u8; 32],
        epoch: u64,
        claimed: &[u8; 32],
    ) -> Result<(), LadderError> {
        if self.resolve(genesis, epoch)? == *claimed {
            Ok(())
        } else {
            Err(LadderError::WrongKey { epoch })
        }
    }
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

mod hex64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 64];
        hex::decode_to_slice(text, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> EpochKey {
        let seed = [7u8; 32];
        let genesis = EpochKey::from_seed(0, seed, [0; 32]).public();
        EpochKey::from_seed(0, seed, genesis)
    }

    #[test]
    fn steps_and_skips_lead_from_genesis_and_stay_small() {
        let mut k = key();
        let genesis = k.public();
        let mut ladder = KeyLadder::default();
        for _ in 0..(2 * SKIP + 10) {
            if k.epoch().is_multiple_of(SKIP) {
                ladder.push(KeyLink::skip(&k));
            }
            ladder.push(KeyLink::step(&k));
            k.evolve();
        }
        assert!(ladder.links.len() <= 3 + 10 + 1, "{}", ladder.links.len());
        let target = k.epoch();
        assert_eq!(ladder.resolve(&genesis, target), Ok(k.public()));
        assert_eq!(ladder.check(&genesis, target, &k.public()), Ok(()));
        assert_eq!(
            ladder.check(&genesis, target, &[1; 32]),
            Err(LadderError::WrongKey { epoch: target })
        );
        let other = EpochKey::from_seed(0, [8; 32], [0; 32]).public();
        assert!(matches!(
            ladder.resolve(&other, target),
            Err(LadderError::BadSignature { from: 0, .. })
        ));
    }

    #[test]
    fn a_gap_or_a_forged_link_is_refused() {
        let mut k = key();
        let genesis = k.public();
        let mut ladder = KeyLadder::default();
        ladder.push(KeyLink::step(&k));
        k.evolve();
        k.evolve();
        ladder.push(KeyLink::step(&k));
        assert_eq!(
            ladder.resolve(&genesis, 3),
            Err(LadderError::Missing { at: 1, target: 3 })
        );
        let mut forged = ladder.clone();
        forged.links[0].public_key = [9; 32];
        assert!(matches!(
            forged.resolve(&genesis, 1),
            Err(LadderError::BadSignature { from: 0, to: 1 })
        ));
        let json = serde_json::to_string(&ladder).unwrap();
        assert_eq!(serde_json::from_str::<KeyLadder>(&json).unwrap(), ladder);
    }
}
