//! Bounds-checked decoding of kernel records (userspace only).
//!
//! A record is accepted only if its length is exactly the size of the struct its kind names; anything else
//! is a [`DecodeError`] that the caller counts. Decoding never panics, whatever the bytes.

use crate::wire::{
    ARG_LEN, COMM_LEN, CloseWrite, ExecEnter, ExecExit, Exit, Fork, LsmDeny, MAX_ARGS,
    RecordHeader, RecordKind, STR_LEN, SockState, SysExit, Syscall, UringComplete, UringFile,
    UringOp, UringOpStrs, UringSetup,
};

/// A decoded kernel record.
#[derive(Clone, Debug)]
pub enum Record {
    /// `execve`/`execveat` entry (boxed: it is large).
    ExecEnter(Box<ExecEnter>),
    /// `execve`/`execveat` return.
    ExecExit(ExecExit),
    /// A new task.
    Fork(Fork),
    /// A process ended.
    Exit(Exit),
    /// A spec-driven syscall entry (boxed: it is large).
    Syscall(Box<Syscall>),
    /// The return of a recorded syscall entry.
    SysExit(SysExit),
    /// A descriptor opened for writing was closed.
    CloseWrite(CloseWrite),
    /// An io_uring instance was set up.
    UringSetup(UringSetup),
    /// An io_uring request was submitted; the strings are there for opcodes that name paths or an
    /// address (boxed: they are large).
    UringOp(UringOp, Option<Box<UringStrs>>),
    /// The descriptor of a recorded io_uring request whose SQE was not found.
    UringFile(UringFile),
    /// A recorded io_uring request completed.
    UringComplete(UringComplete),
    /// A TCP socket changed state.
    SockState(SockState),
    /// A BPF LSM program refused an operation.
    LsmDeny(Box<LsmDeny>),
}

/// The strings of a [`UringOpStrs`] record.
#[derive(Clone, Debug)]
pub struct UringStrs {
    /// Bytes used in each of `strs`.
    pub lens: [u32; 2],
    /// The string slots.
    pub strs: [[u8; STR_LEN]; 2],
}

impl UringStrs {
    /// The bytes of slot `i` (0 or 1) that were read.
    pub fn bytes(&self, i: usize) -> &[u8] {
        let (Some(slot), Some(&len)) = (self.strs.get(i), self.lens.get(i)) else {
            return &[];
        };
        &slot[..(len as usize).min(STR_LEN)]
    }

    /// Slot `i` as text, as far as it was read.
    pub fn text(&self, i: usize) -> String {
        c_text(self.bytes(i))
    }
}

impl Record {
    /// The header every record starts with.
    pub fn header(&self) -> &RecordHeader {
        match self {
            Record::ExecEnter(r) => &r.header,
            Record::ExecExit(r) => &r.header,
            Record::Fork(r) => &r.header,
            Record::Exit(r) => &r.header,
            Record::Syscall(r) => &r.header,
            Record::SysExit(r) => &r.header,
            Record::CloseWrite(r) => &r.header,
            Record::UringSetup(r) => &r.header,
            Record::UringOp(r, _) => &r.header,
            Record::UringFile(r) => &r.header,
            Record::UringComplete(r) => &r.header,
            Record::SockState(r) => &r.header,
            Record::LsmDeny(r) => &r.header,
        }
    }
}

/// Why a record could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than a record header.
    #[error("record of {len} bytes is shorter than a header ({need} bytes)")]
    Short {
        /// Bytes received.
        len: usize,
        /// Bytes a header needs.
        need: usize,
    },
    /// The header's kind is not one this build knows.
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
    /// The length does not match the kind's struct.
    #[error("{kind} record has {len} bytes, expected {expected}")]
    Length {
        /// Kind named by the header.
        kind: &'static str,
        /// Bytes received.
        len: usize,
        /// Bytes the kind's struct has.
        expected: usize,
    },
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
    let header_len = size_of::<RecordHeader>();
    let header_bytes = bytes.get(..header_len).ok_or(DecodeError::Short {
        len: bytes.len(),
        need: header_len,
    })?;
    let header: RecordHeader = bytemuck::pod_read_unaligned(header_bytes);
    let kind = RecordKind::from_u32(header.kind).ok_or(DecodeError::UnknownKind(header.kind))?;
    Ok(match kind {
        RecordKind::ExecEnter => Record::ExecEnter(Box::new(exact(kind, bytes)?)),
        RecordKind::ExecExit => Record::ExecExit(exact(kind, bytes)?),
        RecordKind::Fork => Record::Fork(exact(kind, bytes)?),
        RecordKind::Exit => Record::Exit(exact(kind, bytes)?),
        RecordKind::Syscall => Record::Syscall(Box::new(exact(kind, bytes)?)),
        RecordKind::SysExit => Record::SysExit(exact(kind, bytes)?),
        RecordKind::CloseWrite => Record::CloseWrite(exact(kind, bytes)?),
        RecordKind::UringSetup => Record::UringSetup(exact(kind, bytes)?),
        RecordKind::UringOp => Record::UringOp(exact(kind, bytes)?, None),
        RecordKind::UringOpStrs => {
            let rec: UringOpStrs = exact(kind, bytes)?;
            let strs = UringStrs {
                lens: rec.str_lens,
                strs: rec.strs,
            };
            Record::UringOp(rec.op, Some(Box::new(strs)))
        }
        RecordKind::UringFile => Record::UringFile(exact(kind, bytes)?),
        RecordKind::UringComplete => Record::UringComplete(exact(kind, bytes)?),
        RecordKind::SockState => Record::SockState(exact(kind, bytes)?),
        RecordKind::LsmDeny => Record::LsmDeny(Box::new(exact(kind, bytes)?)),
    })
}

fn exact<T: bytemuck::Pod>(kind: RecordKind, bytes: &[u8]) -> Result<T, DecodeError> {
    let expected = size_of::<T>();
    if bytes.len() != expected {
        return Err(DecodeError::Length {
            kind: kind.name(),
            len: bytes.len(),
            expected,
        });
    }
    Ok(bytemuck::pod_read_unaligned(bytes))
}

/// The text of a NUL-terminated (or NUL-padded) byte field, lossily converted to UTF-8.
pub fn c_text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The task name of a header.
pub fn comm(header: &RecordHeader) -> String {
    c_text(&header.comm[..COMM_LEN])
}

/// The filename of an exec entry, as far as it was read.
pub fn exec_filename(rec: &ExecEnter) -> String {
    let used = (rec.filename_len as usize).min(rec.filename.len());
    c_text(&rec.filename[..used])
}

/// The argv entries of an exec entry that were captured, in order, each paired with "was it cut".
pub fn exec_args(rec: &ExecEnter) -> Vec<(String, bool)> {
    let argc = (rec.argc as usize).min(MAX_ARGS);
    rec.args
        .iter()
        .zip(rec.arg_lens.iter())
        .take(argc)
        .enumerate()
        .map(|(i, (slot, &len))| {
            let used = usize::from(len).min(ARG_LEN);
            (c_text(&slot[..used]), rec.arg_truncated & (1 << i) != 0)
        })
        .collect()
}

/// String argument `i` (0 or 1) of a syscall record as text, as far as it was read.
pub fn syscall_str(rec: &Syscall, i: usize) -> String {
    c_text(syscall_bytes(rec, i))
}

/// The bytes of argument slot `i` (0 or 1) that were read (a socket address is raw bytes).
pub fn syscall_bytes(rec: &Syscall, i: usize) -> &[u8] {
    let (Some(slot), Some(&len)) = (rec.strs.get(i), rec.str_lens.get(i)) else {
        return &[];
    };
    &slot[..(len as usize).min(STR_LEN)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{EXEC_ARGS_TRUNCATED, PATH_LEN, TCP_ESTABLISHED, TCP_SYN_SENT};
    use proptest::prelude::*;

    fn header(kind: RecordKind) -> RecordHeader {
        let mut comm = [0u8; COMM_LEN];
        comm[..2].copy_from_slice(b"sh");
        RecordHeader {
            kind: kind as u32,
            aux: 0,
            ktime_ns: 7,
            pid: 10,
            tid: 11,
            uid: 0,
            gid: 0,
            comm,
            cgroup_id: 1,
        }
    }

    fn exec_enter() -> ExecEnter {
        let mut rec: ExecEnter = bytemuck::Zeroable::zeroed();
        rec.header = header(RecordKind::ExecEnter);
        rec.filename[..9].copy_from_slice(b"/bin/true");
        rec.filename_len = 10;
        for (i, arg) in [&b"true"[..], b"marker-1"].iter().enumerate() {
            rec.args[i][..arg.len()].copy_from_slice(arg);
            rec.arg_lens[i] = u16::try_from(arg.len() + 1).unwrap_or(0);
        }
        rec.argc = 2;
        rec
    }

    #[test]
    fn decodes_exec_enter() {
        let rec = exec_enter();
        let decoded = decode(bytemuck::bytes_of(&rec)).unwrap();
        let Record::ExecEnter(got) = decoded else {
            panic!("wrong kind: {decoded:?}");
        };
        assert_eq!(exec_filename(&got), "/bin/true");
        assert_eq!(
            exec_args(&got),
            vec![("true".to_string(), false), ("marker-1".to_string(), false)]
        );
        assert_eq!(comm(&got.header), "sh");
    }

    #[test]
    fn reports_truncation_flags() {
        let mut rec = exec_enter();
        rec.arg_truncated = 0b10;
        rec.flags = EXEC_ARGS_TRUNCATED;
        let Record::ExecEnter(got) = decode(bytemuck::bytes_of(&rec)).unwrap() else {
            panic!("wrong kind");
        };
        assert!(exec_args(&got)[1].1);
        assert!(!exec_args(&got)[0].1);
    }

    #[test]
    fn out_of_range_lengths_are_clamped() {
        let mut rec = exec_enter();
        rec.argc = 1000;
        rec.filename_len = 100_000;
        rec.arg_lens = [u16::MAX; MAX_ARGS];
        let Record::ExecEnter(got) = decode(bytemuck::bytes_of(&rec)).unwrap() else {
            panic!("wrong kind");
        };
        assert_eq!(exec_args(&got).len(), MAX_ARGS);
        assert_eq!(exec_filename(&got).len(), 9);
        assert!(exec_filename(&got).len() < PATH_LEN);
    }

    #[test]
    fn short_record_is_an_error() {
        assert_eq!(
            decode(&[1, 0, 0]).unwrap_err(),
            DecodeError::Short { len: 3, need: 56 }
        );
    }

    #[test]
    fn truncated_record_is_an_error() {
        let rec = exec_enter();
        let bytes = bytemuck::bytes_of(&rec);
        let err = decode(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::Length {
                kind: "exec_enter",
                ..
            }
        ));
    }

    #[test]
    fn unknown_kind_is_an_error() {
        let mut h = header(RecordKind::Exit);
        h.kind = 999;
        assert_eq!(
            decode(bytemuck::bytes_of(&h)).unwrap_err(),
            DecodeError::UnknownKind(999)
        );
    }

    #[test]
    fn decodes_fixed_records() {
        let exit = Exit {
            header: header(RecordKind::Exit),
            status: 3 << 8,
            flags: 1,
        };
        let Record::Exit(got) = decode(bytemuck::bytes_of(&exit)).unwrap() else {
            panic!("wrong kind");
        };
        assert_eq!(got, exit);
        let fork = Fork {
            header: header(RecordKind::Fork),
            child_tid: 99,
            flags: 0,
            clone_flags: 0,
        };
        assert_eq!(decode(bytemuck::bytes_of(&fork)).unwrap().header().pid, 10);
        let state = SockState {
            header: header(RecordKind::SockState),
            skaddr: 0xffff_8880_1234_5678,
            oldstate: TCP_SYN_SENT,
            newstate: TCP_ESTABLISHED,
            sport: 40000,
            dport: 22,
            family: 2,
            reserved: 0,
            saddr: [127, 0, 0, 1],
            daddr: [127, 0, 0, 1],
            saddr_v6: [0; 16],
            daddr_v6: [0; 16],
        };
        let bytes = bytemuck::bytes_of(&state);
        assert_eq!(
            decode(bytes).unwrap().header().kind,
            RecordKind::SockState as u32
        );
        assert!(matches!(
            decode(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Length { .. })
        ));
    }

    #[test]
    fn decodes_uring_ops_with_and_without_strings() {
        let mut op: UringOp = bytemuck::Zeroable::zeroed();
        op.header = header(RecordKind::UringOp);
        op.req = 42;
        op.opcode = 22;
        let Record::UringOp(got, None) = decode(bytemuck::bytes_of(&op)).unwrap() else {
            panic!("wrong kind");
        };
        assert_eq!(got.req, 42);
        let mut rec: UringOpStrs = bytemuck::Zeroable::zeroed();
        rec.op = op;
        rec.op.header.kind = RecordKind::UringOpStrs as u32;
        rec.strs[0][..11].copy_from_slice(b"/etc/shadow");
        rec.str_lens = [12, 1000];
        let Record::UringOp(got, Some(strs)) = decode(bytemuck::bytes_of(&rec)).unwrap() else {
            panic!("wrong kind");
        };
        assert_eq!(got.opcode, 22);
        assert_eq!(strs.text(0), "/etc/shadow");
        assert_eq!(
            strs.bytes(1).len(),
            STR_LEN,
            "a length past the slot is clamped"
        );
        let bytes = bytemuck::bytes_of(&rec);
        assert!(decode(&bytes[..bytes.len() - 8]).is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn garbage_with_valid_kind_never_panics(kind in 1u32..13, mut bytes in proptest::collection::vec(any::<u8>(), 56..4600)) {
            bytes[..4].copy_from_slice(&kind.to_ne_bytes());
            match decode(&bytes) {
                Ok(Record::ExecEnter(rec)) => {
                    let _ = exec_args(&rec);
                    let _ = exec_filename(&rec);
                }
                Ok(Record::Syscall(rec)) => {
                    let _ = syscall_str(&rec, 0);
                    let _ = syscall_bytes(&rec, 1);
                    let _ = syscall_bytes(&rec, 7);
                }
                Ok(Record::UringOp(_, Some(strs))) => {
                    let _ = strs.text(0);
                    let _ = strs.bytes(1);
                    let _ = strs.bytes(7);
                }
                _ => {}
            }
        }
    }
}
