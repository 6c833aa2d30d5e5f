//! Source positions: a rules file's text with its line table, and the YAML scalars (conditions, outputs)
//! with a map from each byte of their parsed text back to the file.
//!
//! `serde_yaml_ng` reports locations only in its errors, so the positions of items, keys and values are
//! found by a small scanner over the block-style YAML that rules files use (`- rule: …` items with
//! `key: value` lines). Each scalar's text is rebuilt from the source and compared with what
//! `serde_yaml_ng` parsed: when they agree (plain scalars, also folded over several lines; single-line
//! quoted scalars; `|` and `>` block scalars) every offset maps exactly; otherwise (flow style, exotic
//! escapes) errors point at the start of the scalar.

use crate::ast::Span;
use crate::error::{ErrorKind, RuleError};

/// One rules file: its name, text and line table.
#[derive(Debug)]
pub(crate) struct SourceFile {
    pub name: String,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub(crate) fn new(name: String, text: String) -> SourceFile {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceFile {
            name,
            text,
            line_starts,
        }
    }

    fn floor_boundary(&self, off: usize) -> usize {
        let mut off = off.min(self.text.len());
        while !self.text.is_char_boundary(off) {
            off -= 1;
        }
        off
    }

    /// 0-based line index and the line's start offset.
    fn line_of(&self, off: usize) -> (usize, usize) {
        let line = match self.line_starts.binary_search(&off) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        (line, self.line_starts.get(line).copied().unwrap_or(0))
    }

    fn line_text(&self, start: usize) -> &str {
        let rest = self.text.get(start..).unwrap_or("");
        let line = rest.split('\n').next().unwrap_or("");
        line.strip_suffix('\r').unwrap_or(line)
    }

    /// The byte offset of a 1-based line and character column (as YAML errors report them).
    pub(crate) fn offset_at(&self, line: usize, col: usize) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let text = self.line_text(start);
        start
            + text
                .char_indices()
                .nth(col.saturating_sub(1))
                .map_or(text.len(), |(i, _)| i)
    }

    /// An error at byte `off`, underlining `width` characters (clamped to the line).
    pub(crate) fn error(
        &self,
        kind: ErrorKind,
        off: usize,
        width: usize,
        message: String,
    ) -> RuleError {
        let off = self.floor_boundary(off);
        let (line, start) = self.line_of(off);
        let source_line = self.line_text(start);
        let col = self.text[start..off].chars().count() + 1;
        let left = source_line.chars().count().saturating_sub(col - 1);
        RuleError {
            kind,
            file: self.name.clone(),
            line: line + 1,
            col,
            message,
            source_line: source_line.to_string(),
            width: width.min(left).max(1),
            hint: None,
        }
    }
}

/// A scalar value's parsed text and where each of its bytes came from.
#[derive(Clone, Debug)]
pub(crate) struct Scalar {
    pub text: String,
    /// `(offset in text, offset in file)` per character, plus one past the end; empty when inexact.
    points: Vec<(usize, usize)>,
    /// File offset of the scalar (its first character, quote or block indicator).
    start: usize,
}

impl Scalar {
    /// A scalar whose characters cannot be mapped: everything points at `start`.
    pub(crate) fn at(text: String, start: usize) -> Scalar {
        Scalar {
            text,
            points: Vec::new(),
            start,
        }
    }

    /// A scalar written literally at file offset `start` (no quotes, escapes or folding).
    pub(crate) fn literal(text: &str, start: usize) -> Scalar {
        let mut points: Vec<(usize, usize)> =
            text.char_indices().map(|(i, _)| (i, start + i)).collect();
        points.push((text.len(), start + text.len()));
        Scalar {
            text: text.to_string(),
            points,
            start,
        }
    }

    /// The file offset of byte `off` of the text.
    pub(crate) fn file_offset(&self, off: usize) -> usize {
        match self.points.binary_search_by_key(&off, |p| p.0) {
            Ok(i) => self.points[i].1,
            Err(0) => self.start,
            Err(i) => self.points[i - 1].1,
        }
    }

    /// An error for the text in `span`.
    pub(crate) fn error(
        &self,
        file: &SourceFile,
        kind: ErrorKind,
        span: Span,
        message: String,
    ) -> RuleError {
        if self.points.is_empty() {
            return file.error(kind, self.start, 1, message);
        }
        let width = self
            .text
            .get(span.start..span.end.min(self.text.len()))
            .map_or(1, |t| t.chars().count());
        file.error(kind, self.file_offset(span.start), width, message)
    }
}

/// A key of a top-level item: where the key and its value start.
#[derive(Clone, Debug)]
pub(crate) struct KeyPos {
    pub name: String,
    pub key: usize,
    pub value: usize,
    /// The key's column (0-based).
    pub indent: usize,
}

/// A top-level sequence item: where its `-` is and its keys.
#[derive(Clone, Debug, Default)]
pub(crate) struct ItemPos {
    pub start: usize,
    pub keys: Vec<KeyPos>,
}

impl ItemPos {
    pub(crate) fn key(&self, name: &str) -> Option<&KeyPos> {
        self.keys.iter().find(|k| k.name == name)
    }
}

/// `(start offset, text without line break)` of every line.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut off = 0;
    text.split('\n').map(move |l| {
        let start = off;
        off += l.len() + 1;
        (start, l.strip_suffix('\r').unwrap_or(l))
    })
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_dash(content: &str) -> bool {
    content == "-" || content.starts_with("- ") || content.starts_with("-\t")
}

/// Finds the top-level items of a block-style YAML sequence and their keys.
pub(crate) fn scan_items(text: &str) -> Vec<ItemPos> {
    let all: Vec<(usize, &str)> = lines(text).collect();
    let mut items: Vec<ItemPos> = Vec::new();
    let mut seq_indent = None;
    let mut key_indent = None;
    for (i, &(off, line)) in all.iter().enumerate() {
        let indent = indent_of(line);
        let content = &line[indent..];
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        if indent == 0 && ["---", "...", "%"].iter().any(|p| content.starts_with(p)) {
            continue;
        }
        if seq_indent.is_none() && is_dash(content) {
            seq_indent = Some(indent);
        }
        if Some(indent) == seq_indent && is_dash(content) {
            let after = &content[1..];
            let gap = after.len() - after.trim_start().len();
            items.push(ItemPos {
                start: off + indent,
                keys: Vec::new(),
            });
            key_indent = (!after.trim().is_empty()).then_some(indent + 1 + gap);
        } else if key_indent.is_none() && !items.is_empty() && Some(indent) > seq_indent {
            key_indent = Some(indent);
        }
        if let (Some(ki), Some(item)) = (key_indent, items.last_mut())
            && let Some(key) = key_at(&all, i, ki)
        {
            item.keys.push(key);
        }
    }
    items
}

/// The lines nested under `parent` (a key at column `parent.indent`): those after the key's line indented
/// deeper, or at the key's column when they start a block sequence item (`- …`). `(first byte, end byte)`.
fn nested_region(text: &str, parent: &KeyPos) -> Option<(usize, usize)> {
    let mut region: Option<(usize, usize)> = None;
    for (off, line) in lines(text).filter(|(off, _)| *off > parent.key) {
        let (indent, content) = (indent_of(line), line.trim_start_matches(' '));
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        if indent < parent.indent || (indent == parent.indent && !is_dash(content)) {
            break;
        }
        let end = off + line.len();
        region = Some(region.map_or((off, end), |(start, _)| (start, end)));
    }
    region
}

/// The keys of the block mapping nested under `parent` (absolute offsets; empty for flow style).
pub(crate) fn nested_keys(text: &str, parent: &KeyPos) -> Vec<KeyPos> {
    let Some((start, end)) = nested_region(text, parent) else {
        return Vec::new();
    };
    let all: Vec<(usize, &str)> = lines(&text[..end]).filter(|(o, _)| *o >= start).collect();
    let Some(col) = all.first().map(|(_, l)| indent_of(l)) else {
        return Vec::new();
    };
    (0..all.len())
        .filter(|&i| indent_of(all[i].1) == col)
        .filter_map(|i| key_at(&all, i, col))
        .collect()
}

/// The items of the block sequence nested under `parent`, with their keys (absolute offsets; empty for
/// flow style).
pub(crate) fn nested_items(text: &str, parent: &KeyPos) -> Vec<ItemPos> {
    let Some((start, end)) = nested_region(text, parent) else {
        return Vec::new();
    };
    let mut items = scan_items(&text[start..end]);
    for item in &mut items {
        item.start += start;
        for k in &mut item.keys {
            k.key += start;
            k.value += start;
        }
    }
    items
}

/// A `name:` key starting at column `col` of line `i`, with the start of its value.
fn key_at(all: &[(usize, &str)], i: usize, col: usize) -> Option<KeyPos> {
    let (off, line) = all[i];
    let rest = line.get(col..)?;
    let name_len = rest
        .char_indices()
        .find(|&(j, c)| !(c.is_ascii_alphanumeric() || c == '_' || (j > 0 && c == '-')))
        .map_or(rest.len(), |(j, _)| j);
    let name = &rest[..name_len];
    let after = rest[name_len..]
        .trim_start_matches([' ', '\t'])
        .strip_prefix(':')?;
    if name.is_empty() || !(after.is_empty() || after.starts_with([' ', '\t'])) {
        return None;
    }
    let value_text = after.trim_start_matches([' ', '\t']);
    let key = off + col;
    let value = if value_text.is_empty() || value_text.starts_with('#') {
        // The value starts on a following line.
        all[i + 1..]
            .iter()
            .find(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map_or(key, |&(o, l)| o + indent_of(l))
    } else {
        off + (line.len() - value_text.len())
    };
    Some(KeyPos {
        name: name.to_string(),
        key,
        value,
        indent: col,
    })
}

/// The scalar value of `key`, mapped exactly when the source can be rebuilt into `parsed`.
pub(crate) fn scalar_at(text: &str, key: &KeyPos, parsed: &str) -> Scalar {
    let rebuilt = match text.get(key.value..).and_then(|t| t.chars().next()) {
        Some('"') => quoted(text, key.value, '"'),
        Some('\'') => quoted(text, key.value, '\''),
        Some('|' | '>') => block(text, key.value, key.indent),
        Some(_) => plain(text, key.value, key.indent),
        None => None,
    };
    match rebuilt {
        Some((s, mut points)) if s.trim_end_matches('\n') == parsed.trim_end_matches('\n') => {
            let end = points.last().map_or(key.value, |&(_, f)| f + 1);
            points.push((s.len(), end));
            Scalar {
                text: parsed.to_string(),
                points,
                start: key.value,
            }
        }
        _ => Scalar::at(parsed.to_string(), key.value),
    }
}

type Rebuilt = Option<(String, Vec<(usize, usize)>)>;

fn push(s: &mut String, points: &mut Vec<(usize, usize)>, c: char, file_off: usize) {
    points.push((s.len(), file_off));
    s.push(c);
}

fn line_end(text: &str, off: usize) -> usize {
    let end = text[off..].find('\n').map_or(text.len(), |i| off + i);
    if text[..end].ends_with('\r') {
        end - 1
    } else {
        end
    }
}

/// Drops a trailing ` # comment` and trailing blanks from a plain scalar's line.
fn plain_part(line: &str) -> &str {
    let cut = line
        .find(" #")
        .or_else(|| line.find("\t#"))
        .unwrap_or(line.len());
    line[..cut].trim_end()
}

fn plain(text: &str, start: usize, indent: usize) -> Rebuilt {
    let (mut s, mut points) = (String::new(), Vec::new());
    let first = plain_part(&text[start..line_end(text, start)]);
    for (i, c) in first.char_indices() {
        push(&mut s, &mut points, c, start + i);
    }
    let mut next = text[start..].find('\n').map(|i| start + i + 1);
    while let Some(off) = next {
        let line = &text[off..line_end(text, off)];
        let content = line.trim_start();
        if content.is_empty() || indent_of(line) <= indent || content.starts_with('#') {
            break;
        }
        let from = off + (line.len() - content.len());
        push(&mut s, &mut points, ' ', from);
        for (i, c) in plain_part(content).char_indices() {
            push(&mut s, &mut points, c, from + i);
        }
        next = text[off..].find('\n').map(|i| off + i + 1);
    }
    Some((s, points))
}

fn quoted(text: &str, start: usize, quote: char) -> Rebuilt {
    let (mut s, mut points) = (String::new(), Vec::new());
    let body = &text[start + 1..line_end(text, start)];
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let at = start + 1 + i;
        match (quote, c) {
            ('\'', '\'') if matches!(chars.peek(), Some((_, '\''))) => {
                chars.next();
                push(&mut s, &mut points, '\'', at);
            }
            (q, c) if q == c => return Some((s, points)),
            ('"', '\\') => {
                let e = match chars.next()?.1 {
                    'n' => '\n',
                    't' => '\t',
                    '0' => '\0',
                    e @ ('\\' | '"' | '/' | ' ') => e,
                    _ => return None,
                };
                push(&mut s, &mut points, e, at);
            }
            _ => push(&mut s, &mut points, c, at),
        }
    }
    None
}

fn block(text: &str, start: usize, indent: usize) -> Rebuilt {
    let folded = text[start..].starts_with('>');
    let (mut s, mut points) = (String::new(), Vec::new());
    let mut next = text[start..].find('\n').map(|i| start + i + 1);
    let mut content_indent = None;
    let mut prev_end = start;
    while let Some(off) = next {
        let line = &text[off..line_end(text, off)];
        let li = indent_of(line);
        if !line.trim().is_empty() {
            let ci = *content_indent.get_or_insert(li);
            if li < ci || ci <= indent {
                break;
            }
            if folded && li > ci {
                return None;
            }
        } else if folded {
            return None;
        }
        if content_indent.is_some() {
            if prev_end != start {
                push(
                    &mut s,
                    &mut points,
                    if folded { ' ' } else { '\n' },
                    prev_end,
                );
            }
            let from = off + content_indent.unwrap_or(0).min(line.len());
            for (i, c) in text[from..off + line.len()].char_indices() {
                push(&mut s, &mut points, c, from + i);
            }
            prev_end = off + line.len();
        }
        next = text[off..].find('\n').map(|i| off + i + 1);
    }
    Some((s, points))
}
