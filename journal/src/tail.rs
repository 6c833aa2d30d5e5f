//! Following a journal while it is written: whole frames, in order, from a sequence number up to the durable
//! head (`HEAD`), across segment rotations. The shipper reads its batches with this; the journal is the spool,
//! so nothing is copied anywhere else first.
//!
//! Only records at or below `HEAD` are returned: they are complete and `fdatasync`ed, so a crash can never
//! take back a record that was already shipped.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::JournalError;
use crate::files::{self, Anchor, Head, parse_hash};
use crate::record::{FRAME_OVERHEAD, Hash, MAX_PAYLOAD, SEGMENT_HEADER_LEN, read_frame};

/// Bytes read from a segment at a time.
const READ_CHUNK: usize = 1024 * 1024;

/// Where the retained journal starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    /// Sequence number of the first retained record.
    pub seq: u64,
    /// Its `prev_hash`.
    pub prev_hash: Hash,
    /// Key epoch of the next checkpoint after it.
    pub epoch: u64,
    /// That epoch's public key.
    pub public_key: [u8; 32],
}

/// A reader that follows a journal directory.
pub struct Tail {
    dir: PathBuf,
    index: u64,
    file: File,
    path: PathBuf,
    offset: u64,
    next_seq: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl Tail {
    /// Positions at record `seq`. Fails with [`JournalError::Damaged`] when `seq` is below the first retained
    /// record (see [`retained_start`]) or the journal has no segment.
    pub fn open(dir: &Path, seq: u64) -> Result<Tail, JournalError> {
        let segments = files::list_segments(dir)?;
        let mut chosen = None;
        for (index, path) in &segments {
            match files::first_record(path)?.map(|(seq, _)| seq) {
                Some(first) if first <= seq => chosen = Some((*index, path.clone())),
                Some(_) => break,
                // Only the segment being written can be empty: its records are all still to come.
                None => {
                    if chosen.is_none() {
                        chosen = Some((*index, path.clone()));
                    }
                    break;
                }
            }
        }
        let Some((index, path)) = chosen else {
            return Err(JournalError::Damaged {
                path: dir.to_owned(),
                why: format!("no retained segment holds seq {seq}"),
            });
        };
        let file = File::open(&path).map_err(|e| JournalError::io(&path, e))?;
        let mut tail = Tail {
            dir: dir.to_owned(),
            index,
            file,
            path,
            offset: SEGMENT_HEADER_LEN as u64,
            next_seq: 0,
            buf: Vec::new(),
            buf_start: SEGMENT_HEADER_LEN as u64,
        };
        // Skip to `seq` within the segment.
        while let Some((rec_seq, len)) = tail.peek()?
            && rec_seq < seq
        {
            tail.offset += len as u64;
        }
        tail.next_seq = seq;
        Ok(tail)
    }

    /// Sequence number of the next record [`Tail::read`] returns.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The durable head's sequence number (0 when `HEAD` is absent).
    pub fn durable_seq(&self) -> Result<u64, JournalError> {
        let head: Option<Head> = files::read_json(&files::head_path(&self.dir))?;
        Ok(head.map_or(0, |h| h.seq))
    }

    /// Appends whole frames to `out`, from the next sequence number up to `upto` (inclusive), stopping before
    /// `out` would exceed `max_bytes` (into an empty `out` one frame is always taken). Returns how many records
    /// were added.
    pub fn read(
        &mut self,
        upto: u64,
        max_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Result<u64, JournalError> {
        let mut added = 0u64;
        while self.next_seq <= upto {
            let Some((seq, len)) = self.peek()? else {
                if !self.advance_segment()? {
                    break;
                }
                continue;
            };
            if seq < self.next_seq {
                // Positioned past the end earlier (the collector was ahead): skip what it already has.
                self.offset += len as u64;
                continue;
            }
            if seq != self.next_seq {
                return Err(JournalError::Damaged {
                    path: self.path.clone(),
                    why: format!(
                        "offset {}: found seq {seq} where {} was expected",
                        self.offset, self.next_seq
                    ),
                });
            }
            if !out.is_empty() && out.len() + len > max_bytes {
                break;
            }
            let start = usize::try_from(self.offset - self.buf_start).unwrap_or(usize::MAX);
            let bytes = self
                .buf
                .get(start..start + len)
                .ok_or_else(|| JournalError::Damaged {
                    path: self.path.clone(),
                    why: format!("offset {}: frame outside the read buffer", self.offset),
                })?;
            out.extend_from_slice(bytes);
            self.offset += len as u64;
            self.next_seq += 1;
            added += 1;
        }
        Ok(added)
    }

    /// Sequence number and length of the whole frame at the current offset, if there is one.
    fn peek(&mut self) -> Result<Option<(u64, usize)>, JournalError> {
        for _ in 0..2 {
            let start = usize::try_from(self.offset.saturating_sub(self.buf_start)).unwrap_or(0);
            let ahead = self
                .buf
                .get(start..)
                .filter(|_| self.offset >= self.buf_start);
            if let Some(bytes) = ahead
                && let Ok(rec) = read_frame(bytes)
            {
                return Ok(Some((rec.seq, rec.len)));
            }
            self.fill()?;
        }
        Ok(None)
    }

    /// Rereads the file from the current offset (at least one whole frame's worth when the file has it).
    fn fill(&mut self) -> Result<(), JournalError> {
        let want = READ_CHUNK.max(FRAME_OVERHEAD + MAX_PAYLOAD.min(self.frame_len_hint()));
        self.buf.resize(want, 0);
        let mut got = 0;
        while got < want {
            let n = self
                .file
                .read_at(&mut self.buf[got..], self.offset + got as u64)
                .map_err(|e| JournalError::io(&self.path, e))?;
            if n == 0 {
                break;
            }
            got += n;
        }
        self.buf.truncate(got);
        self.buf_start = self.offset;
        Ok(())
    }

    /// The payload length the frame at the current offset announces (0 when unknown).
    fn frame_len_hint(&self) -> usize {
        let mut len = [0u8; 4];
        match self.file.read_exact_at(&mut len, self.offset) {
            Ok(()) => u32::from_le_bytes(len) as usize,
            Err(_) => 0,
        }
    }

    /// Moves to the next segment if it exists; returns whether it did.
    fn advance_segment(&mut self) -> Result<bool, JournalError> {
        let path = files::segment_path(&self.dir, self.index + 1);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(JournalError::io(&path, e)),
        };
        self.index += 1;
        self.file = file;
        self.path = path;
        self.offset = SEGMENT_HEADER_LEN as u64;
        self.buf.clear();
        self.buf_start = self.offset;
        Ok(true)
    }
}

/// Where the retained journal starts (from `ANCHOR`).
pub fn retained_start(dir: &Path) -> Result<Start, JournalError> {
    let path = files::anchor_path(dir);
    let anchor: Anchor = files::read_json(&path)?.ok_or_else(|| JournalError::Damaged {
        path: path.clone(),
        why: "missing".into(),
    })?;
    let bad = |why: String| JournalError::Damaged {
        path: path.clone(),
        why,
    };
    Ok(Start {
        seq: anchor.seq,
        prev_hash: parse_hash(&anchor.prev_hash).ok_or_else(|| bad("bad prev_hash".into()))?,
        epoch: anchor.epoch,
        public_key: crate::keys::parse_public_key(&anchor.public_key)
            .map_err(|why| bad(why.to_string()))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::read_frame;
    use crate::{FsyncPolicy, Journal, JournalOptions};
    use auditloop_model::{Event, EventBody, Loss, Process, WallTime};

    fn event() -> Event {
        Event {
            seq: 0,
            time: WallTime(1),
            mono_ns: 1,
            process: Process::default(),
            event: EventBody::Loss(Loss::default()),
        }
    }

    fn seqs(bytes: &[u8]) -> Vec<u64> {
        let mut out = Vec::new();
        let mut off = 0;
        while off < bytes.len() {
            let rec = read_frame(&bytes[off..]).unwrap();
            out.push(rec.seq);
            off += rec.len;
        }
        out
    }

    #[test]
    fn follows_rotations_and_stops_at_the_durable_head() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = JournalOptions::in_state_dir(dir.path(), "h");
        opts.segment_bytes = 2048;
        opts.fsync = FsyncPolicy::Never;
        let jdir = opts.dir.clone();
        let mut journal = Journal::open(opts).unwrap();
        for _ in 0..100 {
            journal.append_event(&mut event()).unwrap();
        }
        journal.sync().unwrap();
        let mut tail = Tail::open(&jdir, 1).unwrap();
        let head = tail.durable_seq().unwrap();
        assert!(head > 100, "rotations add segment starts and checkpoints");
        let mut out = Vec::new();
        let n = tail.read(head, usize::MAX, &mut out).unwrap();
        assert_eq!(seqs(&out), (1..=head).collect::<Vec<_>>());
        assert_eq!(n, head);
        // Appended but not synced: not durable, not returned.
        journal.append_event(&mut event()).unwrap();
        assert_eq!(
            tail.read(tail.durable_seq().unwrap(), usize::MAX, &mut out)
                .unwrap(),
            0
        );
        journal.sync().unwrap();
        out.clear();
        assert_eq!(
            tail.read(tail.durable_seq().unwrap(), usize::MAX, &mut out)
                .unwrap(),
            1
        );
        assert_eq!(seqs(&out), [head + 1]);
        // Reopen in the middle, with a byte budget.
        let mut mid = Tail::open(&jdir, 50).unwrap();
        out.clear();
        let n = mid.read(head, 300, &mut out).unwrap();
        assert!(n >= 1 && out.len() <= 300.max(read_frame(&out).unwrap().len));
        assert_eq!(seqs(&out)[0], 50);
        assert_eq!(mid.next_seq(), 50 + n);
        assert_eq!(retained_start(&jdir).unwrap().seq, 1);
    }
}
