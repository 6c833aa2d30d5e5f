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
//! Decoding never panics and bounds what it allocates: malformed input is a [`BatchError`] naming the reason.

use std::io::Read;

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
            CONTENT_TYPE_BINARY => {
                let raw = decompress(body)?;
                let config = bincode::config::standard().with_limit::<MAX_DECODED>();
                let (batch, used) = bincode::serde::decode_from_slice(&raw, config)
                    .map_err(|e| BatchError::Malformed(e.to_string()))?;
                if used != raw.len() {
                    return Err(BatchError::Malformed(format!(
                        "{} trailing bytes after the batch",
                        raw.len() - used
                    )));
                }
                batch
            }
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

fn decompress(body: &[u8]) -> Result<Vec<u8>, BatchError> {
    let decoder =
        zstd::stream::read::Decoder::new(body).map_err(|e| BatchError::Zstd(e.to_string()))?;
    let mut out = Vec::new();
    decoder
        .take(MAX_DECODED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BatchError::Zstd(e.to_string()))?;
    if out.len() > MAX_DECODED {
        return Err(BatchError::TooLarge);
    }
    Ok(out)
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
            BatchError::TooLarge
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
