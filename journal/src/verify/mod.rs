//! Verifying a journal: every record's hash and link, sequence continuity, segment order and starts,
//! checkpoint signatures and key evolution, and the `ANCHOR`/`HEAD` bounds. Stops at the first problem and
//! names it (segment, offset, sequence number, kind of damage). Then says what the clean chain proves: how
//! long its unsigned tail is, whether `HEAD` agrees, and how far its keys are traced to a genesis key
//! (through the key ladder after retention). It never reports a trust it did not check.

mod report;
mod trust;

use std::path::Path;

use crate::JournalError;
use crate::chain::{Accepted, ChainState, TAG_SEGMENT_START};
use crate::files::{self, Anchor, Head, parse_hash};
use crate::keys::parse_public_key;
use crate::record::{
    FORMAT_VERSION, FrameError, Payload, PayloadError, SEGMENT_HEADER_LEN, SEGMENT_MAGIC,
    decode_payload, read_frame,
};
pub use report::{Damage, HeadState, Problem, Report, Trust, Unproven};

/// How to verify.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// The trusted genesis public key (from `auditloop key show`); without it the journal's own genesis key
    /// is trusted, which proves integrity but not authorship.
    pub trusted_public_key: Option<[u8; 32]>,
    /// Also decode every event payload (slower; hashes already cover their bytes).
    pub deep: bool,
}

/// The time a record states (an event's time, a segment start's creation); `None` for a checkpoint.
fn payload_time(payload: &[u8]) -> Result<Option<u64>, PayloadError> {
    Ok(match decode_payload(payload)? {
        Payload::Event(event) => Some(event.time.0),
        Payload::SegmentStart(start) => Some(start.created_ns),
        Payload::Checkpoint(_) => None,
    })
}

/// The journal's last record so far, for the time the unsigned tail ends at.
#[derive(Clone, Copy)]
enum Last {
    /// No record, or a checkpoint (no unsigned tail).
    Signed,
    /// A record with this time.
    At(u64),
    /// An event of the current segment, decoded at the segment's end: offset of its frame, payload range.
    Event(usize, usize, usize),
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
    let anchor_key = parse_public_key(&anchor.public_key).ok();
    let mut st = ChainState::anchored(
        anchor.seq,
        parse_hash(&anchor.prev_hash).unwrap_or([0xff; 32]),
        anchor.epoch,
        if anchor.seq == 1 { None } else { anchor_key },
    );
    let mut head_seen = false;
    // Time of the first record after the last checkpoint, and what the last record is.
    let mut tail_first_ns: Option<u64> = None;
    let mut last = Last::Signed;
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
                    if tail_first_ns.is_none() {
                        // The first unsigned record: its time starts the unsigned tail.
                        match payload_time(payload) {
                            Ok(time) => tail_first_ns = time,
                            Err(why) => {
                                report.problem = Some(here(Damage::BadPayload, why.to_string()));
                                return Ok(report);
                            }
                        }
                    }
                    let at = off + (rec.len - rec.payload.len() - 32);
                    last = Last::Event(off, at, at + rec.payload.len());
                    report.events += 1;
                }
                Ok(Accepted::SegmentStart(start)) => {
                    tail_first_ns.get_or_insert(start.created_ns);
                    last = Last::At(start.created_ns);
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
                Ok(Accepted::Checkpoint(_)) => {
                    tail_first_ns = None;
                    last = Last::Signed;
                    report.checkpoints += 1;
                }
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
        if let Last::Event(frame, from, to) = last {
            match payload_time(&bytes[from..to]) {
                Ok(time) => last = time.map_or(Last::Signed, Last::At),
                Err(why) => {
                    report.problem = Some(problem(
                        &name,
                        frame as u64,
                        report.last_seq,
                        Damage::BadPayload,
                        why.to_string(),
                    ));
                    return Ok(report);
                }
            }
        }
        done += bytes.len() as u64;
        progress(done, total);
    }
    if let Some(h) = &head
        && !head_seen
        && h.seq >= anchor.seq
    {
        (report.head, report.head_seq) = (Some(HeadState::Beyond), Some(h.seq));
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
    report.last_checkpoint_seq = st.last_checkpoint_seq;
    report.unsigned_tail = report
        .last_seq
        .saturating_sub(st.last_checkpoint_seq.max(anchor.seq.saturating_sub(1)));
    if report.unsigned_tail > 0
        && let (Some(first), Last::At(end)) = (tail_first_ns, last)
    {
        report.unsigned_tail_secs = end.saturating_sub(first) as f64 / 1e9;
    }
    (report.head, report.head_seq) = head_state(dir, head.as_ref(), &report);
    let start_key = if anchor.seq == 1 {
        st.genesis
    } else {
        anchor_key
    };
    report.public_key = start_key.map(hex::encode).unwrap_or_default();
    let start = trust::Start {
        seq: anchor.seq,
        epoch: anchor.epoch,
        key: anchor_key,
    };
    let traced = trust::trace(dir, &start, &st, opts.trusted_public_key)?;
    report.trust = traced.trust;
    report.genesis_public_key = traced.genesis.map(hex::encode).unwrap_or_default();
    report.ladder_links = traced.links;
    report.trust_note = traced.note;
    if let Some((damage, detail)) = traced.problem {
        let file = if damage == Damage::MissingAnchor {
            "ANCHOR"
        } else {
            crate::ladder_file::LADDER_FILE
        };
        report.problem = Some(problem(file, 0, anchor.seq, damage, detail));
    }
    Ok(report)
}

/// `HEAD` against the walked chain: `head` was read before the walk (its hash was checked there). When it
/// is behind the last checkpoint, `HEAD` is read again: a running agent may have appended and synced a
/// checkpoint, then moved `HEAD`, while the walk read the segments.
fn head_state(
    dir: &Path,
    head: Option<&Head>,
    report: &Report,
) -> (Option<HeadState>, Option<u64>) {
    let seq = match head {
        Some(h) if h.seq >= report.last_checkpoint_seq => Some(h.seq),
        first => {
            let again: Option<Head> = files::read_json(&files::head_path(dir)).unwrap_or(None);
            match (first, again) {
                (Some(h), Some(again)) => Some(h.seq.max(again.seq)),
                (Some(h), None) => Some(h.seq),
                (None, again) => again.map(|h| h.seq),
            }
        }
    };
    let state = match seq {
        None => HeadState::Missing,
        // Past the end only when `HEAD` moved during the walk: the journal grew.
        Some(s) if s >= report.last_seq => HeadState::Ok,
        Some(_) => HeadState::Behind,
    };
    (Some(state), seq)
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
