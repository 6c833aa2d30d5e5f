//! The wire records auditloop's kernel programs write and its userspace agent reads, and their decoder.
//!
//! The kernel side (`agent-ebpf`) writes the `repr(C)` records of [`wire`] into a BPF ring buffer; the
//! userspace side decodes them with [`decode`] (feature `user`). Turning records into events is the
//! agent's capture stage; the event model itself is the `auditloop-model` crate.
//!
//! This crate is `no_std` unless the `user` feature is on. It never allocates on the kernel side, holds no
//! logic that must be decided in the kernel, and must not know the event model, the journal or rules.
#![cfg_attr(not(feature = "user"), no_std)]
#![deny(missing_docs)]

pub mod wire;

#[cfg(feature = "user")]
pub mod decode;
