//! Tracing the signing keys to a genesis key, after the chain walk: from segment 0's genesis key, or, once
//! retention deleted the journal's start, along the key ladder (`LADDER`) to `ANCHOR`'s key. Also checks that
//! the ladder agrees with the checkpoints (it must lead to the key the last checkpoint committed to), so a
//! damaged ladder is found while the checkpoints that could replace it still exist.

use std::path::Path;

use super::report::{Damage, Trust};
use crate::JournalError;
use crate::chain::ChainState;
use crate::ladder_file;

/// Where the retained chain starts.
pub(super) struct Start {
    /// Sequence number of the first retained record.
    pub seq: u64,
    /// Key epoch of the first checkpoint after it.
    pub epoch: u64,
    /// `ANCHOR`'s public key, when readable.
    pub key: Option<[u8; 32]>,
}

/// What tracing found.
#[derive(Default)]
pub(super) struct Outcome {
    /// How far trust reaches (`None` for a journal without records, or after a problem).
    pub trust: Option<Trust>,
    /// The genesis key traced to.
    pub genesis: Option<[u8; 32]>,
    /// Ladder links followed to `ANCHOR`'s epoch.
    pub links: u64,
    /// Why trust is untraced, or what limits it later.
    pub note: Option<String>,
    /// The problem found.
    pub problem: Option<(Damage, String)>,
}

impl Outcome {
    fn problem(damage: Damage, detail: String) -> Outcome {
        Outcome {
            problem: Some((damage, detail)),
            ..Outcome::default()
        }
    }
}

/// Traces the keys of the journal in `dir`, whose chain walked cleanly from `start` to the state `chain`;
/// `trusted` is the key given with `--pubkey`.
pub(super) fn trace(
    dir: &Path,
    start: &Start,
    chain: &ChainState,
    trusted: Option<[u8; 32]>,
) -> Result<Outcome, JournalError> {
    let loaded = match ladder_file::load(dir, &[start.epoch, chain.epoch]) {
        Ok(loaded) => loaded,
        Err(JournalError::Damaged { why, .. }) => {
            return Ok(Outcome::problem(
                Damage::BadLadder,
                format!("the key ladder is damaged: {why}"),
            ));
        }
        Err(other) => return Err(other),
    };
    let trust = if trusted.is_some() {
        Trust::TrustedKey
    } else {
        Trust::OwnGenesis
    };
    if start.seq == 1 {
        // Segment 0 is retained: the walk checked its genesis key (against the trusted one, if given).
        let Some(genesis) = chain.genesis else {
            return Ok(Outcome::default());
        };
        let mut out = Outcome {
            trust: Some(trust),
            genesis: Some(genesis),
            ..Outcome::default()
        };
        match loaded {
            None => {
                out.note = Some(
                    "there is no key ladder (LADDER): once retention deletes segment 0, the retained \
                     keys cannot be traced to the genesis key"
                        .into(),
                );
            }
            Some((header, _)) if header.genesis != genesis => {
                return Ok(Outcome::problem(
                    Damage::BadLadder,
                    format!(
                        "the key ladder starts from genesis key {}, segment 0 from {}",
                        hex::encode(header.genesis),
                        hex::encode(genesis)
                    ),
                ));
            }
            Some((header, _)) if header.since_epoch > 0 => {
                out.note = Some(format!(
                    "the key ladder starts at epoch {} (the journal is older than key ladders): once \
                     retention deletes segment 0, the retained keys cannot be traced to the genesis key",
                    header.since_epoch
                ));
            }
            Some((_, ladder)) => {
                if let Some(key) = chain.key
                    && let Err(e) = ladder.check(&genesis, chain.epoch, &key)
                {
                    return Ok(Outcome::problem(
                        Damage::BadLadder,
                        format!("the key ladder does not agree with the checkpoints: {e}"),
                    ));
                }
            }
        }
        return Ok(out);
    }
    let untraced = |note: String| Outcome {
        trust: Some(Trust::Untraced),
        problem: trusted.map(|_| {
            (
                Damage::UntracedKey,
                format!("the trusted key cannot be checked: {note}"),
            )
        }),
        note: Some(note),
        ..Outcome::default()
    };
    let Some((header, ladder)) = loaded else {
        return Ok(untraced(format!(
            "retention deleted the records before seq {} and there is no key ladder (LADDER) to trace \
             ANCHOR's key to a genesis key; the signatures are checked from ANCHOR's key only",
            start.seq
        )));
    };
    if header.since_epoch > 0 {
        return Ok(untraced(format!(
            "retention deleted the records before seq {} and the key ladder starts at epoch {}, not at \
             genesis (the journal is older than key ladders, or its ladder was lost); the signatures are \
             checked from ANCHOR's key only",
            start.seq, header.since_epoch
        )));
    }
    if let Some(t) = trusted
        && header.genesis != t
    {
        return Ok(Outcome::problem(
            Damage::UntrustedKey,
            format!(
                "the key ladder starts from genesis key {}, not from the trusted key",
                hex::encode(header.genesis)
            ),
        ));
    }
    let genesis = trusted.unwrap_or(header.genesis);
    let Some(anchor_key) = start.key else {
        return Ok(Outcome::problem(
            Damage::MissingAnchor,
            "ANCHOR's public key is unreadable".into(),
        ));
    };
    if let Err(e) = ladder.check(&genesis, start.epoch, &anchor_key) {
        let (damage, whose) = match trusted {
            Some(_) => (Damage::UntrustedKey, "the trusted key"),
            None => (Damage::BadLadder, "the ladder's genesis key"),
        };
        return Ok(Outcome::problem(
            damage,
            format!(
                "the key ladder does not lead from {whose} to ANCHOR's key at epoch {}: {e}",
                start.epoch
            ),
        ));
    }
    if let Some(key) = chain.key
        && let Err(e) = ladder.check(&genesis, chain.epoch, &key)
    {
        return Ok(Outcome::problem(
            Damage::BadLadder,
            format!("the key ladder does not agree with the checkpoints: {e}"),
        ));
    }
    Ok(Outcome {
        trust: Some(trust),
        genesis: Some(genesis),
        links: ladder_file::path(&ladder, start.epoch).len() as u64,
        ..Outcome::default()
    })
}
