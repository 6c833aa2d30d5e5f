//! Probe families, one file each; each file names the tracepoints it attaches to.

pub mod exec;
pub mod lsm;
pub mod process;
pub mod sock;
pub mod syscall;
pub mod uring;
