//! Fuzz target: the kernel ring-buffer record decoder on arbitrary bytes.
#![no_main]

use agent_common::decode::{Record, decode, exec_args, exec_filename, syscall_bytes, syscall_str};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok(Record::ExecEnter(rec)) => {
            let _ = exec_args(&rec);
            let _ = exec_filename(&rec);
        }
        Ok(Record::Syscall(rec)) => {
            let _ = syscall_str(&rec, 0);
            let _ = syscall_bytes(&rec, 1);
        }
        _ => {}
    }
});
