//! auditloop's kernel programs.
//!
//! Tracepoint programs only (this kernel has lockdown and no kprobes): each reads its tracepoint's fields
//! with constant-offset loads from the context, fills one `agent_common::wire` record in the `EVENTS` ring
//! buffer and submits it without waking the reader (the reader is woken in batches, see [`emit`]). A record
//! that cannot be reserved is counted in `LOST`, per kind; nothing is dropped without a count.
//!
//! The programs decide nothing that userspace can decide: they only filter out the agent's own process.
#![no_std]
#![no_main]

mod ctx;
mod emit;
mod maps;
mod paths;
mod probes;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// The object's license; GPL-only helpers (`bpf_probe_read_user`, `bpf_send_signal`) require a
/// GPL-compatible one.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
