//! The compiled form of conditions and output templates, and their evaluation against one [`Event`].
//!
//! Everything that can be prepared ahead is prepared by `check`: macros are inlined, lists expanded into
//! sets, numbers parsed, regexes and globs compiled, `icontains` needles lower-cased. Evaluation reads
//! field values by reference from the event; only the few derived text fields (`proc.cmdline`,
//! `proc.args`, `proc.pcmdline`, `setid.ids`, `evt.time`) allocate. Evaluation never panics.

use std::collections::HashSet;
use std::fmt::Write;

use auditloop_model::{Event, EventKind};
use globset::GlobMatcher;
use regex::Regex;

use crate::ast::CmpOp;
use crate::fields::{EVT_KIND, FieldDef, Get, Value};

/// A resolved field: its registry entry's name and getter, plus the `[N]` index.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FieldSel {
    pub name: &'static str,
    pub(crate) get: Get,
    pub index: Option<u32>,
}

impl FieldSel {
    /// `def` with `index`.
    pub(crate) fn new(def: &'static FieldDef, index: Option<u32>) -> FieldSel {
        FieldSel {
            name: def.name,
            get: def.get,
            index,
        }
    }

    /// The field's value in `ev`; `None` when absent.
    pub(crate) fn get<'e>(&self, ev: &'e Event) -> Option<Value<'e>> {
        self.get.read(ev, self.index)
    }

    /// Whether this is `evt.kind`.
    pub(crate) fn is_kind(&self) -> bool {
        self.name == EVT_KIND
    }
}

/// A compiled condition.
#[derive(Clone, Debug)]
pub(crate) enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Exists(FieldSel),
    Test(FieldSel, Test),
}

/// A compiled comparison of one field value.
#[derive(Clone, Debug)]
pub(crate) enum Test {
    StrEq(String),
    StrNe(String),
    StrIn(HashSet<String>),
    Contains(String),
    /// Needle already ASCII-lower-cased.
    IContains(String),
    StartsWith(String),
    EndsWith(String),
    Glob(GlobMatcher),
    Regex(Regex),
    /// One of `=`, `!=`, `<`, `<=`, `>`, `>=`.
    NumCmp(CmpOp, i128),
    NumIn(Vec<i128>),
    /// True when `value & mask != 0`.
    BitAnd(i128),
    BoolEq(bool),
    /// `=`, `!=` (any type) or an order (numbers) against another field of the same event and type; false
    /// when either is absent.
    Field(CmpOp, FieldSel),
}

impl Cond {
    /// Whether the condition holds for `ev`.
    pub(crate) fn eval(&self, ev: &Event) -> bool {
        match self {
            Cond::And(all) => all.iter().all(|c| c.eval(ev)),
            Cond::Or(any) => any.iter().any(|c| c.eval(ev)),
            Cond::Not(c) => !c.eval(ev),
            Cond::Exists(f) => f.get(ev).is_some(),
            Cond::Test(f, Test::Field(op, other)) => match (f.get(ev), other.get(ev)) {
                (Some(a), Some(b)) => compare_fields(*op, &a, &b),
                _ => false,
            },
            Cond::Test(f, test) => match f.get.list() {
                None => f.get(ev).is_some_and(|v| test.holds(&v)),
                Some(entries) => {
                    let entries = entries(ev);
                    match test {
                        // `!=` on a list: no entry equals (so `!=` stays `not =`).
                        Test::StrNe(s) => {
                            !entries.is_empty()
                                && !entries.iter().any(|v| Test::StrEq(s.clone()).holds(v))
                        }
                        _ => entries.iter().any(|v| test.holds(v)),
                    }
                }
            },
        }
    }
}

/// `a op b` for two values of one type (the checker made sure of it).
fn compare_fields(op: CmpOp, a: &Value<'_>, b: &Value<'_>) -> bool {
    let order = match (a, b) {
        (Value::Str(x), Value::Str(y)) => x.as_ref().cmp(y.as_ref()),
        (Value::Num(x), Value::Num(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => return false,
    };
    match op {
        CmpOp::Eq => order.is_eq(),
        CmpOp::Ne => order.is_ne(),
        CmpOp::Lt => order.is_lt(),
        CmpOp::Le => order.is_le(),
        CmpOp::Gt => order.is_gt(),
        CmpOp::Ge => order.is_ge(),
        CmpOp::In
        | CmpOp::Contains
        | CmpOp::IContains
        | CmpOp::StartsWith
        | CmpOp::EndsWith
        | CmpOp::Glob
        | CmpOp::Regex
        | CmpOp::BitAnd => false,
    }
}

fn icontains(hay: &str, needle_lower: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle_lower.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

impl Test {
    fn holds(&self, v: &Value<'_>) -> bool {
        match (self, v) {
            (Test::StrEq(s), Value::Str(v)) => v == s,
            (Test::StrNe(s), Value::Str(v)) => v != s,
            (Test::StrIn(set), Value::Str(v)) => set.contains(v.as_ref()),
            (Test::Contains(s), Value::Str(v)) => v.contains(s.as_str()),
            (Test::IContains(s), Value::Str(v)) => icontains(v, s),
            (Test::StartsWith(s), Value::Str(v)) => v.starts_with(s.as_str()),
            (Test::EndsWith(s), Value::Str(v)) => v.ends_with(s.as_str()),
            (Test::Glob(g), Value::Str(v)) => g.is_match(v.as_ref()),
            (Test::Regex(r), Value::Str(v)) => r.is_match(v),
            (Test::NumCmp(op, n), Value::Num(v)) => match op {
                CmpOp::Eq => v == n,
                CmpOp::Ne => v != n,
                CmpOp::Lt => v < n,
                CmpOp::Le => v <= n,
                CmpOp::Gt => v > n,
                CmpOp::Ge => v >= n,
                _ => false,
            },
            (Test::NumIn(ns), Value::Num(v)) => ns.contains(v),
            (Test::BitAnd(mask), Value::Num(v)) => v & mask != 0,
            (Test::BoolEq(b), Value::Bool(v)) => v == b,
            // Compared in `Cond::eval`, which has the event.
            (Test::Field(..), _) => false,
            _ => false,
        }
    }
}

/// A compiled output template: literal text and `%field` placeholders.
#[derive(Clone, Debug, Default)]
pub(crate) struct Template {
    pub parts: Vec<Part>,
}

/// One piece of a template.
#[derive(Clone, Debug)]
pub(crate) enum Part {
    Text(String),
    Field(FieldSel),
}

impl Template {
    /// Renders the template for `ev`; absent fields render as `<NA>`.
    pub(crate) fn render(&self, ev: &Event) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(f) => {
                    // Writing to a String cannot fail.
                    let _ = match f.get(ev) {
                        None => write!(out, "<NA>"),
                        Some(Value::Str(s)) => write!(out, "{s}"),
                        Some(Value::Num(n)) => write!(out, "{n}"),
                        Some(Value::Bool(b)) => write!(out, "{b}"),
                    };
                }
            }
        }
        out
    }
}

/// The event kinds a condition can only hold for (`None`: any kind), from `evt.kind` tests that every
/// match must pass: a conjunction takes the kinds of its restricting parts, a disjunction needs all parts
/// restricted.
pub(crate) fn required_kinds(cond: &Cond) -> Option<HashSet<EventKind>> {
    // `evt.kind` values were checked against the model's kinds when the rule was compiled.
    let kinds = |names: &mut dyn Iterator<Item = &String>| {
        names
            .filter_map(|n| EventKind::parse(n))
            .collect::<HashSet<_>>()
    };
    match cond {
        Cond::Test(sel, Test::StrEq(kind)) if sel.is_kind() => {
            Some(kinds(&mut std::iter::once(kind)))
        }
        Cond::Test(sel, Test::StrIn(names)) if sel.is_kind() => Some(kinds(&mut names.iter())),
        Cond::And(parts) => parts
            .iter()
            .filter_map(required_kinds)
            .reduce(|a, b| a.intersection(&b).copied().collect()),
        Cond::Or(parts) => {
            parts
                .iter()
                .map(required_kinds)
                .try_fold(HashSet::new(), |mut all, k| {
                    all.extend(k?);
                    Some(all)
                })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icontains_is_ascii_case_insensitive() {
        assert!(icontains("/usr/bin/BASH", "bash"));
        assert!(icontains("x", ""));
        assert!(!icontains("ba", "bash"));
    }
}
