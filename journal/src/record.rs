//! The on-disk record: framing, hashing and payloads.
//!
//! A segment file starts with [`SEGMENT_MAGIC`] and a little-endian `u32` format version, then holds records
//! back to back:
//!
//! ```text
//! len: u32 LE | seq: u64 LE | prev_hash: [u8; 32] | payload: [u8; len] | hash: [u8; 32]
//! hash = SHA-256(RECORD_DOMAIN ‖ seq LE ‖ prev_hash ‖ payload)
//! ```
//!
//! The payload is a bincode-encoded [`Payload`]. Every byte after the 8-byte file header is covered by a
//! record hash (a changed length shifts the frame and breaks the hash), and the header is fixed bytes, so any
//! change to a segment is detectable. Decoding never panics: short or garbled bytes are a [`FrameError`].

use auditloop_model::Event;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 4] = *b"ALJ\x01";
/// Segment format version following the magic.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of the segment header (magic and version).
pub const SEGMENT_HEADER_LEN: usize = 8;
/// Domain separation tag of record hashes.
pub const RECORD_DOMAIN: &[u8] = b"auditloop/journal/record/v1";
/// Largest payload accepted when reading (a larger length is damage, not data).
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;
/// Bytes of a record besides its payload.
pub const FRAME_OVERHEAD: usize = 4 + 8 + 32 + 32;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// What a record holds. (Serialized for JSON exports; the journal's own encoding is [`encode_payload`].)
#[derive(Clone, Debug, PartialEq, Serialize)]
#[expect(
    clippy::large_enum_variant,
    reason = "one payload lives per record read, briefly; boxing the common case would cost an allocation each"
)]
pub enum Payload {
    /// The first record of every segment.
    SegmentStart(SegmentStart),
    /// A captured or agent event (in today's model, whichever format it was written in).
    Event(Event),
    /// A signed statement of the chain head.
    Checkpoint(Checkpoint),
}

/// Payload tag (bincode variant index) of a segment start.
pub const TAG_SEGMENT_START: u8 = 0;
/// Payload tag of an event in the model of format 1 (read, never written).
pub const TAG_EVENT_V1: u8 = 1;
/// Payload tag of a checkpoint.
pub const TAG_CHECKPOINT: u8 = 2;
/// Payload tag of an event in the model of format 2 (before ancestry, login identity, exec cwd and both
/// network endpoints; read, never written).
pub const TAG_EVENT_V2: u8 = 3;
/// Payload tag of an event in the model of format 3 (before the enforcement tier in `agent_start`,
/// `exec.stopped_by` and `file.denied_by_rule`; read, never written).
pub const TAG_EVENT_V3: u8 = 4;
/// Payload tag of an event in the model of format 4 (before `hold` events and `exec.held_by_rule`; read,
/// never written).
pub const TAG_EVENT_V4: u8 = 5;
/// Payload tag of an event in today's model (what the agent writes).
pub const TAG_EVENT: u8 = 6;

/// Whether a payload tag is an event of any format.
pub fn is_event_tag(tag: u8) -> bool {
    tag == TAG_EVENT
        || tag == TAG_EVENT_V4
        || tag == TAG_EVENT_V3
        || tag == TAG_EVENT_V2
        || tag == TAG_EVENT_V1
}

/// A payload as encoded: the tag order is the format and only ever grows (see the `TAG_` constants).
#[derive(Deserialize)]
enum WirePayload {
    SegmentStart(SegmentStart),
    EventV1(crate::legacy::v1::Event),
    Checkpoint(Checkpoint),
    EventV2(crate::legacy::v2::Event),
    EventV3(crate::legacy::v3::Event),
    EventV4(crate::legacy::v4::Event),
    Event(Event),
}

/// [`WirePayload`] borrowed, for encoding (today's events only).
#[derive(Serialize)]
enum WirePayloadRef<'a> {
    SegmentStart(&'a SegmentStart),
    #[expect(
        dead_code,
        reason = "holds tag 1: events of format 1 are read, never written"
    )]
    EventV1(()),
    Checkpoint(&'a Checkpoint),
    #[expect(
        dead_code,
        reason = "holds tag 3: events of format 2 are read, never written"
    )]
    EventV2(()),
    #[expect(
        dead_code,
        reason = "holds tag 4: events of format 3 are read, never written"
    )]
    EventV3(()),
    #[expect(
        dead_code,
        reason = "holds tag 5: events of format 4 are read, never written"
    )]
    EventV4(()),
    Event(&'a Event),
}

/// Opens a segment: who wrote it, in which run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentStart {
    /// 0 for the journal's first segment, then +1 per segment.
    pub index: u64,
    /// Agent start counter: +1 each time the journal is opened for writing.
    pub generation: u64,
    /// Kernel boot id of the writing host (`/proc/sys/kernel/random/boot_id`).
    pub boot_id: String,
    /// Wall-clock time the segment was created (ns since the Unix epoch).
    pub created_ns: u64,
    /// Host the journal belongs to.
    pub host: String,
    /// In the first segment only: the genesis public key (epoch 0), the trust anchor of all signatures.
    pub genesis_public_key: Option<[u8; 32]>,
}

/// A checkpoint: the chain head, signed with the epoch's key, committing to the next epoch's key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Key epoch that signed this checkpoint (0 = genesis key).
    pub epoch: u64,
    /// Sequence number of the record before this checkpoint.
    pub head_seq: u64,
    /// Hash of that record.
    pub head_hash: Hash,
    /// Public key of the next epoch.
    pub next_public_key: [u8; 32],
    /// Ed25519 signature over [`Checkpoint::signed_message`].
    #[serde(with = "signature_bytes")]
    pub signature: [u8; 64],
}

impl Checkpoint {
    /// The bytes the signature covers.
    pub fn signed_message(epoch: u64, head_seq: u64, head_hash: &Hash, next: &[u8; 32]) -> Vec<u8> {
        let mut m = Vec::with_capacity(96);
        m.extend_from_slice(b"auditloop/journal/checkpoint/v1");
        m.extend_from_slice(&epoch.to_le_bytes());
        m.extend_from_slice(&head_seq.to_le_bytes());
        m.extend_from_slice(head_hash);
        m.extend_from_slice(next);
        m
    }
}

mod signature_bytes {
    //! serde for `[u8; 64]` (serde derives arrays only up to 32).
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let v: Vec<u8> = serde_bytes_vec(d)?;
        <[u8; 64]>::try_from(v.as_slice())
            .map_err(|_| serde::de::Error::invalid_length(v.len(), &"64 bytes"))
    }

    fn serde_bytes_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Vec::<u8>::deserialize(d)
    }
}

/// bincode settings for payloads (fixed forever for format version 1).
fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_PAYLOAD>()
}

/// Encodes a payload.
pub fn encode_payload(payload: &Payload) -> Result<Vec<u8>, bincode::error::EncodeError> {
    let wire = match payload {
        Payload::SegmentStart(s) => WirePayloadRef::SegmentStart(s),
        Payload::Event(e) => WirePayloadRef::Event(e),
        Payload::Checkpoint(c) => WirePayloadRef::Checkpoint(c),
    };
    bincode::serde::encode_to_vec(wire, bincode_config())
}

/// Encodes an event payload without building a [`Payload`] first.
pub fn encode_event(event: &Event) -> Result<Vec<u8>, bincode::error::EncodeError> {
    bincode::serde::encode_to_vec(WirePayloadRef::Event(event), bincode_config())
}

/// Why payload bytes are not a [`Payload`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The bytes do not decode.
    #[error("{0}")]
    Decode(bincode::error::DecodeError),
    /// The bytes decode with some left over.
    #[error("{0} trailing bytes after the payload")]
    Trailing(usize),
}

/// Decodes a payload; all bytes must be used.
pub fn decode_payload(bytes: &[u8]) -> Result<Payload, PayloadError> {
    let (wire, used): (WirePayload, usize) =
        bincode::serde::decode_from_slice(bytes, bincode_config()).map_err(PayloadError::Decode)?;
    if used != bytes.len() {
        return Err(PayloadError::Trailing(bytes.len() - used));
    }
    Ok(match wire {
        WirePayload::SegmentStart(s) => Payload::SegmentStart(s),
        WirePayload::EventV1(e) => Payload::Event(e.into()),
        WirePayload::Checkpoint(c) => Payload::Checkpoint(c),
        WirePayload::EventV2(e) => Payload::Event(e.into()),
        WirePayload::EventV3(e) => Payload::Event(e.into()),
        WirePayload::EventV4(e) => Payload::Event(e.into()),
        WirePayload::Event(e) => Payload::Event(e),
    })
}

/// The hash of a record.
pub fn record_hash(seq: u64, prev_hash: &Hash, payload: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(RECORD_DOMAIN);
    h.update(seq.to_le_bytes());
    h.update(prev_hash);
    h.update(payload);
    h.finalize().into()
}

/// Appends the framed record to `out`; returns its hash.
pub fn frame(out: &mut Vec<u8>, seq: u64, prev_hash: &Hash, payload: &[u8]) -> Hash {
    let hash = record_hash(seq, prev_hash, payload);
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(prev_hash);
    out.extend_from_slice(payload);
    out.extend_from_slice(&hash);
    hash
}

/// A record as read from disk (payload not yet decoded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// Sequence number.
    pub seq: u64,
    /// Hash of the previous record.
    pub prev_hash: Hash,
    /// Encoded payload.
    pub payload: &'a [u8],
    /// Stored hash.
    pub hash: Hash,
    /// Total bytes of the frame.
    pub len: usize,
}

impl RawRecord<'_> {
    /// Whether the stored hash matches the contents.
    pub fn hash_ok(&self) -> bool {
        record_hash(self.seq, &self.prev_hash, self.payload) == self.hash
    }
}

/// Why bytes are not a whole record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The bytes end inside a record (a torn write or a truncation).
    #[error("record is cut short ({have} of {need} bytes)")]
    Torn {
        /// Bytes present.
        have: usize,
        /// Bytes the frame needs.
        need: usize,
    },
    /// The length field is impossible.
    #[error("record length {0} exceeds the limit")]
    TooLong(usize),
}

/// Reads the record at the start of `bytes`.
pub fn read_frame(bytes: &[u8]) -> Result<RawRecord<'_>, FrameError> {
    let torn = |need: usize| FrameError::Torn {
        have: bytes.len(),
        need,
    };
    let len_bytes: [u8; 4] = bytes
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(torn(FRAME_OVERHEAD))?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len > MAX_PAYLOAD {
        return Err(FrameError::TooLong(len));
    }
    let total = FRAME_OVERHEAD + len;
    let frame = bytes.get(..total).ok_or(torn(total))?;
    let seq = u64::from_le_bytes(frame[4..12].try_into().map_err(|_| torn(total))?);
    let prev_hash: Hash = frame[12..44].try_into().map_err(|_| torn(total))?;
    let payload = &frame[44..44 + len];
    let hash: Hash = frame[44 + len..].try_into().map_err(|_| torn(total))?;
    Ok(RawRecord {
        seq,
        prev_hash,
        payload,
        hash,
        len: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frame_round_trip() {
        let mut out = Vec::new();
        let payload = encode_payload(&Payload::Checkpoint(Checkpoint {
            epoch: 3,
            head_seq: 9,
            head_hash: [7; 32],
            next_public_key: [8; 32],
            signature: [9; 64],
        }))
        .unwrap();
        let hash = frame(&mut out, 10, &[1; 32], &payload);
        let rec = read_frame(&out).unwrap();
        assert_eq!(
            (rec.seq, rec.prev_hash, rec.hash, rec.len),
            (10, [1; 32], hash, out.len())
        );
        assert!(rec.hash_ok());
        let Payload::Checkpoint(cp) = decode_payload(rec.payload).unwrap() else {
            panic!()
        };
        assert_eq!(cp.signature, [9; 64]);
        assert!(matches!(
            read_frame(&out[..out.len() - 1]),
            Err(FrameError::Torn { .. })
        ));
    }

    /// Events written by agents of format 4 (payload tag 5): an exec (the type format 5 changed), an
    /// action and a tamper event decode into today's model, the new field empty.
    #[test]
    fn format_4_events_still_decode() {
        use auditloop_model::{ActionKind, EventBody};
        let fixture = include_str!("legacy/fixtures/format4-events.hex");
        let events: Vec<Event> = fixture
            .lines()
            .map(|line| {
                let bytes = hex::decode(line).unwrap();
                assert_eq!(bytes[0], TAG_EVENT_V4);
                assert!(is_event_tag(bytes[0]));
                match decode_payload(&bytes).unwrap() {
                    Payload::Event(e) => e,
                    other => panic!("not an event: {other:?}"),
                }
            })
            .collect();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].seq, 30);
        assert_eq!(events[0].process.exe, "/usr/bin/bash");
        let EventBody::Exec(exec) = &events[0].event else {
            panic!("{:?}", events[0])
        };
        assert_eq!(exec.filename, "/tmp/held.sh");
        assert_eq!((exec.ret, exec.dev, exec.inode), (Some(0), 2049, 77));
        assert_eq!(
            (exec.killed_by_rule, exec.held_by_rule, exec.cwd.as_str()),
            (Some(1), None, "/tmp")
        );
        let EventBody::Action(action) = &events[1].event else {
            panic!("{:?}", events[1])
        };
        assert_eq!(
            (action.action, action.rule.as_str(), action.trigger_seq),
            (ActionKind::KernelKill, "no_tmp", 30)
        );
        let EventBody::Tamper(tamper) = &events[2].event else {
            panic!("{:?}", events[2])
        };
        assert_eq!(tamper.what, "unclean_stop");
    }

    /// Events written by agents of format 3 (payload tag 4): the three types format 4 changed and one it did
    /// not decode into today's model, the new fields empty (an exec stopped then was stopped by the guard).
    #[test]
    fn format_3_events_still_decode() {
        use auditloop_model::{EventBody, FileOp};
        let fixture = include_str!("legacy/fixtures/format3-events.hex");
        let events: Vec<Event> = fixture
            .lines()
            .map(|line| {
                let bytes = hex::decode(line).unwrap();
                assert_eq!(bytes[0], TAG_EVENT_V3);
                assert!(is_event_tag(bytes[0]));
                match decode_payload(&bytes).unwrap() {
                    Payload::Event(e) => e,
                    other => panic!("not an event: {other:?}"),
                }
            })
            .collect();
        assert_eq!(events.len(), 4);
        assert_eq!(events[0].seq, 20);
        assert_eq!(events[0].process.exe, "/usr/bin/sh");
        let EventBody::AgentStart(start) = &events[0].event else {
            panic!("{:?}", events[0])
        };
        assert_eq!(
            (
                start.version.as_str(),
                start.tracepoints,
                start.tier.as_str()
            ),
            ("0.1.0", 91, "")
        );
        let EventBody::Exec(exec) = &events[1].event else {
            panic!("{:?}", events[1])
        };
        assert_eq!(exec.filename, "/usr/bin/nc");
        assert_eq!(exec.argv, ["nc", "-l"]);
        assert_eq!((exec.ret, exec.dev, exec.inode), (Some(-1), 2049, 1234));
        assert_eq!(exec.stopped_by_rule.as_deref(), Some("no_nc"));
        assert_eq!(
            (exec.stopped_by.as_str(), exec.cwd.as_str()),
            ("exec_guard", "/tmp")
        );
        let EventBody::File(file) = &events[2].event else {
            panic!("{:?}", events[2])
        };
        assert_eq!(
            (
                file.op,
                file.path.as_str(),
                file.flags,
                file.fd,
                file.raw_path.as_str()
            ),
            (FileOp::Open, "/etc/hosts", 577, 3, "hosts")
        );
        assert_eq!(
            (file.denied_by_rule.as_deref(), file.kernel_path.as_str()),
            (None, "")
        );
        let EventBody::Fork(fork) = &events[3].event else {
            panic!("{:?}", events[3])
        };
        assert_eq!((fork.child_pid, fork.clone_flags), (5000, Some(17)));
    }

    /// Events written by agents of format 2 (payload tag 3), one of each shape that format 3 changed and a
    /// few it did not, decode into today's model with the new fields empty.
    #[test]
    fn format_2_events_still_decode() {
        use auditloop_model::{EventBody, NetOp, NetProtocol, Severity, WallTime};
        let fixture = include_str!("legacy/fixtures/format2-events.hex");
        let events: Vec<Event> = fixture
            .lines()
            .map(|line| {
                let bytes = hex::decode(line).unwrap();
                assert_eq!(bytes[0], TAG_EVENT_V2);
                assert!(is_event_tag(bytes[0]));
                match decode_payload(&bytes).unwrap() {
                    Payload::Event(e) => e,
                    other => panic!("not an event: {other:?}"),
                }
            })
            .collect();
        assert_eq!(events.len(), 5);
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.seq, 10 + i as u64);
            assert_eq!(e.time, WallTime(1_700_000_000_123_456_789));
            let p = &e.process;
            assert_eq!(
                (p.pid, p.tid, p.ppid, p.uid, p.gid, p.euid),
                (4242, 4243, 1, 1000, 1001, 0)
            );
            assert_eq!((p.comm.as_str(), p.exe.as_str()), ("bash", "/usr/bin/bash"));
            assert_eq!(p.container_id.as_deref(), Some("ab".repeat(32).as_str()));
            assert_eq!(p.parent_exe, "/usr/sbin/sshd");
            assert_eq!(p.parent_argv, vec!["sshd: alice@pts/0"]);
            assert_eq!((p.start, p.loginuid, p.sessionid), (None, None, None));
            assert!(p.loginname.is_empty() && p.tty.is_empty() && p.ssh_client_address.is_empty());
        }
        let EventBody::Exec(x) = &events[0].event else {
            panic!("{:?}", events[0])
        };
        assert_eq!(
            (x.filename.as_str(), x.raw_filename.as_str()),
            ("/usr/bin/id", "/bin/id")
        );
        assert_eq!(x.argv, vec!["id", "-u"]);
        assert_eq!(
            (x.truncated_args.clone(), x.ret, x.success),
            (vec![1], Some(0), true)
        );
        assert_eq!((x.dev, x.inode), (2049, 1234));
        assert_eq!(x.sha256.as_deref(), Some("cd".repeat(32).as_str()));
        assert!(x.cwd.is_empty() && x.ancestors.is_empty());
        let EventBody::Net(n) = &events[1].event else {
            panic!("{:?}", events[1])
        };
        assert_eq!((n.op, n.fd, n.family.as_str()), (NetOp::Connect, 3, "inet"));
        assert_eq!(
            (n.address.as_str(), n.port, n.ret),
            ("10.0.0.2", 22, Some(-115))
        );
        assert_eq!(n.protocol, NetProtocol::Unknown);
        assert!(n.local_address.is_empty() && n.remote_address.is_empty() && n.path.is_empty());
        let EventBody::File(f) = &events[2].event else {
            panic!("{:?}", events[2])
        };
        assert_eq!((f.path.as_str(), f.flags, f.fd), ("/etc/passwd", 0o1101, 5));
        let EventBody::Fork(k) = &events[3].event else {
            panic!("{:?}", events[3])
        };
        assert_eq!((k.child_pid, k.clone_flags), (4300, Some(0x1200011)));
        let EventBody::Alert(a) = &events[4].event else {
            panic!("{:?}", events[4])
        };
        assert_eq!(
            (a.rule.as_str(), a.severity, a.trigger_seq),
            ("shell_from_server", Severity::Warning, 10)
        );
        // Today's encoding of the same event takes the new tag and round-trips.
        let bytes = encode_event(&events[0]).unwrap();
        assert_eq!(bytes[0], TAG_EVENT);
        assert_eq!(
            decode_payload(&bytes).unwrap(),
            Payload::Event(events[0].clone())
        );
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(rec) = read_frame(&bytes) {
                let _ = rec.hash_ok();
                let _ = decode_payload(rec.payload);
            }
            let _ = decode_payload(&bytes);
        }
    }
}
