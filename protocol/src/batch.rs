//! Journal records in transit: the batch an agent ships to the collector.
//!
//! A batch carries a run of consecutive records exactly as they are framed on disk (`len | seq | prev_hash |
//! payload | hash`), so the collector checks the same hashes, links, segment starts and checkpoint
//! signatures as `auditloop verify`, with [`auditloop_journal::chain::ChainState`]. Checkpoints travel inside the chain.
//!
//! Two encodings, chosen by `Content-Type`:
//! - [`CONTENT_TYPE_BINARY`]: the [`Batch`] in bincode (standard config), compressed with zstd.
//! - [`CONTENT_TYPE_JSON`]: the [`Batch`] as JSON, with the frames and hashes in hex.
//!
//! Decoding never panics and bounds what it allocates: a binary batch is decoded while it decompresses, never
//! past [`MAX_DECODED`] bytes, and every length prefix is checked against that limit before its buffer is
//! allocated; malformed input is a [`BatchError`] naming the reason.

use std::io::{BufRead, Read};

use serde::{Deserialize, Serialize};

use auditloop_journal::ladder::KeyLadder;
use auditloop_journal::record::{FrameError, Hash, RawRecord, read_frame};

/// `Content-Type` of a zstd-compressed bincode batch.
pub const CONTENT_TYPE_BINARY: &str = "application/x-auditloop-batch+zstd";
/// `Content-Type` of a JSON batch.
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// Largest decompressed batch accepted (frames and envelope).
pub const MAX_DECODED: usize = 64 * 1024 * 1024;

/// A run of consecutive journal records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Sequence number of the first record.
    pub first_seq: u64,
    /// Sequence number of the last record.
    pub last_seq: u64,
    /// Where the host's retained chain starts, sent while shipping from a journal whose first records were
    /// deleted before any was shipped (the collector trusts it on first use; `None` from seq 1).
    pub anchor: Option<BatchAnchor>,
    /// The records' frames, back to back, exactly as in the segment files.
    #[serde(with = "hex_or_bytes")]
    pub frames: Vec<u8>,
}

/// The chain state before a batch's first record, for a host whose earlier records are gone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAnchor {
    /// `prev_hash` of the first record.
    #[serde(with = "hex_array")]
    pub prev_hash: Hash,
    /// Key epoch of the next checkpoint.
    pub epoch: u64,
    /// Public key of that epoch.
    #[serde(with = "hex_array")]
    pub public_key: [u8; 32],
    /// Signed links from the host's genesis key to `public_key` (empty at epoch 0), so the collector checks
    /// the anchor against the enrolled key instead of trusting it.
    pub ladder: KeyLadder,
}

/// Why a request body is not a batch.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The `Content-Type` is neither encoding.
    #[error(
        "unsupported content type {0:?} (expected {CONTENT_TYPE_BINARY} or {CONTENT_TYPE_JSON})"
    )]
    ContentType(String),
    /// zstd decompression failed.
    #[error("zstd: {0}")]
    Zstd(String),
    /// The decompressed body exceeds [`MAX_DECODED`].
    #[error("decompressed batch exceeds {MAX_DECODED} bytes")]
    TooLarge,
    /// The envelope does not decode.
    #[error("malformed batch: {0}")]
    Malformed(String),
    /// The envelope decodes but is inconsistent.
    #[error("invalid batch: {0}")]
    Invalid(String),
}

impl Batch {
    /// Number of records the header claims.
    pub fn len(&self) -> u64 {
        self.last_seq.saturating_sub(self.first_seq) + 1
    }

    /// Whether the batch is empty (never, once decoded: a batch holds at least one record).
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The records, in order; a frame that does not parse ends the iteration with its error.
    pub fn records(&self) -> Records<'_> {
        Records {
            bytes: &self.frames,
            failed: false,
        }
    }

    /// Encodes for [`CONTENT_TYPE_BINARY`] at zstd `level`.
    pub fn encode_binary(&self, level: i32) -> Result<Vec<u8>, BatchError> {
        let raw = bincode::serde::encode_to_vec(self, bincode::config::standard())
            .map_err(|e| BatchError::Malformed(e.to_string()))?;
        zstd::bulk::compress(&raw, level).map_err(|e| BatchError::Zstd(e.to_string()))
    }

    /// Encodes for [`CONTENT_TYPE_JSON`].
    pub fn encode_json(&self) -> Result<Vec<u8>, BatchError> {
        serde_json::to_vec(self).map_err(|e| BatchError::Malformed(e.to_string()))
    }

    /// Decodes a request body by its `Content-Type` (parameters such as `; charset=` are ignored) and checks
    /// the header against the frames' count. Hashes and links are not checked here.
    pub fn decode(content_type: &str, body: &[u8]) -> Result<Batch, BatchError> {
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let batch: Batch = match mime.as_str() {
            CONTENT_TYPE_BINARY => decode_binary(body)?,
            CONTENT_TYPE_JSON => {
                if body.len() > MAX_DECODED {
                    return Err(BatchError::TooLarge);
                }
                serde_json::from_slice(body).map_err(|e| BatchError::Malformed(e.to_string()))?
            }
            _ => return Err(BatchError::ContentType(content_type.to_owned())),
        };
        if batch.first_seq == 0 || batch.first_seq > batch.last_seq {
            return Err(BatchError::Invalid(format!(
                "range [{}, {}] is empty or starts at 0",
                batch.first_seq, batch.last_seq
            )));
        }
        if batch.frames.is_empty() {
            return Err(BatchError::Invalid("no records".into()));
        }
        Ok(batch)
    }
}

/// The bincode configuration of [`CONTENT_TYPE_BINARY`] on decoding: every length prefix is checked against
/// [`MAX_DECODED`] before anything is allocated for it.
fn decode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_DECODED>()
}

/// Decodes a zstd-compressed bincode batch as it decompresses: the decompressed bytes are never buffered
/// whole, reading stops at [`MAX_DECODED`], and a length prefix beyond what is left of that limit fails
/// before anything is allocated for it. A bomb that decompresses past the limit is refused as soon as the
/// batch it starts with ends (trailing bytes) or reaches the limit, whichever comes first.
fn decode_binary(body: &[u8]) -> Result<Batch, BatchError> {
    let decoder =
        zstd::stream::read::Decoder::new(body).map_err(|e| BatchError::Zstd(e.to_string()))?;
    let mut reader = std::io::BufReader::new(Bounded::new(decoder, MAX_DECODED));
    let decoded = bincode::serde::decode_from_std_read(&mut reader, decode_config());
    let exceeded = reader.get_ref().exceeded;
    let batch: Batch = match decoded {
        Ok(batch) => batch,
        Err(_) if exceeded => return Err(BatchError::TooLarge),
        Err(bincode::error::DecodeError::LimitExceeded) => return Err(BatchError::TooLarge),
        Err(bincode::error::DecodeError::Io { inner, .. })
            if inner.kind() != std::io::ErrorKind::UnexpectedEof =>
        {
            return Err(BatchError::Zstd(inner.to_string()));
        }
        Err(e) => return Err(BatchError::Malformed(e.to_string())),
    };
    let trailing = reader.fill_buf().map(|rest| !rest.is_empty());
    match trailing {
        Ok(false) => Ok(batch),
        Ok(true) => Err(BatchError::Malformed(
            "trailing bytes after the batch".into(),
        )),
        Err(_) if reader.get_ref().exceeded => Err(BatchError::TooLarge),
        Err(e) => Err(BatchError::Zstd(e.to_string())),
    }
}

/// A reader that fails once more than `limit` bytes would be read from it, remembering that it did.
struct Bounded<R> {
    inner: R,
    left: usize,
    exceeded: bool,
}

impl<R> Bounded<R> {
    fn new(inner: R, limit: usize) -> Bounded<R> {
        Bounded {
            inner,
            left: limit,
            exceeded: false,
        }
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            // One byte more tells a stream that ends exactly at the limit from one that goes on.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    self.exceeded = true;
                    Err(std::io::Error::other(BatchError::TooLarge))
                }
            };
        }
        let want = buf.len().min(self.left);
        let n = self.inner.read(buf.get_mut(..want).unwrap_or_default())?;
        self.left -= n;
        Ok(n)
    }
}

/// Iterator over a batch's frames.
pub struct Records<'a> {
    bytes: &'a [u8],
    failed: bool,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<RawRecord<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.bytes.is_empty() {
            return None;
        }
        match read_frame(self.bytes) {
            Ok(rec) => {
                self.bytes = self.bytes.get(rec.len..).unwrap_or_default();
                Some(Ok(rec))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

mod hex_or_bytes {
    //! Bytes as hex in JSON, raw in bincode.
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(bytes))
        } else {
            s.serialize_bytes(bytes)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            hex::decode(text).map_err(serde::de::Error::custom)
        } else {
            // As one byte string (not a sequence of u8s, which bincode decodes a byte at a time).
            serde_bytes::ByteBuf::deserialize(d).map(serde_bytes::ByteBuf::into_vec)
        }
    }
}

mod hex_array {
    //! 32-byte arrays as hex in JSON, raw in bincode.
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        super::hex_or_bytes::serialize(bytes, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let v = super::hex_or_bytes::deserialize(d)?;
        <[u8; 32]>::try_from(v.as_slice())
            .map_err(|_| serde::de::Error::invalid_length(v.len(), &"32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditloop_journal::record::frame;

    fn sample() -> Batch {
        let mut frames = Vec::new();
        let h1 = frame(&mut frames, 5, &[7; 32], &[1, 2, 3]);
        frame(&mut frames, 6, &h1, &[1, 4]);
        Batch {
            first_seq: 5,
            last_seq: 6,
            anchor: Some(BatchAnchor {
                prev_hash: [7; 32],
                epoch: 3,
                public_key: [9; 32],
                ladder: KeyLadder::default(),
            }),
            frames,
        }
    }

    #[test]
    fn both_encodings_round_trip() {
        let batch = sample();
        let bin = batch.encode_binary(3).unwrap();
        assert_eq!(Batch::decode(CONTENT_TYPE_BINARY, &bin).unwrap(), batch);
        let json = batch.encode_json().unwrap();
        assert!(String::from_utf8_lossy(&json).contains("\"epoch\":3"));
        let decoded = Batch::decode("application/json; charset=utf-8", &json).unwrap();
        assert_eq!(decoded, batch);
        let seqs: Vec<u64> = decoded.records().map(|r| r.unwrap().seq).collect();
        assert_eq!(seqs, [5, 6]);
    }

    #[test]
    fn malformed_bodies_are_named() {
        let err = |ct: &str, body: &[u8]| Batch::decode(ct, body).unwrap_err().to_string();
        assert!(err("text/plain", b"x").contains("unsupported content type"));
        assert!(err(CONTENT_TYPE_BINARY, b"not zstd").starts_with("zstd:"));
        assert!(err(CONTENT_TYPE_JSON, b"{").starts_with("malformed batch"));
        let mut empty = sample();
        empty.last_seq = 4;
        let json = empty.encode_json().unwrap();
        assert!(err(CONTENT_TYPE_JSON, &json).starts_with("invalid batch"));
        let bomb = zstd::bulk::compress(&vec![0u8; MAX_DECODED + 10], 1).unwrap();
        assert_eq!(
            Batch::decode(CONTENT_TYPE_BINARY, &bomb).unwrap_err(),
            BatchError::Malformed("trailing bytes after the batch".into())
        );
    }

    /// The bincode envelope of a batch `1..=1` without anchor, up to the frames' length prefix.
    fn envelope_claiming(frames_len: u64) -> Vec<u8> {
        let mut raw = vec![1, 1, 0];
        // bincode's standard varint: 253 then the u64 little-endian.
        raw.push(253);
        raw.extend_from_slice(&frames_len.to_le_bytes());
        raw
    }

    #[test]
    fn frames_beyond_the_limit_are_too_large() {
        let mut batch = sample();
        batch.frames = vec![0; MAX_DECODED + 1];
        let bin = batch.encode_binary(1).unwrap();
        assert_eq!(
            Batch::decode(CONTENT_TYPE_BINARY, &bin).unwrap_err(),
            BatchError::TooLarge
        );
        let mut exact = sample();
        exact.anchor = None;
        // bincode's limit also counts the envelope's integers at their in-memory size.
        exact.frames = vec![0; MAX_DECODED - 64];
        let bin = exact.encode_binary(1).unwrap();
        assert_eq!(Batch::decode(CONTENT_TYPE_BINARY, &bin).unwrap(), exact);
    }

    #[test]
    fn the_bounded_reader_stops_one_byte_past_the_limit() {
        let mut out = Vec::new();
        let mut exact = Bounded::new(&[1u8; 10][..], 10);
        assert_eq!(exact.read_to_end(&mut out).unwrap(), 10);
        assert!(!exact.exceeded);
        let mut over = Bounded::new(&[1u8; 11][..], 10);
        let err = over.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(
            over.exceeded && err.to_string().contains("exceeds"),
            "{err}"
        );
    }

    #[test]
    fn lying_length_prefixes_are_refused() {
        for claim in [u64::MAX, 1 << 40, MAX_DECODED as u64 + 1] {
            let mut raw = envelope_claiming(claim);
            raw.extend_from_slice(&[0; 64]);
            let body = zstd::bulk::compress(&raw, 1).unwrap();
            assert_eq!(
                Batch::decode(CONTENT_TYPE_BINARY, &body).unwrap_err(),
                BatchError::TooLarge,
                "claim {claim}"
            );
        }
        // Within the limit but beyond the data: the batch ends early.
        let mut raw = envelope_claiming(MAX_DECODED as u64 - 64);
        raw.extend_from_slice(&[0; 64]);
        let body = zstd::bulk::compress(&raw, 1).unwrap();
        let err = Batch::decode(CONTENT_TYPE_BINARY, &body).unwrap_err();
        assert!(matches!(err, BatchError::Malformed(_)), "{err}");
        // A ladder claiming more links than there are bytes.
        let mut raw = vec![1, 1, 1, 32];
        raw.extend_from_slice(&[7; 32]);
        raw.extend_from_slice(&[0, 32]);
        raw.extend_from_slice(&[9; 32]);
        raw.push(253);
        raw.extend_from_slice(&(1u64 << 50).to_le_bytes());
        let body = zstd::bulk::compress(&raw, 1).unwrap();
        let err = Batch::decode(CONTENT_TYPE_BINARY, &body).unwrap_err();
        assert!(
            matches!(err, BatchError::Malformed(_) | BatchError::TooLarge),
            "{err}"
        );
    }

    #[test]
    fn a_truncated_stream_is_a_zstd_error_and_trailing_bytes_are_named() {
        let bin = sample().encode_binary(3).unwrap();
        let err = Batch::decode(CONTENT_TYPE_BINARY, &bin[..bin.len() - 3]).unwrap_err();
        assert!(
            matches!(err, BatchError::Zstd(_) | BatchError::Malformed(_)),
            "{err}"
        );
        let mut raw = bincode::serde::encode_to_vec(sample(), bincode::config::standard()).unwrap();
        raw.push(0);
        let body = zstd::bulk::compress(&raw, 1).unwrap();
        assert_eq!(
            Batch::decode(CONTENT_TYPE_BINARY, &body).unwrap_err(),
            BatchError::Malformed("trailing bytes after the batch".into())
        );
    }

    #[test]
    fn a_cut_frame_ends_the_records_with_an_error() {
        let mut batch = sample();
        batch.frames.truncate(batch.frames.len() - 1);
        let recs: Vec<_> = batch.records().collect();
        assert_eq!(recs.len(), 2);
        assert!(recs[0].is_ok() && recs[1].is_err());
    }
}
