//! Appending to the ladder file, creating it, setting a damaged one aside, and compacting it after
//! retention moved `ANCHOR`.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{
    AHEAD, HEADER_LEN, LADDER_FILE, LINK_LEN, LadderHeader, damaged, decode_header, encode_header,
    encode_link, is_skip, ladder_path, new_path, read,
};
use crate::JournalError;
use crate::atomic::sync_dir;
use crate::ladder::KeyLink;

/// The open ladder file of a journal writer.
pub struct LadderWriter {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    /// Bytes of the file (header and whole records).
    len: u64,
    /// Bytes allocated (`fallocate`), at least `len`.
    allocated: u64,
    /// Step links before this epoch have been dropped by compaction.
    steps_from: u64,
    /// A compaction failed (logged once).
    compaction_failed: bool,
}

/// A ladder file that the writer found damaged at open, set aside and replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LadderReset {
    /// Where the damaged file was moved.
    pub moved_to: PathBuf,
    /// Why it was unusable.
    pub reason: String,
    /// The epoch the new ladder starts at.
    pub since_epoch: u64,
}

impl LadderWriter {
    /// Creates a new, empty ladder file (replacing any) atomically: written to a temporary file, synced and
    /// renamed into place, the directory synced.
    pub fn create(dir: &Path, header: &LadderHeader) -> Result<LadderWriter, JournalError> {
        write_new(dir, header, &[])?;
        LadderWriter::open_existing(dir, HEADER_LEN as u64, 0)
    }

    /// Opens the ladder file of `dir` for appending. A file that does not exist is created starting at
    /// `epoch` (the epoch of the next link the writer signs; 0 at genesis). A last record cut short is cut
    /// off. A file that is unusable (a bad header, another genesis key) is moved aside to
    /// `LADDER.damaged-<unix seconds>` and replaced by a new one starting at `epoch`: the journal keeps
    /// working, the earlier links are kept for investigation, and `verify` says trust cannot be traced.
    pub fn open(
        dir: &Path,
        epoch: u64,
        genesis: [u8; 32],
    ) -> Result<(LadderWriter, Option<LadderReset>), JournalError> {
        let path = ladder_path(dir);
        let stale = new_path(dir);
        match std::fs::remove_file(&stale) {
            Ok(()) => sync_dir(dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(JournalError::io(&stale, e)),
        }
        let fresh = LadderHeader {
            since_epoch: epoch,
            genesis,
        };
        let problem = match header_and_len(&path) {
            Ok(None) => {
                if epoch > 0 {
                    tracing::warn!(
                        epoch,
                        "the journal has no key ladder ({}): starting one now; keys of earlier epochs \
                         cannot be traced to the genesis key once retention deletes their checkpoints",
                        path.display()
                    );
                }
                return Ok((LadderWriter::create(dir, &fresh)?, None));
            }
            Ok(Some((header, _))) if header.genesis != genesis => format!(
                "written for genesis key {}, the journal's key is {}",
                hex::encode(header.genesis),
                hex::encode(genesis)
            ),
            Ok(Some((_, len))) => {
                let whole = HEADER_LEN as u64
                    + (len - HEADER_LEN as u64) / LINK_LEN as u64 * LINK_LEN as u64;
                if whole < len {
                    tracing::info!(
                        bytes = len - whole,
                        "cutting a key ladder record cut short by a crash ({})",
                        path.display()
                    );
                }
                let writer = LadderWriter::open_existing(dir, whole, 0)?;
                if whole < len {
                    writer
                        .file
                        .set_len(whole)
                        .and_then(|()| writer.file.sync_all())
                        .map_err(|e| JournalError::io(&path, e))?;
                }
                return Ok((writer, None));
            }
            Err(JournalError::Damaged { why, .. }) => why,
            Err(other) => return Err(other),
        };
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let moved_to = dir.join(format!("{LADDER_FILE}.damaged-{secs}"));
        std::fs::rename(&path, &moved_to).map_err(|e| JournalError::io(&path, e))?;
        tracing::error!(
            moved_to = %moved_to.display(),
            "the key ladder {} is damaged ({problem}): set aside, a new one starts at epoch {epoch}",
            path.display()
        );
        let writer = LadderWriter::create(dir, &fresh)?;
        Ok((
            writer,
            Some(LadderReset {
                moved_to,
                reason: problem,
                since_epoch: epoch,
            }),
        ))
    }

    fn open_existing(dir: &Path, len: u64, steps_from: u64) -> Result<LadderWriter, JournalError> {
        let path = ladder_path(dir);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&path)
            .map_err(|e| JournalError::io(&path, e))?;
        let mut writer = LadderWriter {
            dir: dir.to_owned(),
            path,
            file,
            len,
            allocated: len,
            steps_from,
            compaction_failed: false,
        };
        writer.allocate_ahead();
        Ok(writer)
    }

    /// Appends `links` and makes them durable. On failure nothing of them is left in the file.
    pub fn append(&mut self, links: &[KeyLink]) -> Result<(), JournalError> {
        let mut bytes = Vec::with_capacity(links.len() * LINK_LEN);
        for link in links {
            bytes.extend_from_slice(&encode_link(link));
        }
        let written = self
            .file
            .write_all_at(&bytes, self.len)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            let _ = self.file.set_len(self.len);
            return Err(JournalError::io(&self.path, e));
        }
        self.len += bytes.len() as u64;
        self.allocated = self.allocated.max(self.len);
        self.allocate_ahead();
        Ok(())
    }

    /// Keeps [`AHEAD`] bytes allocated past the end when the file system allows it (best effort: a full
    /// disk shows in the journal's own reserve first).
    fn allocate_ahead(&mut self) {
        if self.allocated >= self.len + AHEAD / 2 {
            return;
        }
        let (Ok(offset), Ok(len)) = (i64::try_from(self.len), i64::try_from(AHEAD)) else {
            return;
        };
        if nix::fcntl::fallocate(
            &self.file,
            nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE,
            offset,
            len,
        )
        .is_ok()
        {
            self.allocated = self.len + AHEAD;
        }
    }

    /// After `ANCHOR` moved to an epoch whose block starts at `steps_from` (a multiple of [`SKIP`]): drops
    /// the step links before it (skip links span them), rewriting the file atomically. Failures are logged
    /// and leave the file as it was (it is only larger than needed); `verify` reports a damaged file.
    pub fn compact(&mut self, steps_from: u64) {
        if steps_from <= self.steps_from {
            return;
        }
        match self.rewrite(steps_from) {
            Ok(()) => self.steps_from = steps_from,
            Err(err) if !self.compaction_failed => {
                self.compaction_failed = true;
                tracing::error!(
                    "the key ladder was not compacted (retried at each retention): {err}"
                );
            }
            Err(_) => {}
        }
    }

    fn rewrite(&mut self, steps_from: u64) -> Result<(), JournalError> {
        let read = read(&self.dir, |l| is_skip(l) || l.from >= steps_from)?
            .ok_or_else(|| damaged(&self.path, "missing".into()))?;
        write_new(&self.dir, &read.header, &read.links)?;
        let len = HEADER_LEN as u64 + (read.links.len() * LINK_LEN) as u64;
        *self = LadderWriter::open_existing(&self.dir, len, steps_from)?;
        Ok(())
    }
}

/// The header and length of the ladder file at `path`; `None` when it does not exist.
fn header_and_len(path: &Path) -> Result<Option<(LadderHeader, u64)>, JournalError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(JournalError::io(path, e)),
    };
    let len = file
        .metadata()
        .map_err(|e| JournalError::io(path, e))?
        .len();
    let mut head = [0u8; HEADER_LEN];
    if len < HEADER_LEN as u64 {
        return Err(damaged(path, "shorter than its header".into()));
    }
    file.read_exact_at(&mut head, 0)
        .map_err(|e| JournalError::io(path, e))?;
    Ok(Some((decode_header(path, &head)?, len)))
}

/// Writes a ladder file with `links` to `LADDER.new`, syncs it and renames it over `LADDER`.
fn write_new(dir: &Path, header: &LadderHeader, links: &[KeyLink]) -> Result<(), JournalError> {
    let tmp = new_path(dir);
    let mut bytes = Vec::with_capacity(HEADER_LEN + links.len() * LINK_LEN);
    bytes.extend_from_slice(&encode_header(header));
    for link in links {
        bytes.extend_from_slice(&encode_link(link));
    }
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&tmp)
            .map_err(|e| JournalError::io(&tmp, e))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| JournalError::io(&tmp, e))?;
    }
    let path = ladder_path(dir);
    std::fs::rename(&tmp, &path).map_err(|e| JournalError::io(&path, e))?;
    sync_dir(dir)
}
