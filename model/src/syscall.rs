//! Raw syscalls named in `capture.syscalls`.

use auditloop_model_derive::Fields;
use serde::{Deserialize, Serialize};

/// A syscall from `capture.syscalls`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "syscall", kind = Syscall)]
pub struct RawSyscall {
    /// Syscall name.
    pub name: String,
    /// Syscall number.
    pub nr: u32,
    /// Raw arguments.
    pub args: Vec<u64>,
    /// Return value; `None` when lost.
    pub ret: Option<i64>,
}
