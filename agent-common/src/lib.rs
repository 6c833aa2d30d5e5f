//! Types shared by auditloop's kernel programs and its userspace agent.
//!
//! The kernel side (`agent-ebpf`) writes the `repr(C)` records of [`wire`] into a BPF ring buffer; the
//! userspace side decodes them with [`decode`] (feature `user`) and turns them into the one event model of
//! [`model`], which every later stage (journal, rules, shipper, collector) uses.
//!
//! This crate is `no_std` unless the `user` feature is on. It never allocates on the kernel side and holds
//! no logic that must be decided in the kernel.
#![cfg_attr(not(feature = "user"), no_std)]
#![deny(missing_docs)]

pub mod wire;

#[cfg(feature = "user")]
pub mod decode;
#[cfg(feature = "user")]
pub mod model;
