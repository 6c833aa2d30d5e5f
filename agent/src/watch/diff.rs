//! Unified diffs of watched text files.
//!
//! A diff is only made of text (valid UTF-8 without NUL bytes); binary content never appears in one. The
//! diff is bounded: the line diff has a time limit (it then approximates), and the text is cut at a line
//! boundary once it passes the size limit, so a hostile file cannot make the agent spend unbounded time
//! or memory describing it.

use std::path::Path;
use std::time::Duration;

use similar::TextDiff;

/// Lines of context around each change.
const CONTEXT_LINES: usize = 3;

/// Time after which the line diff stops searching for the minimal diff and approximates.
const DIFF_TIMEOUT: Duration = Duration::from_millis(500);

/// The header name of a side that does not exist.
const NO_FILE: &str = "/dev/null";

/// `bytes` as text, if they are valid UTF-8 and contain no NUL byte.
pub(crate) fn as_text(bytes: &[u8]) -> Option<&str> {
    if bytes.contains(&0) {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

/// A unified diff from `old` to `new` (`None` for a side that does not exist), with headers
/// `a/<path>` and `b/<path>` (the leading `/` dropped, as `patch -p1` expects) and cut at a line
/// boundary to at most `max_len` bytes. Returns the text and whether it was cut.
pub(crate) fn unified(
    path: &Path,
    old: Option<&str>,
    new: Option<&str>,
    max_len: usize,
) -> (String, bool) {
    let name = path.to_string_lossy();
    let name = name.trim_start_matches('/');
    let old_header = old.map_or_else(|| NO_FILE.to_owned(), |_| format!("a/{name}"));
    let new_header = new.map_or_else(|| NO_FILE.to_owned(), |_| format!("b/{name}"));
    let diff = TextDiff::configure()
        .timeout(DIFF_TIMEOUT)
        .diff_lines(old.unwrap_or(""), new.unwrap_or(""));
    let text = diff
        .unified_diff()
        .context_radius(CONTEXT_LINES)
        .header(&old_header, &new_header)
        .to_string();
    truncate_at_line(text, max_len)
}

/// Cuts `text` to at most `max_len` bytes, after the last newline that fits (or, when no whole line
/// fits, at the last character boundary that does). Returns the text and whether it was cut.
fn truncate_at_line(mut text: String, max_len: usize) -> (String, bool) {
    if text.len() <= max_len {
        return (text, false);
    }
    let mut end = max_len;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    if let Some(newline) = text.get(..end).and_then(|head| head.rfind('\n')) {
        end = newline + 1;
    }
    text.truncate(end);
    (text, true)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{as_text, truncate_at_line, unified};

    #[test]
    fn text_detection() {
        assert_eq!(as_text(b"root:x:0:0\n"), Some("root:x:0:0\n"));
        assert_eq!(as_text(b""), Some(""));
        assert_eq!(as_text(b"a\0b"), None);
        assert_eq!(as_text(&[0xff, 0xfe]), None);
    }

    #[test]
    fn headers_and_lines() {
        let (text, cut) = unified(
            Path::new("/etc/passwd"),
            Some("a\nold line\nc\n"),
            Some("a\nnew line\nc\n"),
            1024,
        );
        assert!(!cut);
        assert!(
            text.starts_with("--- a/etc/passwd\n+++ b/etc/passwd\n"),
            "{text}"
        );
        assert!(text.contains("\n-old line\n"), "{text}");
        assert!(text.contains("\n+new line\n"), "{text}");
    }

    #[test]
    fn missing_side_is_dev_null() {
        let (text, _) = unified(Path::new("/etc/cron.d/x"), None, Some("job\n"), 1024);
        assert!(
            text.starts_with("--- /dev/null\n+++ b/etc/cron.d/x\n"),
            "{text}"
        );
        let (text, _) = unified(Path::new("/etc/cron.d/x"), Some("job\n"), None, 1024);
        assert!(
            text.starts_with("--- a/etc/cron.d/x\n+++ /dev/null\n"),
            "{text}"
        );
    }

    #[test]
    fn truncation_is_at_line_boundary() {
        let (text, cut) = truncate_at_line("one\ntwo\nthree\n".to_owned(), 10);
        assert!(cut);
        assert_eq!(text, "one\ntwo\n");
        let (text, cut) = truncate_at_line("one\n".to_owned(), 4);
        assert!(!cut);
        assert_eq!(text, "one\n");
        // No whole line fits: cut at a character boundary.
        let (text, cut) = truncate_at_line("ééé\n".to_owned(), 3);
        assert!(cut);
        assert_eq!(text, "é");
    }
}
