//! Reading records back, in order, across segments (for export, replay and shipping). Reading does not
//! verify the chain; `verify` does.

use std::path::{Path, PathBuf};

use crate::JournalError;
use crate::files;
use crate::record::{Hash, Payload, SEGMENT_HEADER_LEN, decode_payload, read_frame};

/// A record read back.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRecord {
    /// Sequence number.
    pub seq: u64,
    /// Hash of the previous record.
    pub prev_hash: Hash,
    /// Its own hash.
    pub hash: Hash,
    /// Decoded payload.
    pub payload: Payload,
}

/// Iterates the records of a journal directory, segment by segment (one segment in memory at a time).
pub struct Reader {
    segments: std::vec::IntoIter<(u64, PathBuf)>,
    current: Option<(PathBuf, Vec<u8>, usize)>,
}

impl Reader {
    /// Opens the journal at `dir`.
    pub fn open(dir: &Path) -> Result<Reader, JournalError> {
        Ok(Reader {
            segments: files::list_segments(dir)?.into_iter(),
            current: None,
        })
    }
}

impl Iterator for Reader {
    type Item = Result<StoredRecord, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((path, bytes, off)) = &mut self.current {
                if *off < bytes.len() {
                    let rec = match read_frame(&bytes[*off..]) {
                        Ok(r) => r,
                        Err(e) => {
                            let err = JournalError::Damaged {
                                path: path.clone(),
                                why: format!("offset {off}: {e}"),
                            };
                            self.current = None;
                            return Some(Err(err));
                        }
                    };
                    *off += rec.len;
                    return Some(match decode_payload(rec.payload) {
                        Ok(payload) => Ok(StoredRecord {
                            seq: rec.seq,
                            prev_hash: rec.prev_hash,
                            hash: rec.hash,
                            payload,
                        }),
                        Err(why) => Err(JournalError::Damaged {
                            path: path.clone(),
                            why: format!("seq {}: {why}", rec.seq),
                        }),
                    });
                }
                self.current = None;
            }
            let (_, path) = self.segments.next()?;
            match std::fs::read(&path) {
                Ok(bytes) => self.current = Some((path, bytes, SEGMENT_HEADER_LEN)),
                Err(e) => return Some(Err(JournalError::io(&path, e))),
            }
        }
    }
}
