//! Output templates: literal text with `%field` placeholders (`%%` is a literal `%`, a `%` not followed
//! by a field name stays as it is, trailing dots end a name so `%file.path.` works in sentences). Field
//! names are checked like in conditions; absent fields render as `<NA>`.

use crate::ast::Span;
use crate::check::Checker;
use crate::eval::{Part, Template};
use crate::parser::parse_field_ref;
use crate::source::Scalar;

impl Checker<'_> {
    /// Compiles an output template: `%field` placeholders (`%%` is a literal `%`).
    pub(crate) fn template(&mut self, file: usize, sc: &Scalar) -> Option<Template> {
        let t = sc.text.as_str();
        let (mut parts, mut text, mut ok, mut i) = (Vec::new(), String::new(), true, 0);
        while let Some(rel) = t[i..].find('%') {
            let p = i + rel;
            text.push_str(&t[i..p]);
            if t[p + 1..].starts_with('%') {
                text.push('%');
                i = p + 2;
                continue;
            }
            let name_len = t[p + 1..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(t.len() - p - 1);
            let mut end = p + 1 + name_len;
            let index_len = t[end..].strip_prefix('[').and_then(|r| {
                r.find(']')
                    .filter(|&j| j > 0 && r[..j].bytes().all(|b| b.is_ascii_digit()))
            });
            match index_len {
                Some(j) => end += j + 2,
                None => end = p + 1 + t[p + 1..end].trim_end_matches('.').len(),
            }
            if end == p + 1 {
                text.push('%');
                i = p + 1;
                continue;
            }
            let span = Span::new(p + 1, end);
            let field = parse_field_ref(&t[p + 1..end], span).ok();
            match field.and_then(|f| self.field(file, sc, &f)) {
                Some((sel, _)) => {
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Field(sel));
                }
                None => ok = false,
            }
            i = end;
        }
        text.push_str(&t[i..]);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        ok.then_some(Template { parts })
    }
}
