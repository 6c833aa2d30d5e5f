//! Per-boot sequence numbers: event numbers continue across agent restarts within one boot and start at 1
//! after a reboot.
//!
//! `<state_dir>/seq` holds the boot id and a high-water mark. The mark is written ahead of use (in blocks
//! of [`BLOCK`]), so after a crash the next run starts above every number the crashed run could have used:
//! numbers are never reused within a boot, at the price of a gap after a crash. A clean stop records the
//! exact next number, so there is no gap.

use std::path::{Path, PathBuf};

/// Numbers reserved ahead of use.
pub const BLOCK: u64 = 1 << 20;

const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// The persisted high-water mark of this boot's sequence numbers.
#[derive(Debug)]
pub struct BootSeq {
    path: PathBuf,
    boot_id: String,
    reserved_until: u64,
}

impl BootSeq {
    /// Reads the mark under `state_dir` and returns it with the first number of this run.
    pub fn open(state_dir: &Path) -> std::io::Result<(BootSeq, u64)> {
        let boot_id = std::fs::read_to_string(BOOT_ID)?.trim().to_owned();
        BootSeq::open_with(state_dir, boot_id)
    }

    fn open_with(state_dir: &Path, boot_id: String) -> std::io::Result<(BootSeq, u64)> {
        std::fs::create_dir_all(state_dir)?;
        let path = state_dir.join("seq");
        let first = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| {
                let (id, next) = text.trim().split_once(' ')?;
                (id == boot_id).then(|| next.parse::<u64>().ok()).flatten()
            })
            .unwrap_or(1);
        let mut seq = BootSeq {
            path,
            boot_id,
            reserved_until: first,
        };
        seq.reserve(first)?;
        Ok((seq, first))
    }

    /// Call with the next number about to be used; extends the reservation when it runs low.
    pub fn advance(&mut self, next: u64) -> std::io::Result<()> {
        if next + BLOCK / 2 >= self.reserved_until {
            self.reserve(next)?;
        }
        Ok(())
    }

    /// Records the exact next number (clean stop).
    pub fn close(self, next: u64) -> std::io::Result<()> {
        self.write(next)
    }

    fn reserve(&mut self, next: u64) -> std::io::Result<()> {
        self.reserved_until = next + BLOCK;
        self.write(self.reserved_until)
    }

    fn write(&self, value: u64) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, format!("{} {value}\n", self.boot_id))?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_within_a_boot_and_restarts_after_reboot() {
        let dir = tempfile::tempdir().unwrap();
        let (seq, first) = BootSeq::open_with(dir.path(), "boot-a".into()).unwrap();
        assert_eq!(first, 1);
        seq.close(42).unwrap();
        let (seq, first) = BootSeq::open_with(dir.path(), "boot-a".into()).unwrap();
        assert_eq!(first, 42, "clean stop: no gap");
        drop(seq); // crash: no close
        let (mut seq, first) = BootSeq::open_with(dir.path(), "boot-a".into()).unwrap();
        assert_eq!(
            first,
            42 + BLOCK,
            "after a crash, start above the reservation"
        );
        seq.advance(first + BLOCK).unwrap();
        drop(seq);
        let (_, after) = BootSeq::open_with(dir.path(), "boot-a".into()).unwrap();
        assert!(after > first + BLOCK);
        let (_, rebooted) = BootSeq::open_with(dir.path(), "boot-b".into()).unwrap();
        assert_eq!(rebooted, 1);
    }
}
