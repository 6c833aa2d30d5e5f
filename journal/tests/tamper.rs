//! Tamper harness: 10,000 random mutations of a real journal (bit flips anywhere in any segment, deleted,
//! swapped and re-ordered records, truncated and dropped segments, segments spliced in from another journal,
//! the whole journal re-signed with a fresh key, the last checkpoint replaced). `verify` must detect every one
//! and name the first bad record (segment and offset); the unmodified journal must always verify.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail the test loudly"
)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use auditloop_journal::keys::EpochKey;
use auditloop_journal::record::{
    Checkpoint, Payload, SEGMENT_HEADER_LEN, encode_payload, frame, read_frame,
};
use auditloop_journal::{FsyncPolicy, Journal, JournalOptions, VerifyOptions, verify};
use auditloop_model::{Event, EventBody, Loss, LossStage, Process, WallTime};

const MUTATIONS: usize = 10_000;

/// A journal held in memory: segment files (name, bytes) and the side files.
#[derive(Clone)]
struct Image {
    segments: Vec<(String, Vec<u8>)>,
    side: Vec<(String, Vec<u8>)>,
    genesis: [u8; 32],
}

fn build(dir: &Path, runs: u64) -> Image {
    let opts = JournalOptions {
        dir: dir.join("journal"),
        key_path: dir.join("keys/journal.key"),
        segment_bytes: 3000,
        fsync: FsyncPolicy::Never,
        max_bytes: None,
        max_age: None,
        host: "h".into(),
        boot_id: "b".into(),
        lock_wait: Duration::from_millis(200),
    };
    let mut genesis = [0; 32];
    for run in 0..runs {
        let mut j = Journal::open(opts.clone()).unwrap();
        genesis = j.genesis_public_key();
        for n in 0..60 {
            let mut ev = Event {
                seq: 0,
                time: WallTime(n),
                mono_ns: n,
                process: Process {
                    pid: u32::try_from(run).unwrap(),
                    ..Process::default()
                },
                event: EventBody::Loss(Loss {
                    stage: LossStage::Decode,
                    record: "r".into(),
                    count: n,
                    total: n,
                }),
            };
            j.append_event(&mut ev).unwrap();
            if n % 25 == 24 {
                j.checkpoint().unwrap();
            }
        }
        j.close().unwrap();
    }
    let mut segments = Vec::new();
    let mut side = Vec::new();
    for entry in std::fs::read_dir(&opts.dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(entry.path()).unwrap();
        if name.ends_with(".alj") {
            segments.push((name, bytes))
        } else {
            side.push((name, bytes))
        }
    }
    segments.sort();
    Image {
        segments,
        side,
        genesis,
    }
}

fn write(image: &Image, dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in image.segments.iter().chain(&image.side) {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// Record start offsets of a segment.
fn offsets(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut off = SEGMENT_HEADER_LEN;
    while let Some(Ok(rec)) = bytes.get(off..).map(read_frame) {
        out.push((off, rec.len));
        off += rec.len;
    }
    out
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Where verify must report: segment index in the image, byte offset.
type Expect = (usize, u64);

/// The place after the end of segment `s` when bytes there are missing: the next segment's first record,
/// or (last segment) its end.
fn after_end(image: &Image, s: usize) -> Expect {
    if s + 1 < image.segments.len() {
        (s + 1, SEGMENT_HEADER_LEN as u64)
    } else {
        (s, image.segments[s].1.len() as u64)
    }
}

fn record_at(bytes: &[u8], pos: usize) -> u64 {
    if pos < SEGMENT_HEADER_LEN {
        return 0;
    }
    offsets(bytes)
        .iter()
        .find(|(o, l)| pos >= *o && pos < o + l)
        .map_or(0, |(o, _)| *o as u64)
}

fn mutate(base: &Image, other: &Image, rng: &mut Rng) -> (String, Image, Expect) {
    let mut img = base.clone();
    let s = rng.below(img.segments.len());
    let recs = offsets(&img.segments[s].1);
    match rng.below(8) {
        0 => {
            let bytes = &mut img.segments[s].1;
            let pos = rng.below(bytes.len());
            bytes[pos] ^= 1 << rng.below(8);
            let at = record_at(&base.segments[s].1, pos);
            (format!("bit flip seg {s} byte {pos}"), img, (s, at))
        }
        1 => {
            let i = rng.below(recs.len());
            let (o, l) = recs[i];
            img.segments[s].1.drain(o..o + l);
            let expect = if i + 1 == recs.len() {
                after_end(&img, s)
            } else {
                (s, o as u64)
            };
            (format!("delete record {i} of seg {s}"), img, expect)
        }
        2 if recs.len() >= 2 => {
            let i = rng.below(recs.len() - 1);
            let j = i + 1 + rng.below(recs.len() - i - 1);
            let (oi, li) = recs[i];
            let (oj, lj) = recs[j];
            let bytes = &base.segments[s].1;
            let mut out = bytes[..oi].to_vec();
            out.extend_from_slice(&bytes[oj..oj + lj]);
            out.extend_from_slice(&bytes[oi + li..oj]);
            out.extend_from_slice(&bytes[oi..oi + li]);
            out.extend_from_slice(&bytes[oj + lj..]);
            img.segments[s].1 = out;
            (
                format!("swap records {i} and {j} of seg {s}"),
                img,
                (s, oi as u64),
            )
        }
        3 => {
            let len = img.segments[s].1.len();
            let cut = rng.below(len);
            img.segments[s].1.truncate(cut);
            let expect = if cut < SEGMENT_HEADER_LEN {
                (s, 0)
            } else if cut == SEGMENT_HEADER_LEN {
                (s, cut as u64)
            } else if let Some((o, _)) = recs.iter().find(|(o, l)| cut > *o && cut < o + l) {
                (s, *o as u64)
            } else {
                after_end(&img, s)
            };
            (format!("truncate seg {s} to {cut}"), img, expect)
        }
        4 => {
            let bytes = other.segments[s.min(other.segments.len() - 1)].1.clone();
            img.segments[s].1 = bytes;
            (
                format!("splice seg {s} from another journal"),
                img,
                (s, SEGMENT_HEADER_LEN as u64),
            )
        }
        5 => {
            let mut resigned = other.clone();
            resigned.genesis = base.genesis;
            (
                "re-sign everything with a fresh key".into(),
                resigned,
                (0, SEGMENT_HEADER_LEN as u64),
            )
        }
        6 => {
            img.segments.remove(s);
            let expect = if s < img.segments.len() {
                (s, SEGMENT_HEADER_LEN as u64)
            } else {
                (s - 1, img.segments[s - 1].1.len() as u64)
            };
            (format!("drop seg {s}"), img, expect)
        }
        _ => replace_last_checkpoint(img, rng),
    }
}

/// Replaces the journal's last record (the closing checkpoint) with a well-formed checkpoint signed by a fresh
/// key or with a copy of an earlier checkpoint, recomputing the record hash as an attacker would.
fn replace_last_checkpoint(mut img: Image, rng: &mut Rng) -> (String, Image, Expect) {
    let s = img.segments.len() - 1;
    let bytes = img.segments[s].1.clone();
    let recs = offsets(&bytes);
    let (o, l) = *recs.last().unwrap();
    let rec = read_frame(&bytes[o..]).unwrap();
    let forged = if rng.below(2) == 0 {
        let key = EpochKey::generate().unwrap();
        let Payload::Checkpoint(cp) =
            auditloop_journal::record::decode_payload(rec.payload).unwrap()
        else {
            panic!("last record is the closing checkpoint")
        };
        let signature = key.sign(&Checkpoint::signed_message(
            cp.epoch,
            cp.head_seq,
            &cp.head_hash,
            &key.next_public(),
        ));
        Checkpoint {
            next_public_key: key.next_public(),
            signature,
            ..cp
        }
    } else {
        let Payload::Checkpoint(cp) =
            auditloop_journal::record::decode_payload(rec.payload).unwrap()
        else {
            panic!()
        };
        // An earlier, validly signed checkpoint re-pointed at this head.
        Checkpoint {
            epoch: cp.epoch.saturating_sub(1),
            ..cp
        }
    };
    let payload = encode_payload(&Payload::Checkpoint(forged)).unwrap();
    let mut out = bytes[..o].to_vec();
    frame(&mut out, rec.seq, &rec.prev_hash, &payload);
    out.extend_from_slice(&bytes[o + l..]);
    img.segments[s].1 = out;
    ("replace the last checkpoint".into(), img, (s, o as u64))
}

#[test]
fn ten_thousand_mutations_are_all_detected_at_the_first_bad_record() {
    // Memory-backed when available: the harness rewrites the journal 10,000 times.
    let tmp = if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let base = build(&tmp.path().join("a"), 3);
    let other = build(&tmp.path().join("b"), 3);
    assert!(base.segments.len() >= 4, "need several segments");
    let dir: PathBuf = tmp.path().join("work");
    let opts = VerifyOptions {
        trusted_public_key: Some(base.genesis),
        deep: false,
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut detected = 0;
    for n in 0..MUTATIONS {
        if n % 50 == 0 {
            write(&base, &dir);
            let clean = verify(&dir, &opts, &mut |_, _| {}).unwrap();
            assert!(clean.is_clean(), "clean journal failed: {clean:?}");
        }
        let (what, img, (seg, offset)) = mutate(&base, &other, &mut rng);
        write(&img, &dir);
        let report = verify(&dir, &opts, &mut |_, _| {}).unwrap();
        let problem = report
            .problem
            .unwrap_or_else(|| panic!("mutation {n} ({what}) not detected"));
        let want_segment = &img.segments[seg].0;
        assert_eq!(
            (&problem.segment, problem.offset),
            (want_segment, offset),
            "mutation {n} ({what}): wrong first bad record: {problem:?}"
        );
        detected += 1;
    }
    assert_eq!(detected, MUTATIONS);
}
