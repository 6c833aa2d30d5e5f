//! Library target of the kernel programs crate (empty; the programs are in the `agent-ebpf` binary).
#![no_std]
