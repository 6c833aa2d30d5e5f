//! Wildcard arms over vocabularies: a `match` with an arm naming one of [`VOCABULARIES`] must name every
//! value instead of ending in `_ =>` (guards and bindings are fine; a `_` arm that only follows a guarded
//! arm of the same value is not).

use syn::visit::Visit;

use super::source::{Crate, is_test_only};

/// Enum types whose values every `match` must list.
pub const VOCABULARIES: &[&str] = &[
    "EventBody",
    "EventKind",
    "ActionKind",
    "Action",
    "LossStage",
    "FileOp",
    "NetOp",
    "ChangeTrigger",
    "AlertKind",
    "HostStatus",
    "Severity",
    "UringOp",
    "UringUnresolved",
    "HoldState",
    "HoldStopper",
    "HoldDecision",
    "Decision",
];

/// Every `_ =>` arm of a match over a vocabulary in `krate`.
pub fn wildcards(krate: &Crate) -> Vec<String> {
    let mut out = Vec::new();
    for file in krate.files.values() {
        if krate.is_test(&file.module) {
            continue;
        }
        let mut v = Matches {
            file: file.path.display().to_string(),
            out: Vec::new(),
        };
        v.visit_file(&file.ast);
        out.extend(v.out);
    }
    out
}

struct Matches {
    file: String,
    out: Vec<String>,
}

/// The vocabulary a pattern names (`EventBody::Exec(..)`, `EventKind::Exec | EventKind::Fork`, …).
fn vocabulary(pat: &syn::Pat) -> Option<&'static str> {
    let path = match pat {
        syn::Pat::Path(p) => &p.path,
        syn::Pat::TupleStruct(p) => &p.path,
        syn::Pat::Struct(p) => &p.path,
        syn::Pat::Or(o) => return o.cases.iter().find_map(vocabulary),
        syn::Pat::Ident(i) => return i.subpat.as_ref().and_then(|(_, p)| vocabulary(p)),
        syn::Pat::Reference(r) => return vocabulary(&r.pat),
        _ => return None,
    };
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let ty = segments
        .len()
        .checked_sub(2)
        .and_then(|i| segments.get(i))?;
    VOCABULARIES.iter().copied().find(|v| v == ty)
}

impl<'ast> Visit<'ast> for Matches {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let test = match item {
            syn::Item::Mod(m) => is_test_only(&m.attrs),
            syn::Item::Fn(f) => is_test_only(&f.attrs),
            syn::Item::Impl(i) => is_test_only(&i.attrs),
            _ => false,
        };
        if !test {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_expr_match(&mut self, m: &'ast syn::ExprMatch) {
        if let Some(vocab) = m.arms.iter().find_map(|a| vocabulary(&a.pat)) {
            for arm in &m.arms {
                if matches!(arm.pat, syn::Pat::Wild(_)) && arm.guard.is_none() {
                    let line = arm.fat_arrow_token.spans[0].start().line;
                    self.out.push(format!(
                        "{}:{line}: `_ =>` in a match over {vocab}: name every value",
                        self.file
                    ));
                }
            }
        }
        syn::visit::visit_expr_match(self, m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(code: &str) -> Vec<String> {
        let ast = syn::parse_file(code).unwrap();
        let mut v = Matches {
            file: "x.rs".into(),
            out: Vec::new(),
        };
        v.visit_file(&ast);
        v.out
    }

    #[test]
    fn wildcard_over_a_vocabulary_is_found() {
        let bad = "fn f(b: &EventBody) -> u8 { match b { EventBody::Exec(_) => 1, _ => 0 } }";
        assert_eq!(findings(bad).len(), 1, "{:?}", findings(bad));
        let good =
            "fn f(k: EventKind) -> u8 { match k { EventKind::Exec => 1, EventKind::Fork => 0 } }";
        assert!(findings(good).is_empty());
        let other = "fn f(n: u8) -> u8 { match n { 1 => 1, _ => 0 } }";
        assert!(findings(other).is_empty());
        let tuple = "fn f(a: (u8, FileOp)) -> u8 { match a { (1, FileOp::Open) => 1, _ => 0 } }";
        assert!(findings(tuple).is_empty(), "tuples are out of scope");
    }
}
