//! `LADDER`, the key ladder's side file: every [`KeyLink`] the writer signed, so that the key of any retained
//! epoch can be traced back to the genesis key after retention deleted the checkpoints that led to it.
//!
//! Layout (binary, little-endian): a header (`ALJK`, format version `u32`, `since_epoch: u64`, the genesis
//! public key), then fixed-size link records (`from: u64`, `to: u64`, public key, signature, and an 8-byte
//! check: the first bytes of `SHA-256("auditloop/journal/ladder-record/v1" ‖ the 112 bytes before it)`).
//! `since_epoch` is the first epoch the file has links from: 0 for a journal created with a ladder, the epoch
//! at which a journal written before key ladders got one (its earlier links were never made and cannot be).
//!
//! Durability: links are appended and `fdatasync`ed before the checkpoint they accompany is written, so a
//! durable checkpoint always has its link (a crash in between leaves a link whose checkpoint is signed again
//! later; the link is then appended again, identically, since Ed25519 signatures are deterministic). A
//! record cut short by a crash is not damage (nothing depended on it) and is cut when the writer opens the
//! file. The file is created and compacted through a temporary file that is synced and renamed into place,
//! and space for the next links is allocated ahead, so a full disk does not stop checkpoints. Any other
//! irregularity (a bad header or check, links out of order, two different links for the same epochs) is
//! damage and is reported, never skipped.

mod writer;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::JournalError;
use crate::ladder::{KeyLadder, KeyLink, SKIP};
pub use writer::{LadderReset, LadderWriter};

/// Name of the ladder file in a journal directory.
pub const LADDER_FILE: &str = "LADDER";
/// First bytes of the ladder file.
const MAGIC: [u8; 4] = *b"ALJK";
/// Format version following the magic.
const VERSION: u32 = 1;
/// Bytes of the header.
pub const HEADER_LEN: usize = 4 + 4 + 8 + 32;
/// Bytes of one link record.
pub const LINK_LEN: usize = 8 + 8 + 32 + 64 + 8;
/// Domain separation of a record's check.
const CHECK_DOMAIN: &[u8] = b"auditloop/journal/ladder-record/v1";
/// Bytes allocated ahead of the end of the file (about 540 links).
pub(crate) const AHEAD: u64 = 64 * 1024;

/// The ladder file of a journal directory.
pub fn ladder_path(dir: &Path) -> PathBuf {
    dir.join(LADDER_FILE)
}

/// Where a new ladder file is written before it is renamed into place.
pub(crate) fn new_path(dir: &Path) -> PathBuf {
    dir.join(format!("{LADDER_FILE}.new"))
}

/// What the header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LadderHeader {
    /// First epoch the file has links from.
    pub since_epoch: u64,
    /// The genesis public key the links start from.
    pub genesis: [u8; 32],
}

/// A ladder file read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LadderRead {
    /// Its header.
    pub header: LadderHeader,
    /// The links the caller kept, in file order (exact duplicates dropped).
    pub links: Vec<KeyLink>,
    /// Whole link records in the file.
    pub records: u64,
    /// Bytes of a last record cut short (a crash during an append; not damage).
    pub torn_bytes: u64,
}

pub(crate) fn damaged(path: &Path, why: String) -> JournalError {
    JournalError::Damaged {
        path: path.to_owned(),
        why,
    }
}

pub(crate) fn encode_header(header: &LadderHeader) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[..4].copy_from_slice(&MAGIC);
    out[4..8].copy_from_slice(&VERSION.to_le_bytes());
    out[8..16].copy_from_slice(&header.since_epoch.to_le_bytes());
    out[16..].copy_from_slice(&header.genesis);
    out
}

pub(crate) fn decode_header(
    path: &Path,
    bytes: &[u8; HEADER_LEN],
) -> Result<LadderHeader, JournalError> {
    if bytes[..4] != MAGIC || bytes[4..8] != VERSION.to_le_bytes() {
        return Err(damaged(path, "bad magic or version".into()));
    }
    let mut since = [0u8; 8];
    since.copy_from_slice(&bytes[8..16]);
    let mut genesis = [0u8; 32];
    genesis.copy_from_slice(&bytes[16..]);
    Ok(LadderHeader {
        since_epoch: u64::from_le_bytes(since),
        genesis,
    })
}

fn check_of(body: &[u8]) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(CHECK_DOMAIN);
    h.update(body);
    let digest = h.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

pub(crate) fn encode_link(link: &KeyLink) -> [u8; LINK_LEN] {
    let mut out = [0u8; LINK_LEN];
    out[..8].copy_from_slice(&link.from.to_le_bytes());
    out[8..16].copy_from_slice(&link.to.to_le_bytes());
    out[16..48].copy_from_slice(&link.public_key);
    out[48..112].copy_from_slice(&link.signature);
    let check = check_of(&out[..112]);
    out[112..].copy_from_slice(&check);
    out
}

/// Decodes a link record; `None` when its check does not match.
fn decode_link(bytes: &[u8; LINK_LEN]) -> Option<KeyLink> {
    if check_of(&bytes[..112]) != bytes[112..] {
        return None;
    }
    let mut from = [0u8; 8];
    from.copy_from_slice(&bytes[..8]);
    let mut to = [0u8; 8];
    to.copy_from_slice(&bytes[8..16]);
    let mut public_key = [0u8; 32];
    public_key.copy_from_slice(&bytes[16..48]);
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&bytes[48..112]);
    Some(KeyLink {
        from: u64::from_le_bytes(from),
        to: u64::from_le_bytes(to),
        public_key,
        signature,
    })
}

/// Whether `link` spans [`SKIP`] epochs from a multiple of it.
pub fn is_skip(link: &KeyLink) -> bool {
    link.from.is_multiple_of(SKIP) && link.to == link.from + SKIP
}

/// Reads the ladder file of `dir`, checking every record, and keeps the links `keep` selects (so that
/// memory stays bounded whatever the file's size). `None` when there is no ladder file.
pub fn read(
    dir: &Path,
    mut keep: impl FnMut(&KeyLink) -> bool,
) -> Result<Option<LadderRead>, JournalError> {
    let path = ladder_path(dir);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(JournalError::io(&path, e)),
    };
    let mut reader = std::io::BufReader::with_capacity(256 * 1024, file);
    let mut head = [0u8; HEADER_LEN];
    if read_full(&mut reader, &mut head, &path)? < HEADER_LEN {
        return Err(damaged(&path, "shorter than its header".into()));
    }
    let header = decode_header(&path, &head)?;
    let mut out = LadderRead {
        header,
        links: Vec::new(),
        records: 0,
        torn_bytes: 0,
    };
    // Links of the current `from` epoch, to tell an identical repeat from a conflicting one.
    let mut group: Vec<KeyLink> = Vec::new();
    let mut record = [0u8; LINK_LEN];
    loop {
        let offset = HEADER_LEN as u64 + out.records * LINK_LEN as u64;
        let n = read_full(&mut reader, &mut record, &path)?;
        if n < LINK_LEN {
            out.torn_bytes = n as u64;
            break;
        }
        let at = |why: &str| damaged(&path, format!("link record at offset {offset}: {why}"));
        let link = decode_link(&record).ok_or_else(|| at("check does not match"))?;
        if link.to != link.from + 1 && !is_skip(&link) {
            return Err(at(&format!(
                "links epoch {} to {}, neither the next epoch nor a skip",
                link.from, link.to
            )));
        }
        if link.from < out.header.since_epoch {
            return Err(at(&format!(
                "links from epoch {}, before the file's first epoch {}",
                link.from, out.header.since_epoch
            )));
        }
        match group.first() {
            Some(first) if link.from < first.from => {
                return Err(at(&format!(
                    "links from epoch {} after links from epoch {}",
                    link.from, first.from
                )));
            }
            Some(first) if link.from > first.from => group.clear(),
            _ => {}
        }
        out.records += 1;
        if let Some(same) = group.iter().find(|l| l.to == link.to) {
            if *same != link {
                return Err(at(&format!(
                    "a second, different link from epoch {} to {}",
                    link.from, link.to
                )));
            }
            continue;
        }
        if keep(&link) {
            out.links.push(link.clone());
        }
        group.push(link);
    }
    Ok(Some(out))
}

/// Reads into `buf` until it is full or the file ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8], path: &Path) -> Result<usize, JournalError> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(JournalError::io(path, e)),
        }
    }
    Ok(n)
}

/// Whether the links that reach epoch `target` need `link`: every skip link up to it, and the step links
/// from the last multiple of [`SKIP`] at or below it.
pub fn needed_for(link: &KeyLink, target: u64) -> bool {
    link.to <= target && (is_skip(link) || link.from >= target / SKIP * SKIP)
}

/// The ladder file's header and the links needed to reach each epoch of `targets` (see [`needed_for`]),
/// every record checked; `None` without a ladder file.
pub fn load(
    dir: &Path,
    targets: &[u64],
) -> Result<Option<(LadderHeader, KeyLadder)>, JournalError> {
    Ok(read(dir, |l| targets.iter().any(|&t| needed_for(l, t)))?
        .map(|r| (r.header, KeyLadder { links: r.links })))
}

/// The links [`KeyLadder::resolve`] would follow from epoch 0 towards `target`, without checking
/// signatures (the longest hop that does not pass `target` at each step); stops where no link continues.
pub fn path(ladder: &KeyLadder, target: u64) -> Vec<KeyLink> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < target {
        let Some(link) = ladder
            .links
            .iter()
            .filter(|l| l.from == at && l.to <= target)
            .max_by_key(|l| l.to)
        else {
            break;
        };
        at = link.to;
        out.push(link.clone());
    }
    out
}

#[cfg(test)]
mod tests;
