//! Reads a rule's `threshold:` and `sequence:` keys (see the module docs of [`crate`]) and compiles
//! them. Like the rest of loading, every problem is recorded with its `file:line:col` and reading goes on;
//! step conditions are compiled like rule conditions, so their errors point into the step's text.

use serde_yaml_ng::{Mapping, Value};

use crate::ast::{FieldRef, Span};
use crate::check::Checker;
use crate::eval::{Cond, FieldSel};
use crate::item::Item;
use crate::parser::parse_field_ref;
use crate::source::{ItemPos, Scalar, nested_items, nested_keys};
use crate::stateful::{MAX_COUNT, Sequence, Stateful, Step, Threshold};

const THRESHOLD_KEYS: [&str; 3] = ["count", "window", "by"];
const SEQUENCE_KEYS: [&str; 3] = ["within", "by", "steps"];
const STEP_KEYS: [&str; 2] = ["condition", "by"];
const DURATION_HINT: &str = "a whole number and a unit: ms, s, m or h (e.g. 500ms, 10s, 5m)";

/// A `threshold:` or `sequence:` as read, before its fields and conditions are compiled.
pub(crate) enum StatefulDraft {
    Threshold {
        count: usize,
        window_ns: u64,
        by: Vec<Scalar>,
    },
    Sequence {
        within_ns: u64,
        by: Vec<Scalar>,
        steps: Vec<StepDraft>,
    },
}

/// A sequence step as read: its condition and its own `by`, when it has one.
pub(crate) struct StepDraft {
    condition: Scalar,
    by: Option<Vec<Scalar>>,
}

impl StatefulDraft {
    /// Compiles the `by` fields and step conditions; `None` when there are errors (recorded).
    pub(crate) fn compile(&self, checker: &mut Checker<'_>, file: usize) -> Option<Stateful> {
        match self {
            StatefulDraft::Threshold {
                count,
                window_ns,
                by,
            } => Some(Stateful::Threshold(Threshold {
                count: *count,
                window_ns: *window_ns,
                by: checker.by_fields(file, by)?,
            })),
            StatefulDraft::Sequence {
                within_ns,
                by,
                steps,
            } => {
                let default_by = checker.by_fields(file, by);
                let steps: Vec<Option<Step>> = steps
                    .iter()
                    .map(|step| {
                        let cond = checker.condition(file, &step.condition);
                        let by = match &step.by {
                            Some(b) => checker.by_fields(file, b),
                            None => default_by.clone(),
                        };
                        Some(Step {
                            cond: cond?,
                            by: by?,
                        })
                    })
                    .collect();
                Some(Stateful::Sequence(Sequence {
                    within_ns: *within_ns,
                    guard: None,
                    steps: steps.into_iter().collect::<Option<_>>()?,
                }))
            }
        }
    }
}

/// The rule's condition (for [`Rule::matches`](crate::Rule::matches) and the kind index) and its
/// stateful part: a sequence rule's condition is its own `condition` (if any) and the `or` of its steps,
/// and that `condition` becomes the guard of every step.
pub(crate) fn combine(
    guard: Option<Cond>,
    stateful: Option<Stateful>,
) -> Option<(Cond, Option<Stateful>)> {
    match stateful {
        Some(Stateful::Sequence(mut seq)) => {
            let any_step = Cond::Or(seq.steps.iter().map(|s| s.cond.clone()).collect());
            let cond = match &guard {
                Some(g) => Cond::And(vec![g.clone(), any_step]),
                None => any_step,
            };
            seq.guard = guard;
            Some((cond, Some(Stateful::Sequence(seq))))
        }
        other => Some((guard?, other)),
    }
}

impl Checker<'_> {
    /// Resolves the field names of a `by` list.
    fn by_fields(&mut self, file: usize, by: &[Scalar]) -> Option<Vec<FieldSel>> {
        let fields: Vec<Option<FieldSel>> = by
            .iter()
            .map(|sc| {
                let span = Span::new(0, sc.text.len());
                let f = parse_field_ref(&sc.text, span).unwrap_or_else(|_| FieldRef {
                    name: sc.text.clone(),
                    index: None,
                    span,
                });
                self.field(file, sc, &f).map(|(sel, _)| sel)
            })
            .collect();
        fields.into_iter().collect()
    }
}

/// Parses a duration such as `500ms`, `10s`, `5m` or `1h` into nanoseconds (positive).
pub(crate) fn parse_duration(text: &str) -> Option<u64> {
    let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = text.split_at(digits);
    let scale: u64 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&ns| ns > 0)
}

impl<'a> Item<'a> {
    /// Reads `threshold:` or `sequence:`: `Ok(None)` when the rule has neither, `Err` when there are
    /// errors (recorded).
    pub(crate) fn stateful(&mut self) -> Result<Option<StatefulDraft>, ()> {
        let (threshold, sequence) = (
            self.map.contains_key("threshold"),
            self.map.contains_key("sequence"),
        );
        if threshold && sequence {
            let off = self.key_off("sequence");
            let msg = "a rule takes `threshold` or `sequence`, not both".into();
            self.fail(off, "sequence".len(), msg);
            self.set_hint(Some("split it into two rules".into()));
            return Err(());
        }
        if threshold {
            return self.nested("threshold", |i| i.threshold()).map(Some);
        }
        if sequence {
            return self.nested("sequence", |i| i.sequence()).map(Some);
        }
        Ok(None)
    }

    /// Runs `read` on the mapping under `key`, with its keys' positions.
    pub(crate) fn nested<R>(
        &mut self,
        key: &str,
        read: impl FnOnce(&mut Item<'_>) -> Result<R, ()>,
    ) -> Result<R, ()> {
        let map: &'a Mapping = self.map;
        let parent = self.pos.key(key).cloned();
        let Some(Value::Mapping(inner)) = map.get(key) else {
            let off = self.value_off(key);
            self.fail(off, 1, format!("`{key}` must be a mapping of its settings"));
            return Err(());
        };
        let pos = ItemPos {
            start: parent.as_ref().map_or(self.pos.start, |k| k.key),
            keys: parent
                .as_ref()
                .map(|k| nested_keys(&self.file.text, k))
                .unwrap_or_default(),
        };
        read(&mut Item {
            file: self.file,
            fidx: self.fidx,
            pos: &pos,
            map: inner,
            errors: &mut *self.errors,
        })
    }

    fn threshold(&mut self) -> Result<StatefulDraft, ()> {
        self.keys(&THRESHOLD_KEYS);
        let count = self.count();
        let window = self.duration("window");
        let by = self.by();
        Ok(StatefulDraft::Threshold {
            count: count?,
            window_ns: window?,
            by: by?.unwrap_or_default(),
        })
    }

    fn sequence(&mut self) -> Result<StatefulDraft, ()> {
        self.keys(&SEQUENCE_KEYS);
        let within = self.duration("within");
        let by = self.by();
        let steps = self.steps();
        Ok(StatefulDraft::Sequence {
            within_ns: within?,
            by: by?.unwrap_or_default(),
            steps: steps?,
        })
    }

    fn count(&mut self) -> Result<usize, ()> {
        let off = self.value_off("count");
        let n = match self.get("count", true).ok_or(())? {
            Value::Number(n) => n.as_u64(),
            _ => None,
        };
        let problem = match n {
            None => "`count` must be a whole number",
            Some(0) => "`count` must be at least 1",
            Some(n) if n > MAX_COUNT => "`count` is too large",
            Some(n) => return usize::try_from(n).map_err(|_| ()),
        };
        self.fail(off, 1, problem.into());
        self.set_hint(Some(format!("a number from 1 to {MAX_COUNT}")));
        Err(())
    }

    pub(crate) fn duration(&mut self, key: &str) -> Result<u64, ()> {
        let off = self.value_off(key);
        let text = match self.get(key, true).ok_or(())? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        if let Some(ns) = parse_duration(&text) {
            return Ok(ns);
        }
        let msg = format!("bad duration `{text}` for `{key}`");
        self.fail(off, text.chars().count(), msg);
        self.set_hint(Some(DURATION_HINT.into()));
        Err(())
    }

    /// The `by` list, each name as a scalar at its place in the file.
    fn by(&mut self) -> Result<Option<Vec<Scalar>>, ()> {
        if !self.map.contains_key("by") {
            return Ok(None);
        }
        let names = self.strings("by", false).ok_or(())?;
        let start = self.value_off("by");
        let text = &self.file.text;
        let mut from = start;
        let scalars = names
            .into_iter()
            .map(|name| {
                // The name as written, if it is near (block or flow list); else the list's start.
                let rest = text.get(from..).unwrap_or("");
                let mut end = rest.len().min(200 + name.len());
                while !rest.is_char_boundary(end) {
                    end -= 1;
                }
                let window = &rest[..end];
                match window.find(name.as_str()) {
                    Some(i) => {
                        from += i + name.len();
                        Scalar::literal(&name, from - name.len())
                    }
                    None => Scalar::at(name, start),
                }
            })
            .collect();
        Ok(Some(scalars))
    }

    fn steps(&mut self) -> Result<Vec<StepDraft>, ()> {
        let map: &'a Mapping = self.map;
        let off = self.value_off("steps");
        let Some(value) = map.get("steps") else {
            self.get("steps", true);
            return Err(());
        };
        let Value::Sequence(seq) = value else {
            self.fail(
                off,
                1,
                "`steps` must be a list of `- condition:` items".into(),
            );
            return Err(());
        };
        if seq.len() < 2 {
            let msg = format!("a sequence needs at least 2 steps, found {}", seq.len());
            self.fail(self.key_off("steps"), "steps".len(), msg);
            let hint =
                "for a single event use the rule's `condition` (with `threshold` to count it)";
            self.set_hint(Some(hint.into()));
            return Err(());
        }
        let positions = self
            .pos
            .key("steps")
            .map(|k| nested_items(&self.file.text, k))
            .filter(|p| p.len() == seq.len())
            .unwrap_or_else(|| {
                vec![
                    ItemPos {
                        start: off,
                        keys: Vec::new()
                    };
                    seq.len()
                ]
            });
        let mut steps = Vec::new();
        let mut ok = true;
        for (value, pos) in seq.iter().zip(&positions) {
            let Value::Mapping(step) = value else {
                self.fail(
                    pos.start,
                    1,
                    "each step must be a mapping with a `condition`".into(),
                );
                ok = false;
                continue;
            };
            let mut item = Item {
                file: self.file,
                fidx: self.fidx,
                pos,
                map: step,
                errors: &mut *self.errors,
            };
            item.keys(&STEP_KEYS);
            let condition = item.scalar("condition");
            let by = item.by();
            match (condition, by) {
                (Some(condition), Ok(by)) => steps.push(StepDraft { condition, by }),
                _ => ok = false,
            }
        }
        if ok { Ok(steps) } else { Err(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("10s"), Some(10_000_000_000));
        assert_eq!(parse_duration("5m"), Some(300_000_000_000));
        assert_eq!(parse_duration("1h"), Some(3_600_000_000_000));
        for bad in ["10x", "10", "s", "0s", "-1s", "1.5s", "", "99999999999h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
