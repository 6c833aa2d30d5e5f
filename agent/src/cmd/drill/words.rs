//! The words of each rule's condition, with macros and lists expanded: the raw material the drill builds
//! stimuli from (paths, prefixes, suffixes, globs, names).
//!
//! This only harvests candidates; it never decides whether a rule matches. The compiled rule does that
//! ([`auditloop_rules::Rule::matches`]), so a rough split here can only cost a candidate, never a wrong claim.
//! Words split like the rules lexer: at whitespace and `( ) , = ! < > &`; quoted strings are one word.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_yaml_ng::Value;

/// Macro and list expansion stops at this depth (the rules loader rejects cycles anyway).
const MAX_DEPTH: usize = 16;

/// The words of one rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleWords {
    /// Words of the rule's `condition` (for a sequence rule: the condition every step must also meet).
    pub condition: Vec<String>,
    /// Words of each `sequence` step's condition, in step order (empty for other rules).
    pub steps: Vec<Vec<String>>,
    /// The rule's own YAML after every list and macro of its set: a rules file of its own (for a drill
    /// overlay).
    pub source: String,
}

impl RuleWords {
    /// Every word of the rule: its condition and all its steps.
    pub fn all(&self) -> impl Iterator<Item = &String> {
        self.condition.iter().chain(self.steps.iter().flatten())
    }
}

/// Reads the rules file, or the `*.yaml`/`*.yml` files of a directory, and returns each rule's words by
/// rule name. Call it after [`auditloop_rules::RuleSet::load`] accepted the same path.
pub fn read(path: &Path) -> Result<HashMap<String, RuleWords>, String> {
    let mut texts = Vec::new();
    let files = if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_owned()]
    };
    for file in files {
        texts.push(std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?);
    }
    parse(&texts)
}

/// Each rule's words from rules file texts (one set: lists and macros are shared).
pub fn parse(texts: &[String]) -> Result<HashMap<String, RuleWords>, String> {
    let mut lists: HashMap<String, Vec<String>> = HashMap::new();
    let mut macros: HashMap<String, Vec<String>> = HashMap::new();
    let mut rules: Vec<Parsed> = Vec::new();
    let mut shared: Vec<Value> = Vec::new();
    for text in texts {
        let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        for item in doc.as_sequence().into_iter().flatten() {
            let text_of = |key: &str| item.get(key).and_then(scalar);
            if text_of("list").is_some() || text_of("macro").is_some() {
                shared.push(item.clone());
            }
            if let Some(name) = text_of("list") {
                let items = item.get("items").and_then(Value::as_sequence);
                lists.insert(
                    name,
                    items.into_iter().flatten().filter_map(scalar).collect(),
                );
            } else if let Some(name) = text_of("macro") {
                macros.insert(name, split(&text_of("condition").unwrap_or_default()));
            } else if let Some(name) = text_of("rule") {
                let steps = item
                    .get("sequence")
                    .and_then(|s| s.get("steps"))
                    .and_then(Value::as_sequence)
                    .into_iter()
                    .flatten()
                    .map(|step| split(&step.get("condition").and_then(scalar).unwrap_or_default()))
                    .collect();
                rules.push((
                    name,
                    split(&text_of("condition").unwrap_or_default()),
                    steps,
                    item.clone(),
                ));
            }
        }
    }
    let names = Names { lists, macros };
    Ok(rules
        .into_iter()
        .map(|(name, condition, steps, item)| {
            let mut own = shared.clone();
            own.push(item);
            let words = RuleWords {
                condition: names.expand(&condition),
                steps: steps.iter().map(|s| names.expand(s)).collect(),
                source: serde_yaml_ng::to_string(&Value::Sequence(own)).unwrap_or_default(),
            };
            (name, words)
        })
        .collect())
}

/// One rule as read: its name, condition words, steps' words and its YAML item.
type Parsed = (String, Vec<String>, Vec<Vec<String>>, Value);

/// A YAML scalar as text.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

struct Names {
    lists: HashMap<String, Vec<String>>,
    macros: HashMap<String, Vec<String>>,
}

impl Names {
    /// `words` with macro names replaced by their words and list names by their items, deduplicated in
    /// first-seen order.
    fn expand(&self, words: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        self.expand_into(words, 0, &mut seen, &mut out);
        out
    }

    fn expand_into(
        &self,
        words: &[String],
        depth: usize,
        seen: &mut HashSet<String>,
        out: &mut Vec<String>,
    ) {
        for word in words {
            let inner = self.macros.get(word).or_else(|| self.lists.get(word));
            match inner {
                Some(inner) if depth < MAX_DEPTH => self.expand_into(inner, depth + 1, seen, out),
                _ => {
                    if seen.insert(word.clone()) {
                        out.push(word.clone());
                    }
                }
            }
        }
    }
}

/// Splits a condition into words: bare words and the contents of quoted strings.
fn split(condition: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = condition.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                let mut word = String::new();
                while let Some(d) = chars.next() {
                    match d {
                        d if d == c => break,
                        '\\' => match chars.next() {
                            Some('n') => word.push('\n'),
                            Some('t') => word.push('\t'),
                            Some(e) => word.push(e),
                            None => break,
                        },
                        d => word.push(d),
                    }
                }
                out.push(word);
            }
            c if is_separator(c) => {}
            c => {
                let mut word = String::from(c);
                while let Some(&d) = chars.peek() {
                    if is_separator(d) || d == '"' || d == '\'' {
                        break;
                    }
                    word.push(d);
                    chars.next();
                }
                out.push(word);
            }
        }
    }
    out
}

fn is_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | ',' | '=' | '!' | '<' | '>' | '&')
}

#[cfg(test)]
mod tests {
    use super::{parse, split};

    #[test]
    fn splits_like_the_rules_lexer() {
        assert_eq!(
            split(r#"file.path in (/etc/shadow,"/a b")and x!=/tmp/* and y='q\'s'"#),
            [
                "file.path",
                "in",
                "/etc/shadow",
                "/a b",
                "and",
                "x",
                "/tmp/*",
                "and",
                "y",
                "q's"
            ]
        );
    }

    #[test]
    fn expands_macros_lists_and_steps() {
        let text = "
- list: inner
  items: [/opt/x/]
- list: dirs
  items: [/tmp/, inner]
- macro: in_dirs
  condition: exec.filename in (dirs)
- rule: r
  desc: d
  condition: evt.kind = exec and in_dirs
  output: o
- rule: s
  desc: d
  sequence:
    within: 1s
    steps:
      - condition: evt.kind = file and file.path = /etc/shadow
      - condition: in_dirs
  output: o
";
        let words = parse(&[text.to_owned()]).unwrap();
        assert_eq!(
            words["r"].condition,
            [
                "evt.kind",
                "exec",
                "and",
                "exec.filename",
                "in",
                "/tmp/",
                "/opt/x/"
            ]
        );
        assert!(words["s"].condition.is_empty());
        assert_eq!(words["s"].steps.len(), 2);
        assert_eq!(
            words["s"].steps[1],
            ["exec.filename", "in", "/tmp/", "/opt/x/"]
        );
    }
}
