//! The one error type of the rules language: every problem names `file:line:col`, shows the source line
//! with a caret under the offending token and, where one helps, a hint.
//!
//! Loading never stops at the first problem: [`RuleErrors`] collects every error of a rules set.

use std::fmt;

/// What kind of problem a [`RuleError`] reports (for callers and tests that match on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The rules file or directory could not be read.
    Io,
    /// The file is not valid YAML.
    Yaml,
    /// Valid YAML, but not a valid rules item (unknown key, wrong value type, missing key, …).
    Schema,
    /// A condition or output template could not be tokenized or parsed.
    Syntax,
    /// A field name that the registry does not know.
    UnknownField,
    /// A bare name that is neither a macro nor a field comparison.
    UnknownMacro,
    /// An operator or value that does not fit the field's type.
    TypeMismatch,
    /// A `regex` operand that does not compile.
    BadRegex,
    /// A `glob` operand that does not compile.
    BadGlob,
    /// Macros or lists that refer to themselves.
    Cycle,
    /// A rule, macro or list defined twice.
    Duplicate,
}

/// One problem in a rules set, located at `file:line:col`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", Rendered(self))]
#[non_exhaustive]
pub struct RuleError {
    /// What kind of problem this is.
    pub kind: ErrorKind,
    /// The rules file, as it was named to the loader.
    pub file: String,
    /// 1-based line; 0 when the problem has no position (an unreadable file).
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
    /// What is wrong.
    pub message: String,
    /// The source line at `line` (without its line break); empty when there is none.
    pub source_line: String,
    /// How many characters the caret underlines (at least 1).
    pub width: usize,
    /// A suggestion, e.g. the nearest known field name.
    pub hint: Option<String>,
}

impl RuleError {
    /// An error without a source position (I/O).
    pub(crate) fn io(file: &str, message: String) -> RuleError {
        RuleError {
            kind: ErrorKind::Io,
            file: file.to_string(),
            line: 0,
            col: 0,
            message,
            source_line: String::new(),
            width: 1,
            hint: None,
        }
    }

    /// Adds a hint.
    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> RuleError {
        self.hint = Some(hint.into());
        self
    }

    /// `file:line:col` of this error.
    pub fn location(&self) -> String {
        format!("{}:{}:{}", self.file, self.line, self.col)
    }
}

struct Rendered<'a>(&'a RuleError);

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        if e.line == 0 {
            write!(f, "{}: {}", e.file, e.message)?;
        } else {
            write!(f, "{}: {}", e.location(), e.message)?;
            if !e.source_line.is_empty() {
                write!(f, "\n    {}\n    ", e.source_line)?;
                // Keep tabs so the caret lines up under tab-indented text.
                for c in e.source_line.chars().take(e.col.saturating_sub(1)) {
                    f.write_str(if c == '\t' { "\t" } else { " " })?;
                }
                for _ in 0..e.width.max(1) {
                    f.write_str("^")?;
                }
            }
        }
        if let Some(hint) = &e.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

/// Every error found while loading a rules set.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct RuleErrors(pub Vec<RuleError>);

impl RuleErrors {
    /// The errors, in file order.
    pub fn errors(&self) -> &[RuleError] {
        &self.0
    }
}

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n\n")?;
            }
            write!(f, "{e}")?;
        }
        match self.0.len() {
            0 | 1 => Ok(()),
            n => write!(f, "\n\n{n} errors in rules"),
        }
    }
}

/// The candidates nearest to `name` by edit distance, formatted as a hint (`None` when nothing is close).
pub(crate) fn near_matches<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= (name.len().max(c.len()) / 3).clamp(1, 3))
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    let best = scored.first().map(|(d, _)| *d);
    let names: Vec<String> = scored
        .iter()
        .filter(|(d, _)| Some(*d) == best)
        .take(3)
        .map(|(_, c)| format!("`{c}`"))
        .collect();
    match names.len() {
        0 => None,
        _ => Some(format!("did you mean {}?", names.join(" or "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_matches_picks_close_names() {
        let hint = near_matches("proc.nmae", ["proc.name", "proc.pname", "file.path"]);
        assert_eq!(hint.as_deref(), Some("did you mean `proc.name`?"));
        let hint = near_matches("proc.xid", ["proc.tid", "proc.pid", "proc.ppid"]);
        assert_eq!(
            hint.as_deref(),
            Some("did you mean `proc.pid` or `proc.tid`?")
        );
        assert_eq!(near_matches("zzzzzz", ["proc.name"]), None);
    }
}
