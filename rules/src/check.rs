//! Turns parsed conditions and output templates into their compiled form: resolves macros (inlined,
//! cycles and undefined names reported) and lists (expanded, nested lists allowed, cycles reported),
//! checks every field name and every operator and value against the field's type, and compiles regexes
//! and globs once. Problems are collected, not returned at the first one.

use std::collections::{HashMap, HashSet};

use globset::GlobBuilder;
use regex::Regex;

use crate::ast::{CmpOp, Expr, FieldRef, Literal, Operand, Span};
use crate::error::{ErrorKind, RuleError, near_matches};
use crate::eval::{Cond, FieldSel, Test};
use crate::fields::{EVT_KIND, FIELDS, FieldDef, FieldType, lookup};
use crate::parser::{parse_condition, parse_field_ref};
use crate::source::{Scalar, SourceFile};
use crate::{PathResolver, PathRewrite};

/// A `- list:` item as loaded.
/// Fields whose values are canonical paths: a path literal compared with them is matched as its canonical
/// path.
pub const CANONICAL_PATH_FIELDS: &[&str] = &[
    "file.path",
    "file.target",
    "exec.filename",
    "change.path",
    "file.directory",
    "proc.exe",
    "proc.pexe",
    "proc.aexe",
    "proc.cwd",
    "exec.cwd",
    "net.path",
];

#[derive(Debug)]
pub(crate) struct ListDef {
    pub name: String,
    pub items: Vec<String>,
    pub file: usize,
    /// File offset of the list's name.
    pub pos: usize,
}

/// A `- macro:` item as loaded.
#[derive(Debug)]
pub(crate) struct MacroDef {
    pub name: String,
    pub file: usize,
    pub condition: Scalar,
}

/// Compiles conditions and templates against a set of lists and macros.
pub(crate) struct Checker<'a> {
    files: &'a [SourceFile],
    /// Resolves an absolute path literal to its canonical path on this host (see [`PathResolver`]).
    resolve: Option<PathResolver<'a>>,
    /// Path literals matched as their canonical path.
    pub rewrites: Vec<PathRewrite>,
    lists: HashMap<String, Vec<String>>,
    macros: &'a [MacroDef],
    macro_index: HashMap<&'a str, usize>,
    done: HashMap<usize, Option<Cond>>,
    stack: Vec<usize>,
    pub errors: Vec<RuleError>,
}

impl<'a> Checker<'a> {
    /// Resolves the lists (reporting cycles) and compiles every macro once.
    pub(crate) fn new(
        files: &'a [SourceFile],
        lists: &[ListDef],
        macros: &'a [MacroDef],
        resolve: Option<PathResolver<'a>>,
    ) -> Checker<'a> {
        let mut checker = Checker {
            files,
            resolve,
            rewrites: Vec::new(),
            lists: HashMap::new(),
            macros,
            macro_index: macros
                .iter()
                .enumerate()
                .map(|(i, m)| (m.name.as_str(), i))
                .collect(),
            done: HashMap::new(),
            stack: Vec::new(),
            errors: Vec::new(),
        };
        let by_name: HashMap<&str, &ListDef> = lists.iter().map(|l| (l.name.as_str(), l)).collect();
        for list in lists {
            let mut path = Vec::new();
            match expand_list(&by_name, list, &mut path) {
                Ok(items) => {
                    checker.lists.insert(list.name.clone(), items);
                }
                Err(cycle) => {
                    let file = &files[list.file];
                    let msg = format!("list cycle: {}", cycle.join(" -> "));
                    checker.errors.push(file.error(
                        ErrorKind::Cycle,
                        list.pos,
                        list.name.len(),
                        msg,
                    ));
                }
            }
        }
        for i in 0..macros.len() {
            checker.compile_macro(i);
        }
        checker
    }

    fn compile_macro(&mut self, i: usize) -> Option<Cond> {
        if let Some(done) = self.done.get(&i) {
            return done.clone();
        }
        let macros = self.macros;
        let def = &macros[i];
        self.stack.push(i);
        let cond = self.condition(def.file, &def.condition);
        self.stack.pop();
        self.done.insert(i, cond.clone());
        cond
    }

    /// Compiles a condition; `None` when it has errors (already recorded).
    pub(crate) fn condition(&mut self, file: usize, sc: &Scalar) -> Option<Cond> {
        match parse_condition(&sc.text) {
            Ok(expr) => self.expr(file, sc, &expr),
            Err(e) => {
                self.errors
                    .push(sc.error(&self.files[file], ErrorKind::Syntax, e.span, e.message));
                None
            }
        }
    }

    fn error(
        &mut self,
        file: usize,
        sc: &Scalar,
        kind: ErrorKind,
        span: Span,
        msg: String,
        hint: Option<String>,
    ) {
        let mut e = sc.error(&self.files[file], kind, span, msg);
        e.hint = hint;
        self.errors.push(e);
    }

    fn expr(&mut self, file: usize, sc: &Scalar, e: &Expr) -> Option<Cond> {
        match e {
            Expr::And(a, b) | Expr::Or(a, b) => {
                let (x, y) = (self.expr(file, sc, a), self.expr(file, sc, b));
                let (x, y) = (x?, y?);
                Some(match (matches!(e, Expr::And(..)), x) {
                    (true, Cond::And(mut v)) => {
                        v.push(y);
                        Cond::And(v)
                    }
                    (true, x) => Cond::And(vec![x, y]),
                    (false, Cond::Or(mut v)) => {
                        v.push(y);
                        Cond::Or(v)
                    }
                    (false, x) => Cond::Or(vec![x, y]),
                })
            }
            Expr::Not(a) => Some(Cond::Not(Box::new(self.expr(file, sc, a)?))),
            Expr::Exists(f) => Some(Cond::Exists(self.field(file, sc, f)?.0)),
            Expr::Macro { name, span } => self.macro_ref(file, sc, name, *span),
            Expr::Compare {
                field,
                op,
                op_span,
                value,
            } => self.compare(file, sc, field, *op, *op_span, value),
        }
    }

    fn macro_ref(&mut self, file: usize, sc: &Scalar, name: &str, span: Span) -> Option<Cond> {
        let Some(&i) = self.macro_index.get(name) else {
            let hint = if self.lists.contains_key(name) {
                Some(format!("`{name}` is a list: use it as `field in ({name})`"))
            } else {
                near_matches(name, self.macro_index.keys().copied())
                    .or_else(|| Some(format!("define it with `- macro: {name}`")))
            };
            self.error(
                file,
                sc,
                ErrorKind::UnknownMacro,
                span,
                format!("unknown macro `{name}`"),
                hint,
            );
            return None;
        };
        if let Some(at) = self.stack.iter().position(|&m| m == i) {
            let mut names: Vec<&str> = self.stack[at..]
                .iter()
                .map(|&m| self.macros[m].name.as_str())
                .collect();
            names.push(name);
            let msg = format!("macro cycle: {}", names.join(" -> "));
            self.error(file, sc, ErrorKind::Cycle, span, msg, None);
            return None;
        }
        self.compile_macro(i)
    }

    pub(crate) fn field(
        &mut self,
        file: usize,
        sc: &Scalar,
        f: &FieldRef,
    ) -> Option<(FieldSel, &'static FieldDef)> {
        let Some(def) = lookup(&f.name) else {
            let hint = near_matches(&f.name, FIELDS.iter().map(|d| d.name));
            let msg = format!("unknown field `{}`", f.name);
            self.error(file, sc, ErrorKind::UnknownField, f.span, msg, hint);
            return None;
        };
        let problem = match (def.indexed, f.index) {
            (true, None) => Some(format!("`{}` needs an index, e.g. `{}[1]`", f.name, f.name)),
            (true, Some(0)) => Some(format!("`{}` indexes start at 1 (the parent)", f.name)),
            (false, Some(_)) => Some(format!("`{}` takes no index", f.name)),
            _ => None,
        };
        if let Some(msg) = problem {
            self.error(file, sc, ErrorKind::UnknownField, f.span, msg, None);
            return None;
        }
        Some((FieldSel::new(def, f.index), def))
    }

    fn compare(
        &mut self,
        file: usize,
        sc: &Scalar,
        field: &FieldRef,
        op: CmpOp,
        op_span: Span,
        value: &Operand,
    ) -> Option<Cond> {
        if let Some(other) = field_operand(op, value) {
            return self.field_compare(file, sc, field, op, op_span, &other);
        }
        let (sel, def) = self.field(file, sc, field)?;
        let op_fits = match def.ty {
            FieldType::Str => !matches!(
                op,
                CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge | CmpOp::BitAnd
            ),
            FieldType::Num => matches!(
                op,
                CmpOp::Eq
                    | CmpOp::Ne
                    | CmpOp::Lt
                    | CmpOp::Le
                    | CmpOp::Gt
                    | CmpOp::Ge
                    | CmpOp::In
                    | CmpOp::BitAnd
            ),
            FieldType::Bool => matches!(op, CmpOp::Eq | CmpOp::Ne),
        };
        if !op_fits {
            let msg = format!(
                "type mismatch: operator `{}` does not apply to `{}`, which is {}",
                op.as_str(),
                field.name,
                def.ty.describe()
            );
            let hint = match def.ty {
                FieldType::Str => {
                    "string fields take =, !=, in, contains, icontains, startswith, endswith, glob, regex, exists"
                }
                FieldType::Num => {
                    "number fields take =, !=, <, <=, >, >=, in, & (bit test), exists"
                }
                FieldType::Bool => "boolean fields take = true, = false, !=, exists",
            };
            self.error(
                file,
                sc,
                ErrorKind::TypeMismatch,
                op_span,
                msg,
                Some(hint.into()),
            );
            return None;
        }
        let values = self.values(value);
        let test = match def.ty {
            FieldType::Str => self.str_test(file, sc, def, op, &values)?,
            FieldType::Num => {
                let mut nums = Vec::new();
                for v in &values {
                    match parse_num(&v.text) {
                        Ok(n) => nums.push(n),
                        Err(hint) => {
                            let msg = format!(
                                "type mismatch: `{}` is a number, `{}` is not",
                                field.name, v.text
                            );
                            let hint = hint.unwrap_or_else(|| {
                                format!("compare `{}` with a number such as 1000", field.name)
                            });
                            self.error(file, sc, ErrorKind::TypeMismatch, v.span, msg, Some(hint));
                        }
                    }
                }
                match (op, nums.as_slice()) {
                    (_, ns) if ns.len() != values.len() => return None,
                    (CmpOp::In, _) => Test::NumIn(nums),
                    (CmpOp::BitAnd, [n]) => Test::BitAnd(*n),
                    (op, [n]) => Test::NumCmp(op, *n),
                    _ => return None,
                }
            }
            FieldType::Bool => {
                let [v] = values.as_slice() else { return None };
                let b = match v.text.as_str() {
                    "true" => true,
                    "false" => false,
                    other => {
                        let msg = format!(
                            "type mismatch: `{}` is a boolean, `{other}` is not",
                            field.name
                        );
                        self.error(
                            file,
                            sc,
                            ErrorKind::TypeMismatch,
                            v.span,
                            msg,
                            Some("use true or false".into()),
                        );
                        return None;
                    }
                };
                Test::BoolEq(if op == CmpOp::Ne { !b } else { b })
            }
        };
        Some(Cond::Test(sel, test))
    }

    /// `field op other`, two fields of one event: same type, not lists, `=`/`!=` (and orders for numbers).
    fn field_compare(
        &mut self,
        file: usize,
        sc: &Scalar,
        field: &FieldRef,
        op: CmpOp,
        op_span: Span,
        other: &FieldRef,
    ) -> Option<Cond> {
        let left = self.field(file, sc, field);
        let right = self.field(file, sc, other);
        let ((sel, def), (other_sel, other_def)) = (left?, right?);
        if def.list || other_def.list {
            let name = if def.list { &field.name } else { &other.name };
            let msg = format!("`{name}` is a list and cannot be compared with another field");
            let hint = Some(format!(
                "compare an indexed field instead, e.g. `proc.aname[1] = {}`",
                if def.list { &other.name } else { &field.name }
            ));
            self.error(file, sc, ErrorKind::TypeMismatch, op_span, msg, hint);
            return None;
        }
        if def.ty != other_def.ty {
            let msg = format!(
                "type mismatch: `{}` is {} and `{}` is {}",
                field.name,
                def.ty.describe(),
                other.name,
                other_def.ty.describe()
            );
            self.error(file, sc, ErrorKind::TypeMismatch, other.span, msg, None);
            return None;
        }
        let fits = match def.ty {
            FieldType::Num => matches!(
                op,
                CmpOp::Eq | CmpOp::Ne | CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge
            ),
            FieldType::Str | FieldType::Bool => matches!(op, CmpOp::Eq | CmpOp::Ne),
        };
        if !fits {
            let msg = format!(
                "operator `{}` does not compare two fields of type {}",
                op.as_str(),
                def.ty.describe().trim_start_matches("a ")
            );
            let hint = Some(
                "two fields compare with = and != (numbers also with <, <=, >, >=); quote the value to compare with text"
                    .into(),
            );
            self.error(file, sc, ErrorKind::TypeMismatch, op_span, msg, hint);
            return None;
        }
        Some(Cond::Test(sel, Test::Field(op, other_sel)))
    }

    /// The operand's values, with list names (bare words) expanded; expanded items carry the name's span.
    fn values(&self, value: &Operand) -> Vec<Literal> {
        match value {
            Operand::Single(l) => vec![l.clone()],
            Operand::List(items) => items
                .iter()
                .flat_map(|l| match self.lists.get(&l.text).filter(|_| !l.quoted) {
                    Some(expanded) => expanded
                        .iter()
                        .map(|t| Literal {
                            text: t.clone(),
                            quoted: true,
                            span: l.span,
                        })
                        .collect(),
                    None => vec![l.clone()],
                })
                .collect(),
        }
    }

    /// For a field that holds canonical paths, compared by `=`, `!=`, `in` or `startswith` with absolute
    /// path literals that are not canonical on this host (`/bin/sh` where `/bin` links to `usr/bin`): the
    /// test on the canonical spelling (with `=` and `in`, either spelling matches, so the raw one still
    /// reaches the kernel's exec map). `None` when nothing changes.
    fn canonical_test(
        &mut self,
        file: usize,
        sc: &Scalar,
        def: &FieldDef,
        op: CmpOp,
        values: &[Literal],
    ) -> Option<Test> {
        let resolve = self.resolve?;
        if !CANONICAL_PATH_FIELDS.contains(&def.name)
            || !matches!(op, CmpOp::Eq | CmpOp::Ne | CmpOp::In | CmpOp::StartsWith)
        {
            return None;
        }
        let mut changed = false;
        let mut canonical = Vec::with_capacity(values.len());
        for v in values {
            let c = v
                .text
                .starts_with('/')
                .then(|| {
                    let (base, slash) = match v.text.strip_suffix('/') {
                        Some(b) if !b.is_empty() => (b, "/"),
                        _ => (v.text.as_str(), ""),
                    };
                    resolve(base).map(|c| format!("{}{slash}", c.trim_end_matches('/')))
                })
                .flatten()
                .filter(|c| *c != v.text && !c.is_empty());
            if let Some(c) = c {
                let e = sc.error(&self.files[file], ErrorKind::Schema, v.span, String::new());
                self.rewrites.push(PathRewrite {
                    at: format!("{}:{}:{}", e.file, e.line, e.col),
                    literal: v.text.clone(),
                    canonical: c.clone(),
                });
                changed = true;
                canonical.push((v.text.clone(), c));
            } else {
                canonical.push((v.text.clone(), v.text.clone()));
            }
        }
        if !changed {
            return None;
        }
        let both = || {
            canonical
                .iter()
                .flat_map(|(raw, c)| [raw.clone(), c.clone()])
                .collect::<HashSet<_>>()
        };
        let first = canonical
            .first()
            .map(|(_, c)| c.clone())
            .unwrap_or_default();
        Some(match op {
            CmpOp::Eq | CmpOp::In => Test::StrIn(both()),
            CmpOp::Ne => Test::StrNe(first),
            _ => Test::StartsWith(first),
        })
    }

    fn str_test(
        &mut self,
        file: usize,
        sc: &Scalar,
        def: &FieldDef,
        op: CmpOp,
        values: &[Literal],
    ) -> Option<Test> {
        if !def.values.is_empty() && matches!(op, CmpOp::Eq | CmpOp::Ne | CmpOp::In) {
            let mut ok = true;
            for v in values
                .iter()
                .filter(|v| !def.values.contains(&v.text.as_str()))
            {
                let hint = near_matches(&v.text, def.values.iter().copied());
                let msg = if def.name == EVT_KIND {
                    format!("unknown event kind `{}`", v.text)
                } else {
                    format!("`{}` is never `{}`", def.name, v.text)
                };
                self.error(file, sc, ErrorKind::TypeMismatch, v.span, msg, hint);
                ok = false;
            }
            if !ok {
                return None;
            }
        }
        if let Some(test) = self.canonical_test(file, sc, def, op, values) {
            return Some(test);
        }
        let one = values.first().map(|v| v.text.clone()).unwrap_or_default();
        let span = values.first().map(|v| v.span).unwrap_or_default();
        Some(match op {
            CmpOp::Eq => Test::StrEq(one),
            CmpOp::Ne => Test::StrNe(one),
            CmpOp::In => Test::StrIn(
                values
                    .iter()
                    .map(|v| v.text.clone())
                    .collect::<HashSet<_>>(),
            ),
            CmpOp::Contains => Test::Contains(one),
            CmpOp::IContains => Test::IContains(one.to_ascii_lowercase()),
            CmpOp::StartsWith => Test::StartsWith(one),
            CmpOp::EndsWith => Test::EndsWith(one),
            CmpOp::Glob => match GlobBuilder::new(&one).literal_separator(true).build() {
                Ok(g) => Test::Glob(g.compile_matcher()),
                Err(e) => {
                    let msg = format!("invalid glob `{one}`");
                    self.error(
                        file,
                        sc,
                        ErrorKind::BadGlob,
                        span,
                        msg,
                        Some(e.kind().to_string()),
                    );
                    return None;
                }
            },
            CmpOp::Regex => match Regex::new(&one) {
                Ok(r) => Test::Regex(r),
                Err(e) => {
                    let msg = format!("invalid regular expression `{one}`");
                    self.error(
                        file,
                        sc,
                        ErrorKind::BadRegex,
                        span,
                        msg,
                        Some(e.to_string()),
                    );
                    return None;
                }
            },
            _ => return None,
        })
    }
}

/// The field a comparison's right-hand side names: a bare (unquoted) word after `=`, `!=`, `<`, `<=`, `>`
/// or `>=` that is a registered field name (optionally indexed, `proc.apid[1]`).
fn field_operand(op: CmpOp, value: &Operand) -> Option<FieldRef> {
    let Operand::Single(lit) = value else {
        return None;
    };
    if lit.quoted
        || !matches!(
            op,
            CmpOp::Eq | CmpOp::Ne | CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge
        )
    {
        return None;
    }
    let f = parse_field_ref(&lit.text, lit.span).ok()?;
    lookup(&f.name).map(|_| f)
}

/// Expands a list, replacing items that name other lists by their items; `Err` holds a cycle's path.
fn expand_list(
    by_name: &HashMap<&str, &ListDef>,
    list: &ListDef,
    path: &mut Vec<String>,
) -> Result<Vec<String>, Vec<String>> {
    if path.contains(&list.name) {
        path.push(list.name.clone());
        return Err(path.clone());
    }
    path.push(list.name.clone());
    let mut out = Vec::new();
    for item in &list.items {
        match by_name.get(item.as_str()) {
            Some(inner) => out.extend(expand_list(by_name, inner, path)?),
            None => out.push(item.clone()),
        }
    }
    path.pop();
    Ok(out)
}

/// Parses an integer: decimal (optionally negative), `0x…`, `0o…` or `0b…`. `Err` may carry a hint.
pub(crate) fn parse_num(text: &str) -> Result<i128, Option<String>> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (radix, digits) = if let Some(h) = body.strip_prefix("0x") {
        (16, h)
    } else if let Some(o) = body.strip_prefix("0o") {
        (8, o)
    } else if let Some(b) = body.strip_prefix("0b") {
        (2, b)
    } else if body.len() > 1 && body.starts_with('0') && body.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Some(format!(
            "leading zeros are not allowed: write octal as `0o{}` or decimal without the zero",
            body.trim_start_matches('0')
        )));
    } else {
        (10, body)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(None);
    }
    match i128::from_str_radix(digits, radix) {
        Ok(n) => Ok(if neg { -n } else { n }),
        Err(_) => Err(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_num("42"), Ok(42));
        assert_eq!(parse_num("-1"), Ok(-1));
        assert_eq!(parse_num("0x10"), Ok(16));
        assert_eq!(parse_num("0o4000"), Ok(2048));
        assert_eq!(parse_num("0b101"), Ok(5));
        assert_eq!(parse_num("0"), Ok(0));
        assert!(parse_num("04000").unwrap_err().unwrap().contains("0o4000"));
        assert_eq!(parse_num("abc"), Err(None));
        assert_eq!(parse_num("-"), Err(None));
        assert_eq!(parse_num("0x-1"), Err(None));
        assert_eq!(parse_num("+1"), Err(None));
    }
}
