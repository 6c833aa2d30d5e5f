//! Test helpers: real journals written with `auditloop_journal::Journal`, and their frames cut into batches
//! (and damaged). They know nothing of the collector; the in-process collector of the HTTP tests is
//! `http/testutil.rs`.

use auditloop_journal::files::list_segments;
use auditloop_journal::keys::EpochKey;
use auditloop_journal::ladder::{KeyLadder, KeyLink};
use auditloop_journal::record::{Payload, SEGMENT_HEADER_LEN, decode_payload, read_frame};
use auditloop_journal::{FsyncPolicy, Journal, JournalOptions};
use auditloop_model::{
    AgentStop, Event, EventBody, Exec, File, FileOp, Loss, LossStage, Process, WallTime,
};
use auditloop_protocol::batch::{Batch, BatchAnchor};
use tempfile::TempDir;

/// One record's frame.
#[derive(Clone, Debug)]
pub struct Frame {
    pub seq: u64,
    pub bytes: Vec<u8>,
}

/// A journal in a temporary directory, with the key ladder its anchors need: the step link of every epoch
/// key it saw in its key file (the journal itself keeps no ladder).
pub struct TestJournal {
    _dir: TempDir,
    opts: JournalOptions,
    journal: Option<Journal>,
    ladder: KeyLadder,
}

impl TestJournal {
    pub fn new(host: &str) -> TestJournal {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = JournalOptions::in_state_dir(dir.path(), host);
        opts.fsync = FsyncPolicy::Never;
        opts.boot_id = "boot-1".into();
        let journal = Journal::open(opts.clone()).unwrap();
        TestJournal {
            _dir: dir,
            opts,
            journal: Some(journal),
            ladder: KeyLadder::default(),
        }
    }

    /// The journal (its current epoch key noted for the ladder first).
    pub fn journal(&mut self) -> &mut Journal {
        self.note_key();
        self.journal.as_mut().unwrap()
    }

    /// The genesis public key the host enrolls with.
    pub fn genesis_key(&mut self) -> [u8; 32] {
        self.journal().genesis_public_key()
    }

    /// Adds the step link of the key file's current epoch to the ladder.
    fn note_key(&mut self) {
        if let Some(key) = EpochKey::load(&self.opts.key_path).unwrap() {
            self.ladder.push(KeyLink::step(&key));
        }
    }

    pub fn event(&mut self, pid: u32, body: EventBody) -> u64 {
        let mut event = Event {
            seq: 0,
            time: WallTime(1_700_000_000_000_000_000 + u64::from(pid)),
            mono_ns: 0,
            process: Process {
                pid,
                tid: pid,
                comm: format!("comm{pid}"),
                exe: format!("/usr/bin/prog{pid}"),
                ..Process::default()
            },
            event: body,
        };
        self.journal().append_event(&mut event).unwrap()
    }

    /// Appends `event` as it is (its seq assigned by the journal); returns its sequence number.
    pub fn append(&mut self, mut event: Event) -> u64 {
        self.journal().append_event(&mut event).unwrap()
    }

    pub fn exec(&mut self, pid: u32, path: &str) -> u64 {
        self.event(
            pid,
            EventBody::Exec(Exec {
                filename: path.into(),
                argv: vec![path.into(), "--flag".into()],
                success: true,
                ..Exec::default()
            }),
        )
    }

    pub fn file(&mut self, pid: u32, path: &str) -> u64 {
        self.event(
            pid,
            EventBody::File(File {
                op: FileOp::Open,
                path: path.into(),
                ..File::default()
            }),
        )
    }

    pub fn loss(&mut self, stage: LossStage) -> u64 {
        self.event(
            1,
            EventBody::Loss(Loss {
                stage,
                record: "events".into(),
                count: 10,
                total: 10,
            }),
        )
    }

    /// Appends `n` exec events; returns the last sequence number.
    pub fn execs(&mut self, n: u32) -> u64 {
        (0..n)
            .map(|i| self.exec(100 + i, "/bin/true"))
            .last()
            .unwrap_or(0)
    }

    pub fn checkpoint(&mut self) -> u64 {
        self.journal().checkpoint().unwrap()
    }

    /// Stops cleanly (`agent_stop`, close) and opens the next generation.
    pub fn stop_and_restart(&mut self) {
        self.event(1, EventBody::AgentStop(AgentStop::default()));
        self.note_key();
        self.journal.take().unwrap().close().unwrap();
        self.journal = Some(Journal::open(self.opts.clone()).unwrap());
        self.note_key();
    }

    /// Dies without `agent_stop` (everything written is durable) and opens the next generation.
    pub fn crash_and_restart(&mut self) {
        self.note_key();
        let mut journal = self.journal.take().unwrap();
        journal.sync().unwrap();
        drop(journal);
        self.journal = Some(Journal::open(self.opts.clone()).unwrap());
        self.note_key();
    }

    /// A copy of this journal as it is on disk now (key included), opened as the next generation: what the
    /// host is left with after losing everything written after this point.
    pub fn fork(&mut self) -> TestJournal {
        self.note_key();
        self.journal().sync().unwrap();
        let dir = tempfile::tempdir().unwrap();
        copy_tree(self._dir.path(), dir.path());
        let mut opts = JournalOptions::in_state_dir(dir.path(), &self.opts.host);
        opts.fsync = FsyncPolicy::Never;
        opts.boot_id = self.opts.boot_id.clone();
        let journal = Journal::open(opts.clone()).unwrap();
        TestJournal {
            _dir: dir,
            opts,
            journal: Some(journal),
            ladder: self.ladder.clone(),
        }
    }

    /// Every frame written so far, in order.
    pub fn frames(&mut self) -> Vec<Frame> {
        self.journal().sync().unwrap();
        let mut out = Vec::new();
        for (_, path) in list_segments(&self.opts.dir).unwrap() {
            let bytes = std::fs::read(path).unwrap();
            let mut off = SEGMENT_HEADER_LEN;
            while off < bytes.len() {
                let rec = read_frame(&bytes[off..]).unwrap();
                out.push(Frame {
                    seq: rec.seq,
                    bytes: bytes[off..off + rec.len].to_vec(),
                });
                off += rec.len;
            }
        }
        out
    }

    pub fn last_seq(&self) -> u64 {
        self.journal.as_ref().unwrap().last_seq()
    }

    /// Records `from..=to` as a batch without an anchor.
    pub fn batch(&mut self, from: u64, to: u64) -> Batch {
        let frames = self.frames();
        batch_of(&frames, from, to)
    }

    /// Records `from..=to` as a batch with the anchor a journal retained from `from` would send, its key
    /// ladder leading from the genesis key to the anchor's epoch.
    pub fn anchored_batch(&mut self, from: u64, to: u64) -> Batch {
        let frames = self.frames();
        let genesis = self.journal().genesis_public_key();
        let (mut epoch, mut key) = (0, genesis);
        for f in frames.iter().filter(|f| f.seq < from) {
            let rec = read_frame(&f.bytes).unwrap();
            if let Ok(Payload::Checkpoint(cp)) = decode_payload(rec.payload) {
                (epoch, key) = (cp.epoch + 1, cp.next_public_key);
            }
        }
        let first = frames.iter().find(|f| f.seq == from).unwrap();
        let mut batch = batch_of(&frames, from, to);
        let ladder = KeyLadder {
            links: self
                .ladder
                .links
                .iter()
                .filter(|l| l.to <= epoch)
                .cloned()
                .collect(),
        };
        assert_eq!(
            ladder.check(&genesis, epoch, &key),
            Ok(()),
            "the test journal's ladder reaches epoch {epoch}"
        );
        batch.anchor = Some(BatchAnchor {
            prev_hash: read_frame(&first.bytes).unwrap().prev_hash,
            epoch,
            public_key: key,
            ladder,
        });
        batch
    }
}

/// Copies the files under `from` into `to`, directories included.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

pub fn batch_of(frames: &[Frame], from: u64, to: u64) -> Batch {
    let mut bytes = Vec::new();
    for f in frames.iter().filter(|f| (from..=to).contains(&f.seq)) {
        bytes.extend_from_slice(&f.bytes);
    }
    Batch {
        first_seq: from,
        last_seq: to,
        anchor: None,
        frames: bytes,
    }
}

/// `frame` with one payload byte flipped (its stored hash no longer matches).
pub fn tampered(frame: &Frame) -> Frame {
    let mut bytes = frame.bytes.clone();
    bytes[44 + 5] ^= 0x40;
    Frame {
        seq: frame.seq,
        bytes,
    }
}

/// A checkpoint frame re-framed with a corrupted signature (its hash and link stay valid).
pub fn with_bad_signature(frame: &Frame) -> Frame {
    let rec = read_frame(&frame.bytes).unwrap();
    let Ok(Payload::Checkpoint(mut cp)) = decode_payload(rec.payload) else {
        panic!("seq {} is not a checkpoint", frame.seq);
    };
    cp.signature[0] ^= 1;
    let payload = auditloop_journal::record::encode_payload(&Payload::Checkpoint(cp)).unwrap();
    let mut bytes = Vec::new();
    auditloop_journal::record::frame(&mut bytes, rec.seq, &rec.prev_hash, &payload);
    Frame {
        seq: frame.seq,
        bytes,
    }
}
