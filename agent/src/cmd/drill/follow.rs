//! Watching the running agent's journal: which process writes it, and the events appended from now on.
//!
//! The follower reads whole frames only (a frame the agent is still writing is read on a later poll) and
//! moves to the next segment when the agent rotates. It never verifies the chain (`auditloop verify` does)
//! and never writes to the journal.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use auditloop_journal::files::list_segments;
use auditloop_journal::record::{FrameError, SEGMENT_HEADER_LEN, decode_payload, read_frame};
use auditloop_journal::{JournalError, Payload};
use auditloop_model::Event;

/// The pid of the process that holds one of the journal's segments open for writing: the running agent.
/// `None` when there is none (or `/proc` cannot show it: other processes' descriptors need root).
pub fn journal_writer(journal: &Path) -> Option<u32> {
    let journal = journal.canonicalize().ok()?;
    let me = std::process::id();
    for pid in crate::capture::pids(Path::new("/proc")).ok()? {
        if pid == me {
            continue;
        }
        let proc_dir = Path::new("/proc").join(pid.to_string());
        let Ok(fds) = std::fs::read_dir(proc_dir.join("fd")) else {
            continue;
        };
        for fd in fds.filter_map(Result::ok) {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let is_segment = target.parent() == Some(journal.as_path())
                && target
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("seg-") && n.ends_with(".alj"));
            if is_segment && open_for_writing(&proc_dir, &fd.file_name()) {
                return Some(pid);
            }
        }
    }
    None
}

/// Whether `/proc/<pid>/fdinfo/<fd>` shows write access.
fn open_for_writing(proc_dir: &Path, fd: &std::ffi::OsStr) -> bool {
    let Ok(info) = std::fs::read_to_string(proc_dir.join("fdinfo").join(fd)) else {
        return false;
    };
    info.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| i32::from_str_radix(f.trim(), 8).ok())
        .is_some_and(|flags| flags & libc::O_ACCMODE != libc::O_RDONLY)
}

/// Reads the events appended to a journal after a starting point.
pub struct Follower {
    dir: PathBuf,
    index: u64,
    path: PathBuf,
    offset: u64,
}

impl Follower {
    /// A follower positioned after the last whole record of the newest segment.
    pub fn at_end(dir: &Path) -> Result<Follower, JournalError> {
        let Some((index, path)) = list_segments(dir)?.pop() else {
            return Err(JournalError::Damaged {
                path: dir.to_owned(),
                why: "no journal segment".into(),
            });
        };
        let mut follower = Follower {
            dir: dir.to_owned(),
            index,
            path,
            offset: SEGMENT_HEADER_LEN as u64,
        };
        follower.read_current(&mut |_| {})?;
        Ok(follower)
    }

    /// The events appended since the last call (or since [`Follower::at_end`]), in journal order.
    pub fn poll(&mut self) -> Result<Vec<Event>, JournalError> {
        let mut events = Vec::new();
        loop {
            let read = self.read_current(&mut |payload| {
                if let Ok(Payload::Event(event)) = decode_payload(payload) {
                    events.push(event);
                }
            })?;
            if read > 0 {
                return Ok(events);
            }
            // Nothing more here: move on once the agent has rotated to a newer segment.
            let next = list_segments(&self.dir)?
                .into_iter()
                .find(|(index, _)| *index > self.index);
            let Some((index, path)) = next else {
                return Ok(events);
            };
            self.index = index;
            self.path = path;
            self.offset = SEGMENT_HEADER_LEN as u64;
        }
    }

    /// Reads the whole frames after `offset` in the current segment, handing each payload to `each`;
    /// returns how many were read. A segment deleted by retention reads as empty.
    fn read_current(&mut self, each: &mut dyn FnMut(&[u8])) -> Result<usize, JournalError> {
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_error(&self.path, e)),
        };
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(self.offset))
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(|e| io_error(&self.path, e))?;
        let mut at = 0;
        let mut count = 0;
        while let Some(rest) = bytes.get(at..).filter(|r| !r.is_empty()) {
            match read_frame(rest) {
                Ok(frame) => {
                    each(frame.payload);
                    at += frame.len;
                    count += 1;
                }
                // The agent is still writing this frame.
                Err(FrameError::Torn { .. }) => break,
                Err(e) => {
                    return Err(JournalError::Damaged {
                        path: self.path.clone(),
                        why: format!("offset {}: {e}", self.offset + at as u64),
                    });
                }
            }
        }
        self.offset += at as u64;
        Ok(count)
    }
}

fn io_error(path: &Path, source: std::io::Error) -> JournalError {
    JournalError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::{Follower, list_segments};
    use auditloop_journal::{Journal, JournalOptions};
    use auditloop_model::{Event, EventBody, Loss, LossStage, Process, WallTime};

    fn loss(n: u64) -> Event {
        Event {
            seq: 0,
            time: WallTime::now(),
            mono_ns: n,
            process: Process::default(),
            event: EventBody::Loss(Loss {
                stage: LossStage::Decode,
                record: "x".repeat(300),
                count: n,
                total: n,
            }),
        }
    }

    #[test]
    fn follows_only_new_events_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = JournalOptions::in_state_dir(dir.path(), "host");
        opts.segment_bytes = 4096;
        let journal_dir = opts.dir.clone();
        let mut journal = Journal::open(opts).unwrap();
        for n in 0..3 {
            journal.append_event(&mut loss(n)).unwrap();
        }
        journal.sync().unwrap();
        let mut follower = Follower::at_end(&journal_dir).unwrap();
        assert!(follower.poll().unwrap().is_empty());
        for n in 100..140 {
            journal.append_event(&mut loss(n)).unwrap();
        }
        journal.sync().unwrap();
        let mut seen = Vec::new();
        for _ in 0..100 {
            seen.extend(follower.poll().unwrap().into_iter().map(|e| e.mono_ns));
        }
        assert_eq!(seen, (100..140).collect::<Vec<_>>());
        assert!(list_segments(&journal_dir).unwrap().len() > 1, "rotated");
    }
}
