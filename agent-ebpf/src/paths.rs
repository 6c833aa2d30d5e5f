//! Building path keys for the LPM-trie path maps from user-memory paths.

use agent_common::wire::{PATH_KEY_LEN, PathKey};
use aya_ebpf::{helpers::generated::bpf_probe_read_user_str, maps::lpm_trie::Key};

use crate::maps::PATH_SCRATCH;

/// Reads the path at `ptr` into the per-CPU filter key; None when unreadable.
#[inline(always)]
pub fn path_key(ptr: u64) -> Option<&'static Key<[u8; PATH_KEY_LEN]>> {
    let scratch = PATH_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: per-CPU scratch owned by this program run; `Key` and `PathKey` have the same layout
    // (u32 prefix length, then the bytes) and the key is only read by map lookups.
    unsafe {
        let key: *mut PathKey = scratch;
        let words = (*key).path.as_mut_ptr().cast::<u64>();
        let mut i = 0;
        while i < PATH_KEY_LEN / 8 {
            words.add(i).write_unaligned(0);
            i += 1;
        }
        let n = bpf_probe_read_user_str(
            (*key).path.as_mut_ptr().cast(),
            PATH_KEY_LEN as u32,
            ptr as *const _,
        );
        if n <= 0 {
            return None;
        }
        (*key).prefix_bits = (PATH_KEY_LEN * 8) as u32;
        Some(&*(scratch.cast::<Key<[u8; PATH_KEY_LEN]>>()))
    }
}
