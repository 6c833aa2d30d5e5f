//! Descriptor and `/proc` helpers for resolving syscall paths (the walk itself is in `canon.rs`).

/// `AT_FDCWD` as the kernel passes it (a 32-bit -100 in a 64-bit slot).
pub const AT_FDCWD: i64 = -100;

/// The dirfd argument as the kernel sees it (an `int` in a 64-bit slot).
pub fn dirfd(raw: u64) -> i64 {
    i64::from(raw as u32 as i32)
}

/// `readlink /proc/<pid>/<what>` (e.g. `cwd`, `exe`, `fd/3`).
pub fn proc_link(pid: u32, what: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/{what}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirfd_sign_extends_the_int() {
        assert_eq!(dirfd(0xffff_ff9c), AT_FDCWD);
        assert_eq!(dirfd(0xffff_ffff_ffff_ff9c), AT_FDCWD);
        assert_eq!(dirfd(3), 3);
    }
}
