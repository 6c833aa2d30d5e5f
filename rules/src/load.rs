//! Reads rules files (YAML) into lists, macros and rule drafts, then compiles them into [`Rule`]s.
//!
//! A file is a YAML sequence of `- list:`, `- macro:` and `- rule:` items. Lists and macros are visible
//! across all files of a set; a name defined twice (rule, macro or list) is an error naming both places.
//! Every problem is collected with its `file:line:col`; loading never stops at the first one.

use std::collections::HashMap;

use serde_yaml_ng::Value;

use crate::check::{Checker, ListDef, MacroDef};
use crate::error::{ErrorKind, RuleError, RuleErrors, near_matches};
use crate::exec_match::exec_match;
use crate::file_match::file_match;
use crate::hold::{HoldSpec, refusal};
use crate::item::Item;
use crate::source::{Scalar, SourceFile, scan_items};
use crate::stateful_load::{StatefulDraft, combine};
use crate::{Action, Rule, RuleLocation, Severity};

const RULE_KEYS: [&str; 11] = [
    "rule",
    "desc",
    "condition",
    "output",
    "severity",
    "tags",
    "enabled",
    "actions",
    "threshold",
    "sequence",
    "hold",
];
const HOLD_KEYS: [&str; 2] = ["timeout", "default"];
const MACRO_KEYS: [&str; 3] = ["macro", "condition", "desc"];
const LIST_KEYS: [&str; 3] = ["list", "items", "desc"];

/// A rule before compilation.
struct Draft {
    name: String,
    file: usize,
    pos: usize,
    desc: String,
    severity: Severity,
    tags: Vec<String>,
    enabled: bool,
    actions: Vec<Action>,
    hold: Option<HoldSpec>,
    /// Required, except for sequence rules.
    condition: Option<Scalar>,
    output: Scalar,
    stateful: Option<StatefulDraft>,
}

#[derive(Default)]
struct Collected {
    lists: Vec<ListDef>,
    macros: Vec<MacroDef>,
    drafts: Vec<Draft>,
    /// name → (kind, file, offset) of the first definition.
    names: HashMap<(String, &'static str), (usize, usize)>,
    errors: Vec<RuleError>,
}

/// Compiles a set of rules files (in the given order) into rules.
pub(crate) fn compile(
    files: Vec<SourceFile>,
    resolve: Option<crate::PathResolver<'_>>,
) -> Result<(Vec<Rule>, Vec<crate::PathRewrite>), RuleErrors> {
    let mut c = Collected::default();
    for (i, file) in files.iter().enumerate() {
        read_file(&files, i, file, &mut c);
    }
    let mut checker = Checker::new(&files, &c.lists, &c.macros, resolve);
    let mut rules = Vec::new();
    for d in c.drafts {
        let guard = match &d.condition {
            None => Some(None),
            Some(c) => checker.condition(d.file, c).map(Some),
        };
        let stateful = match &d.stateful {
            None => Some(None),
            Some(s) => s.compile(&mut checker, d.file).map(Some),
        };
        let output = checker.template(d.file, &d.output);
        let (Some(guard), Some(stateful), Some(output)) = (guard, stateful, output) else {
            continue;
        };
        let Some((cond, stateful)) = combine(guard, stateful) else {
            continue;
        };
        let err = files[d.file].error(ErrorKind::Schema, d.pos, 1, String::new());
        if d.hold.is_some()
            && let Some(why) = refusal(&cond)
        {
            let msg = format!("rule `{}`: {why}", d.name);
            let e = files[d.file].error(ErrorKind::Schema, d.pos, d.name.chars().count(), msg);
            c.errors.push(e.with_hint(
                "narrow the condition (e.g. `exec.filename = /path/of/the/program`) so that it cannot \
                 match PID 1, systemd or auditloop"
                    .to_string(),
            ));
            continue;
        }
        rules.push(Rule {
            exec_match: stateful.is_none().then(|| exec_match(&cond)).flatten(),
            file_match: stateful.is_none().then(|| file_match(&cond)).flatten(),
            stateful,
            name: d.name,
            desc: d.desc,
            severity: d.severity,
            tags: d.tags,
            enabled: d.enabled,
            actions: d.actions,
            hold: d.hold,
            location: RuleLocation {
                file: err.file,
                line: err.line,
                col: err.col,
            },
            cond,
            output,
        });
    }
    let mut errors = c.errors;
    errors.append(&mut checker.errors);
    if errors.is_empty() {
        let mut rewrites = std::mem::take(&mut checker.rewrites);
        rewrites.dedup();
        return Ok((rules, rewrites));
    }
    let order: HashMap<&str, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name.as_str(), i))
        .collect();
    errors.sort_by_key(|e| (order.get(e.file.as_str()).copied(), e.line, e.col));
    errors.dedup();
    Err(RuleErrors(errors))
}

fn read_file(files: &[SourceFile], fidx: usize, file: &SourceFile, c: &mut Collected) {
    let value: Value = match serde_yaml_ng::from_str(&file.text) {
        Ok(v) => v,
        Err(e) => {
            let text = e.to_string();
            let message = text.split(" at line ").next().unwrap_or(&text).to_string();
            let off = e
                .location()
                .map_or(0, |l| file.offset_at(l.line(), l.column()));
            c.errors.push(file.error(
                ErrorKind::Yaml,
                off,
                1,
                format!("YAML syntax error: {message}"),
            ));
            return;
        }
    };
    let items = match value {
        Value::Null => return,
        Value::Sequence(items) => items,
        _ => {
            let msg =
                "a rules file must be a YAML list of `- rule:`, `- macro:` and `- list:` items"
                    .into();
            c.errors.push(file.error(ErrorKind::Schema, 0, 1, msg));
            return;
        }
    };
    let positions = scan_items(&file.text);
    let exact = positions.len() == items.len();
    for (i, item) in items.iter().enumerate() {
        let pos = positions
            .get(i)
            .filter(|_| exact)
            .cloned()
            .unwrap_or_default();
        let Value::Mapping(map) = item else {
            let msg = "each item must be a mapping with a `rule`, `macro` or `list` key".into();
            c.errors
                .push(file.error(ErrorKind::Schema, pos.start, 1, msg));
            continue;
        };
        let mut item = Item {
            file,
            fidx,
            pos: &pos,
            map,
            errors: &mut c.errors,
        };
        let kind = ["rule", "macro", "list"]
            .into_iter()
            .find(|k| map.contains_key(*k));
        match kind {
            Some("rule") => {
                if let Some(d) = item.rule()
                    && register(
                        files,
                        &mut c.names,
                        &mut c.errors,
                        &d.name,
                        "rule",
                        fidx,
                        d.pos,
                    )
                {
                    c.drafts.push(d);
                }
            }
            Some("macro") => {
                item.keys(&MACRO_KEYS);
                let (Some(name), Some(condition)) =
                    (item.string("macro", true), item.scalar("condition"))
                else {
                    continue;
                };
                let at = item.value_off("macro");
                if register(files, &mut c.names, &mut c.errors, &name, "macro", fidx, at) {
                    c.macros.push(MacroDef {
                        name,
                        file: fidx,
                        condition,
                    });
                }
            }
            Some(_) => {
                item.keys(&LIST_KEYS);
                let (Some(name), Some(items)) =
                    (item.string("list", true), item.strings("items", true))
                else {
                    continue;
                };
                let at = item.value_off("list");
                if register(files, &mut c.names, &mut c.errors, &name, "list", fidx, at) {
                    c.lists.push(ListDef {
                        name,
                        items,
                        file: fidx,
                        pos: at,
                    });
                }
            }
            None => {
                let msg = "item has none of the keys `rule`, `macro`, `list`".into();
                c.errors
                    .push(file.error(ErrorKind::Schema, pos.start, 1, msg));
            }
        }
    }
}

/// Records a definition; `false` (and an error naming both places) when the name is taken.
fn register(
    files: &[SourceFile],
    names: &mut HashMap<(String, &'static str), (usize, usize)>,
    errors: &mut Vec<RuleError>,
    name: &str,
    kind: &'static str,
    file: usize,
    off: usize,
) -> bool {
    match names.get(&(name.to_string(), kind)) {
        Some(&(first_file, first_off)) => {
            let first = files[first_file].error(ErrorKind::Duplicate, first_off, 1, String::new());
            let msg = format!("duplicate {kind} `{name}`");
            let e = files[file].error(ErrorKind::Duplicate, off, name.chars().count(), msg);
            errors.push(e.with_hint(format!("first defined at {}", first.location())));
            false
        }
        None => {
            names.insert((name.to_string(), kind), (file, off));
            true
        }
    }
}

impl Item<'_> {
    fn rule(&mut self) -> Option<Draft> {
        self.keys(&RULE_KEYS);
        let name = self.string("rule", true);
        let condition = if self.map.contains_key("sequence") && !self.map.contains_key("condition")
        {
            Some(None)
        } else {
            self.scalar("condition").map(Some)
        };
        let stateful = self.stateful();
        let output = self.scalar("output");
        let desc = self.string("desc", false).unwrap_or_default();
        let severity = match self.string("severity", false) {
            None => Some(Severity::Warning),
            Some(s) => Severity::parse(&s).or_else(|| {
                let off = self.value_off("severity");
                self.fail(off, s.chars().count(), format!("unknown severity `{s}`"));
                self.set_hint(
                    near_matches(
                        &s.to_ascii_lowercase(),
                        Severity::all().map(Severity::as_str),
                    )
                    .or_else(|| {
                        Some(format!(
                            "one of: {}",
                            joined_names(Severity::all().map(Severity::as_str))
                        ))
                    }),
                );
                None
            }),
        };
        let tags = self.strings("tags", false).unwrap_or_default();
        let enabled = match self.get("enabled", false) {
            None => Some(true),
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.fail(
                    self.value_off("enabled"),
                    1,
                    "`enabled` must be true or false".into(),
                );
                None
            }
        };
        let actions = match self.strings("actions", false) {
            None => Some(vec![Action::Alert]),
            Some(names) => {
                let parsed: Vec<Option<Action>> = names.iter().map(|n| Action::parse(n)).collect();
                if let Some(bad) = names
                    .iter()
                    .zip(&parsed)
                    .find(|(_, a)| a.is_none())
                    .map(|(n, _)| n)
                {
                    self.fail(
                        self.value_off("actions"),
                        1,
                        format!("unknown action `{bad}`"),
                    );
                    self.set_hint(Some(format!(
                        "one of: {}",
                        joined_names(Action::all().map(Action::as_str))
                    )));
                }
                parsed.into_iter().collect()
            }
        };
        let hold = self.hold_spec(actions.as_deref());
        let (name, condition, output) = (name?, condition?, output?);
        let (severity, enabled, actions, hold) = (severity?, enabled?, actions?, hold.ok()?);
        let stateful = stateful.ok()?;
        let pos = self.value_off("rule");
        Some(Draft {
            name,
            file: self.fidx,
            pos,
            desc,
            severity,
            tags,
            enabled,
            actions,
            hold,
            condition,
            output,
            stateful,
        })
    }

    /// Reads `hold:` (`timeout`, `default`) for a rule whose actions include `hold`: `Ok(None)` without
    /// that action, `Err` when there are errors (recorded). `hold:` needs the action, and the action takes no
    /// kill or deny beside it (the hold's decision is what kills).
    fn hold_spec(&mut self, actions: Option<&[Action]>) -> Result<Option<HoldSpec>, ()> {
        let holds = actions.is_some_and(|a| a.contains(&Action::Hold));
        let keyed = self.map.contains_key("hold");
        if keyed && !holds {
            let off = self.key_off("hold");
            self.fail(off, 4, "`hold` settings need `hold` in `actions`".into());
            self.set_hint(Some("actions: [hold]".into()));
            return Err(());
        }
        if !holds {
            return Ok(None);
        }
        if actions.is_some_and(|a| a.iter().any(|x| x.kills() || *x == Action::Deny)) {
            let off = self.value_off("actions");
            let msg = "`hold` cannot be combined with kill, kill_group or deny".into();
            self.fail(off, 1, msg);
            self.set_hint(Some(
                "a hold kills the process when it is denied: use `hold` with `default: deny`"
                    .into(),
            ));
            return Err(());
        }
        if self.map.contains_key("sequence") || self.map.contains_key("threshold") {
            let off = self.key_off("hold");
            let msg =
                "`hold` applies to one event; threshold and sequence rules cannot hold".into();
            self.fail(off, 4, msg);
            return Err(());
        }
        if !keyed {
            return Ok(Some(HoldSpec::default()));
        }
        self.nested_hold()
    }
}

/// The hint for a bad `hold.default`.
const HOLD_DEFAULT_HINT: &str = "approve (continue the process) or deny (kill it)";

impl Item<'_> {
    /// The `hold:` mapping's settings.
    fn nested_hold(&mut self) -> Result<Option<HoldSpec>, ()> {
        let Some(Value::Mapping(_)) = self.map.get("hold") else {
            let off = self.value_off("hold");
            self.fail(
                off,
                1,
                "`hold` must be a mapping: {timeout: 5m, default: deny}".into(),
            );
            return Err(());
        };
        self.nested("hold", |i| {
            i.keys(&HOLD_KEYS);
            let mut spec = HoldSpec::default();
            if i.map.contains_key("timeout") {
                spec.timeout_ns = i.duration("timeout")?;
            }
            if let Some(text) = i.string("default", false) {
                match auditloop_model::HoldDecision::parse(&text) {
                    Some(d) => spec.default = d,
                    None => {
                        let off = i.value_off("default");
                        i.fail(
                            off,
                            text.chars().count(),
                            format!("unknown hold default `{text}`"),
                        );
                        i.set_hint(Some(HOLD_DEFAULT_HINT.into()));
                        return Err(());
                    }
                }
            }
            Ok(Some(spec))
        })
    }
}

/// Names joined for a hint.
fn joined_names(all: impl Iterator<Item = &'static str>) -> String {
    all.collect::<Vec<_>>().join(", ")
}
