//! Reading `/proc` text: fields of `/proc/<pid>/stat` and `/proc/<pid>/status`.

/// The effective uid (second field of the `Uid:` line) of a `/proc/<pid>/status` text.
pub fn parse_status_euid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The ppid field of a `/proc/<pid>/stat` line.
pub fn parse_stat_ppid(stat: &str) -> Option<u32> {
    stat_field(stat, 4)?.parse().ok()
}

/// Field `n` (1-based, as `man 5 proc` numbers them: 1 pid, 2 comm, 3 state, 4 ppid, …, 22 starttime) of
/// a `/proc/<pid>/stat` line, for fields after the comm (which may contain spaces and parens).
pub fn stat_field(stat: &str, n: usize) -> Option<&str> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(n.checked_sub(3)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_comm() {
        assert_eq!(parse_stat_ppid("42 (a) b (c) S 7 42 42 0"), Some(7));
        assert_eq!(parse_stat_ppid("42 (x"), None);
        assert_eq!(parse_stat_ppid(""), None);
        assert_eq!(stat_field("42 (a) b) S 7 42", 3), Some("S"));
        assert_eq!(
            stat_field("42 (a) S 7", 2),
            None,
            "fields before the comm are not served"
        );
    }
}
