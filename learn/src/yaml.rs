//! Writing rules files by hand-made YAML, so that every list item and rule carries a comment (support,
//! first and last seen). Every scalar the baseline supplies is written quoted; conditions are block
//! scalars of tokens this crate wrote, with values quoted for the rules lexer.

use std::fmt::Write;

use auditloop_model::WallTime;

use crate::baseline::Seen;

/// `s` as a YAML double-quoted scalar (JSON's string syntax is valid YAML).
pub(crate) fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// `s` as a value in a condition: bare when it is a plain absolute path, else quoted for the rules lexer.
pub(crate) fn literal(s: &str) -> String {
    let plain = s.starts_with('/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+@:".contains(c));
    if plain {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A time to the second, for comments.
pub(crate) fn when(t: WallTime) -> String {
    humantime::format_rfc3339_seconds(t.to_system_time()).to_string()
}

/// `seen` as a comment tail: `12 times, 2026-12-01T10:00:00Z .. 2026-12-03T11:00:00Z`.
pub(crate) fn support(seen: &Seen) -> String {
    let times = if seen.count == 1 { "time" } else { "times" };
    format!(
        "{} {times}, {} .. {}",
        seen.count,
        when(seen.first),
        when(seen.last)
    )
}

/// A comment line per line of `text` (line breaks in `text` never escape the comment).
pub(crate) fn comment(out: &mut String, indent: &str, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "{indent}# {}", line.replace('\r', " "));
    }
}

/// One list item: the value, and what the baseline knows of it.
pub(crate) struct Item {
    /// As written in YAML (quoted string or number).
    pub value: String,
    /// Its comment.
    pub note: String,
}

/// A `- list:` item.
pub(crate) fn list(out: &mut String, name: &str, items: &[Item]) {
    let _ = writeln!(out, "- list: {name}");
    if items.is_empty() {
        let _ = writeln!(out, "  items: []");
        return;
    }
    let _ = writeln!(out, "  items:");
    for item in items {
        let note = item.note.replace(['\n', '\r'], " ");
        let _ = writeln!(out, "    - {}  # {note}", item.value);
    }
}

/// The parts of a `- rule:` item.
pub(crate) struct RuleText<'a> {
    pub name: &'a str,
    pub desc: &'a str,
    /// Conjuncts, written one per line of a folded block.
    pub condition: &'a [String],
    pub output: &'a str,
    pub tags: &'a [&'a str],
}

/// A `- rule:` item, alert-only.
pub(crate) fn rule(out: &mut String, r: &RuleText<'_>) {
    let _ = writeln!(out, "- rule: {}", r.name);
    let _ = writeln!(out, "  desc: {}", quote(r.desc));
    let _ = writeln!(out, "  condition: >-");
    for (i, part) in r.condition.iter().enumerate() {
        let and = if i == 0 { "" } else { "and " };
        let _ = writeln!(out, "    {and}{part}");
    }
    let _ = writeln!(out, "  output: {}", quote(r.output));
    let _ = writeln!(out, "  severity: warning");
    let _ = writeln!(out, "  tags: [{}]", r.tags.join(", "));
    let _ = writeln!(out, "  actions: [alert]");
}
