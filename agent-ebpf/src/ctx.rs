//! Reading tracepoint fields.
//!
//! Fields are loaded directly at constant offsets from the context pointer: `TracePointContext::read_at`
//! uses `bpf_probe_read_kernel`, which lockdown=confidentiality refuses. Offsets and sizes come from
//! `/sys/kernel/tracing/events/<category>/<name>/format`; a load past the end of the record makes attach
//! fail with EACCES, so each load is the field's exact size.

use aya_ebpf::{EbpfContext, programs::TracePointContext};

/// Loads the field of type `T` at byte offset `OFF` of the tracepoint record.
///
/// # Safety
/// `OFF` and `size_of::<T>()` must describe a field inside the tracepoint's record, aligned to its size.
#[inline(always)]
pub unsafe fn field<T: Copy, const OFF: usize>(ctx: &TracePointContext) -> T {
    // SAFETY: the caller guarantees a field of type `T` lies at `OFF`; the verifier checks the access.
    unsafe { *(ctx.as_ptr().cast::<u8>().add(OFF).cast::<T>()) }
}
