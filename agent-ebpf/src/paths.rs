//! Building path keys for the LPM-trie path maps from user-memory paths.

use agent_common::wire::{PATH_KEY_LEN, PathKey};
use aya_ebpf::{helpers::generated::bpf_probe_read_user_str, maps::lpm_trie::Key};

use crate::maps::PATH_SCRATCH;

/// A path read into the per-CPU filter key, and whether it is provably canonical.
pub struct PathKeyRead {
    /// The filter key.
    pub key: &'static Key<[u8; PATH_KEY_LEN]>,
    /// Whether the path is provably canonical (see [`is_canonical`]); only then may the kernel's path
    /// filters decide on it alone.
    pub canonical: bool,
}

/// Whether `path` (NUL-terminated within the buffer) is provably canonical: absolute, with no empty, `.`
/// or `..` component, not under `/proc/<pid>`, `/proc/self` or `/proc/thread-self` (whose links lead
/// elsewhere), and wholly in the buffer. It may still pass through a symbolic link: those are caught in
/// userspace and by fanotify, never by a string match.
#[inline(always)]
pub fn is_canonical(path: &[u8; PATH_KEY_LEN]) -> bool {
    if path[0] != b'/' {
        return false;
    }
    if path[1] == 0 {
        return true;
    }
    if path[0..6] == *b"/proc/" {
        let c = path[6];
        if c.is_ascii_digit() || (path[6..11] == *b"self/" || path[6..11] == *b"self\0") {
            return false;
        }
        if path[6..17] == *b"thread-self" {
            return false;
        }
    }
    // Look at every `/`: what follows must not be another `/`, `.` or `..` ending the component, or the
    // end (a trailing slash). No state is carried between positions, so the verifier's work stays linear.
    let mut i = 0usize;
    while i < PATH_KEY_LEN - 3 {
        let a = path[i];
        if a == 0 {
            return true;
        }
        if a == b'/' {
            let (b, c, d) = (path[i + 1], path[i + 2], path[i + 3]);
            let dot = b == b'.' && (c == b'/' || c == 0);
            let dotdot = b == b'.' && c == b'.' && (d == b'/' || d == 0);
            if b == b'/' || b == 0 || dot || dotdot {
                return false;
            }
        }
        i += 1;
    }
    // Too long to check in the key: userspace decides.
    false
}

/// Reads the path at `ptr` into the per-CPU filter key; None when unreadable.
#[inline(always)]
pub fn path_key(ptr: u64) -> Option<PathKeyRead> {
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
        let canonical = is_canonical(&(*key).path);
        Some(PathKeyRead {
            key: &*(scratch.cast::<Key<[u8; PATH_KEY_LEN]>>()),
            canonical,
        })
    }
}
