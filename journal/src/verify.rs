//! Verifying a journal: every record's hash and link, sequence continuity, segment order and starts,
//! checkpoint signatures and key evolution, and the `ANCHOR`/`HEAD` bounds. Stops at the first problem and
//! names it (segment, offset, sequence number, kind of damage).

use std::path::Path;

use serde::Serialize;

use crate::JournalError;
use crate::chain::{Accepted, ChainState, TAG_SEGMENT_START};
pub use crate::damage::Damage;
use crate::files::{self, Anchor, Head, parse_hash};
use crate::keys::parse_public_key;
use crate::record::{
    FORMAT_VERSION, FrameError, SEGMENT_HEADER_LEN, SEGMENT_MAGIC, decode_payload, read_frame,
};

/// How to verify.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// The trusted genesis public key (from `auditloop key show`); without it the journal's own genesis key
    /// is trusted, which proves integrity but not authorship.
    pub trusted_public_key: Option<[u8; 32]>,
    /// Also decode every event payload (slower; hashes already cover their bytes).
    pub deep: bool,
}

/// The first problem found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Segment file name.
    pub segment: String,
    /// Byte offset of the bad record (or of the end, for truncation).
    pub offset: u64,
    /// Sequence number expected at that place.
    pub seq: u64,
    /// What is wrong.
    pub damage: Damage,
    /// Details.
    pub detail: String,
}

/// What verification found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Segments read.
    pub segments: u64,
    /// Records verified.
    pub records: u64,
    /// Event records among them.
    pub events: u64,
    /// Checkpoints verified.
    pub checkpoints: u64,
    /// First sequence number.
    pub first_seq: u64,
    /// Last verified sequence number.
    pub last_seq: u64,
    /// Records after the last checkpoint (not yet signed).
    pub unsigned_tail: u64,
    /// A last segment that holds no complete record beyond what `HEAD` says is durable: a start that
    /// was interrupted before its first record was written (the agent removes it at its next start). Not
    /// damage: no durable record is missing.
    pub interrupted_start: Option<String>,
    /// The last segment ends in a record cut short beyond what `HEAD` says is durable: a crash or kill
    /// during a write (the agent cuts it at its next start and journals `journal_recovered`). Not damage:
    /// no durable record is missing, and no byte of the cut record is trusted.
    pub torn_tail: Option<String>,
    /// The key signatures were verified from (hex): the trusted or genesis key, or `ANCHOR`'s after
    /// retention.
    pub public_key: String,
    /// The first problem, if any.
    pub problem: Option<Problem>,
}

impl Report {
    /// Whether the journal verified.
    pub fn is_clean(&self) -> bool {
        self.problem.is_none()
    }
}

/// Verifies the journal in `dir`; `progress(done, total)` is called with bytes read.
pub fn verify(
    dir: &Path,
    opts: &VerifyOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, JournalError> {
    let mut report = Report::default();
    let problem = |segment: &str, offset: u64, seq: u64, damage: Damage, detail: String| Problem {
        segment: segment.to_owned(),
        offset,
        seq,
        damage,
        detail,
    };
    let anchor: Option<Anchor> = files::read_json(&files::anchor_path(dir)).unwrap_or(None);
    let Some(anchor) = anchor else {
        report.problem = Some(problem(
            "ANCHOR",
            0,
            1,
            Damage::MissingAnchor,
            "ANCHOR missing or unreadable".into(),
        ));
        return Ok(report);
    };
    let head: Option<Head> = files::read_json(&files::head_path(dir)).unwrap_or(None);
    let segments = files::list_segments(dir)?;
    if segments.is_empty() {
        report.problem = Some(problem(
            "-",
            0,
            anchor.seq,
            Damage::Empty,
            "no segment files".into(),
        ));
        return Ok(report);
    }
    let total: u64 = segments
        .iter()
        .filter_map(|(_, p)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let mut done = 0u64;
    let mut st = ChainState::anchored(
        anchor.seq,
        parse_hash(&anchor.prev_hash).unwrap_or([0xff; 32]),
        anchor.epoch,
        if anchor.seq == 1 {
            None
        } else {
            parse_public_key(&anchor.public_key).ok()
        },
    );
    let mut head_seen = false;
    report.first_seq = anchor.seq;
    let mut last_name = String::new();
    let mut last_len = 0u64;
    let last_index = segments.last().map(|(i, _)| *i);
    for (index, path) in &segments {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = SegmentBytes::open(path)?;
        let bytes: &[u8] = &bytes;
        report.segments += 1;
        (last_name, last_len) = (name.clone(), bytes.len() as u64);
        if bytes.get(..4) != Some(&SEGMENT_MAGIC[..])
            || bytes.get(4..8) != Some(&FORMAT_VERSION.to_le_bytes()[..])
        {
            report.problem = Some(problem(
                &name,
                0,
                st.next_seq,
                Damage::BadHeader,
                "bad magic or version".into(),
            ));
            return Ok(report);
        }
        let hashes_ok = hash_checks(bytes);
        let mut ordinal = 0usize;
        let mut off = SEGMENT_HEADER_LEN;
        let mut first_in_segment = true;
        while off < bytes.len() {
            let expected = st.next_seq;
            let here = |damage: Damage, detail: String| {
                problem(&name, off as u64, expected, damage, detail)
            };
            // A last segment whose first record is cut short, with no durable record missing: a start
            // interrupted before its first record was written.
            let interrupted = first_in_segment
                && Some(*index) == last_index
                && head.as_ref().is_none_or(|h| h.seq < st.next_seq);
            let rec = match read_frame(&bytes[off..]) {
                Ok(r) => r,
                Err(_) if interrupted => {
                    report.interrupted_start = Some(name.clone());
                    break;
                }
                Err(FrameError::TooLong(n)) => {
                    report.problem = Some(here(Damage::BadLength, format!("length field {n}")));
                    return Ok(report);
                }
                Err(e @ FrameError::Torn { .. })
                    if Some(*index) == last_index
                        && head.as_ref().is_none_or(|h| h.seq < st.next_seq) =>
                {
                    report.torn_tail = Some(format!("{name} at offset {off}: {e}"));
                    break;
                }
                Err(e) => {
                    report.problem = Some(here(Damage::Torn, e.to_string()));
                    return Ok(report);
                }
            };
            let hash_ok = hashes_ok
                .get(ordinal)
                .copied()
                .unwrap_or_else(|| rec.hash_ok());
            ordinal += 1;
            let tag = rec.payload.first().copied();
            if hash_ok
                && rec.seq == st.next_seq
                && rec.prev_hash == st.last_hash
                && first_in_segment != (tag == Some(TAG_SEGMENT_START))
            {
                report.problem = Some(here(
                    Damage::BadSegmentStart,
                    "a segment must start with exactly one segment start".into(),
                ));
                return Ok(report);
            }
            match st.accept(&rec, hash_ok) {
                Ok(Accepted::Event(payload)) => {
                    if opts.deep
                        && let Err(why) = decode_payload(payload)
                    {
                        report.problem = Some(here(Damage::BadPayload, why.to_string()));
                        return Ok(report);
                    }
                    report.events += 1;
                }
                Ok(Accepted::SegmentStart(start)) => {
                    if start.index != *index {
                        report.problem = Some(here(
                            Damage::BadSegmentStart,
                            format!("segment start says index {}", start.index),
                        ));
                        return Ok(report);
                    }
                    if rec.seq == 1
                        && opts.trusted_public_key.is_some()
                        && opts.trusted_public_key != start.genesis_public_key
                    {
                        report.problem = Some(here(
                            Damage::UntrustedKey,
                            "genesis key is not the trusted key".into(),
                        ));
                        return Ok(report);
                    }
                }
                Ok(Accepted::Checkpoint(_)) => report.checkpoints += 1,
                Err(e) => {
                    report.problem = Some(here(e.damage, e.detail));
                    return Ok(report);
                }
            }
            if let Some(h) = &head
                && rec.seq == h.seq
            {
                if parse_hash(&h.hash) != Some(rec.hash) {
                    report.problem = Some(here(
                        Damage::HeadMismatch,
                        "HEAD names another record at this seq".into(),
                    ));
                    return Ok(report);
                }
                head_seen = true;
            }
            first_in_segment = false;
            report.records += 1;
            report.last_seq = rec.seq;
            off += rec.len;
        }
        if first_in_segment
            && Some(*index) == last_index
            && head.as_ref().is_none_or(|h| h.seq < st.next_seq)
        {
            report.interrupted_start = Some(name.clone());
        } else if first_in_segment {
            report.problem = Some(problem(
                &name,
                off as u64,
                st.next_seq,
                Damage::BadSegmentStart,
                "segment has no records".into(),
            ));
            return Ok(report);
        }
        done += bytes.len() as u64;
        progress(done, total);
    }
    if let Some(h) = &head
        && !head_seen
        && h.seq >= anchor.seq
    {
        report.problem = Some(problem(
            &last_name,
            last_len,
            st.next_seq,
            Damage::Truncated,
            format!(
                "journal ends at seq {}, HEAD records seq {} as durable",
                report.last_seq, h.seq
            ),
        ));
        return Ok(report);
    }
    report.unsigned_tail = report
        .last_seq
        .saturating_sub(st.last_checkpoint_seq.max(anchor.seq.saturating_sub(1)));
    report.public_key = opts
        .trusted_public_key
        .or(st.key)
        .map(hex::encode)
        .unwrap_or_default();
    Ok(report)
}

/// A segment's bytes: memory-mapped when large (no copy), read otherwise.
enum SegmentBytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl SegmentBytes {
    const MAP_ABOVE: u64 = 8 * 1024 * 1024;

    fn open(path: &Path) -> Result<SegmentBytes, JournalError> {
        let file = std::fs::File::open(path).map_err(|e| JournalError::io(path, e))?;
        let len = file
            .metadata()
            .map_err(|e| JournalError::io(path, e))?
            .len();
        if len > SegmentBytes::MAP_ABOVE {
            // SAFETY: segments are append-only while the agent runs (only a torn tail is cut, at agent start);
            // the mapping covers the length at this moment and is only read.
            let map =
                unsafe { memmap2::Mmap::map(&file) }.map_err(|e| JournalError::io(path, e))?;
            return Ok(SegmentBytes::Mapped(map));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        std::io::Read::read_to_end(&mut &file, &mut bytes)
            .map_err(|e| JournalError::io(path, e))?;
        Ok(SegmentBytes::Read(bytes))
    }
}

impl std::ops::Deref for SegmentBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            SegmentBytes::Mapped(map) => map,
            SegmentBytes::Read(bytes) => bytes,
        }
    }
}

/// Checks the stored hash of every whole frame of a segment, on all cores (the hashes are independent;
/// links and order are checked sequentially afterwards). Stops at the first frame that does not parse.
fn hash_checks(bytes: &[u8]) -> Vec<bool> {
    let check = |off: usize| {
        bytes
            .get(off..)
            .and_then(|b| read_frame(b).ok())
            .is_some_and(|r| r.hash_ok())
    };
    let mut offsets = Vec::new();
    let mut off = SEGMENT_HEADER_LEN;
    while let Some(Ok(rec)) = bytes.get(off..).map(read_frame) {
        offsets.push(off);
        off += rec.len;
    }
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if workers < 2 || offsets.len() < 4096 {
        return offsets.iter().map(|&o| check(o)).collect();
    }
    let chunk = offsets.len().div_ceil(workers);
    std::thread::scope(|s| {
        let handles: Vec<_> = offsets
            .chunks(chunk)
            .map(|part| {
                (
                    part.len(),
                    s.spawn(move || part.iter().map(|&o| check(o)).collect::<Vec<bool>>()),
                )
            })
            .collect();
        // A failed worker cannot vouch for its records: they count as mismatches, keeping positions aligned.
        handles
            .into_iter()
            .flat_map(|(len, h)| h.join().unwrap_or_else(|_| vec![false; len]))
            .collect()
    })
}
