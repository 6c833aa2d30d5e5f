//! The rules stage: Falco-like YAML rules (lists, macros, rules) compiled once into an immutable
//! [`RuleSet`] and evaluated against every [`Event`].
//!
//! ```yaml
//! - list: shell_binaries
//!   items: [bash, sh, zsh, dash]
//! - macro: spawned_by_server
//!   condition: proc.pname in (nginx, httpd, sshd)
//! - rule: shell_from_server
//!   desc: A shell was spawned by a server process
//!   condition: evt.kind = exec and proc.name in (shell_binaries) and spawned_by_server
//!   output: "shell %proc.name (pid %proc.pid) spawned by %proc.pname: %proc.cmdline"
//!   severity: warning   # emergency|alert|critical|error|warning|notice|informational|debug (default warning)
//!   tags: [T1059]
//!   enabled: true       # default true
//!   actions: [alert]    # alert|kill|kill_group|rollback|deny (default [alert])
//! ```
//!
//! Conditions: `=`, `!=`, `<`, `<=`, `>`, `>=`, `in (a, b, list_name)`, `contains`, `icontains` (ASCII
//! case-insensitive), `startswith`, `endswith`, `glob` (shell glob; `*` does not cross `/`, `**` does),
//! `regex` (unanchored, Rust `regex` syntax), `&` (bit test on numbers: `file.mode & 0o4000` holds when the
//! bit is set), `exists`; `and`, `or`, `not`, parentheses; macro names. Values are bare words, numbers
//! (decimal, `0x…`, `0o…`, `0b…`) or quoted strings. Bare words inside `in (…)` that name a list expand to
//! its items. Fields are listed in [`fields::FIELDS`]; a field that does not apply to the event is absent
//! and every comparison on it is false.
//!
//! Loading reports every error with `file:line:col`, the source line, a caret and a hint. This stage only
//! decides which rules match; it never acts on the host (that is the actions stage's job).

mod ast;
mod check;
mod error;
#[cfg(test)]
mod error_tests;
mod eval;
mod exec_match;
pub mod fields;
mod lexer;
mod load;
mod parser;
mod source;
mod template;
#[cfg(test)]
mod tests;

use std::path::Path;

use agent_common::model::Event;

pub use error::{ErrorKind, RuleError, RuleErrors};
pub use exec_match::ExecMatch;

use eval::{Cond, Template};
use source::SourceFile;

/// How serious a rule's finding is (syslog levels; `Emergency` is the most severe and sorts first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// System is unusable.
    Emergency,
    /// Act immediately.
    Alert,
    /// Critical.
    Critical,
    /// Error.
    Error,
    /// Warning (the default).
    Warning,
    /// Normal but significant.
    Notice,
    /// Informational.
    Informational,
    /// Debugging.
    Debug,
}

impl Severity {
    /// The names accepted in rules files, most severe first.
    pub const NAMES: [&'static str; 8] = [
        "emergency",
        "alert",
        "critical",
        "error",
        "warning",
        "notice",
        "informational",
        "debug",
    ];
    const ALL: [Severity; 8] = [
        Severity::Emergency,
        Severity::Alert,
        Severity::Critical,
        Severity::Error,
        Severity::Warning,
        Severity::Notice,
        Severity::Informational,
        Severity::Debug,
    ];

    /// Parses a name (case-insensitive).
    pub fn parse(name: &str) -> Option<Severity> {
        let lower = name.to_ascii_lowercase();
        Severity::NAMES
            .iter()
            .position(|n| *n == lower)
            .map(|i| Severity::ALL[i])
    }

    /// The name as written in rules files.
    pub fn as_str(self) -> &'static str {
        Severity::NAMES[self as usize]
    }
}

/// What to do when a rule matches (carried out by the actions stage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Report the finding.
    Alert,
    /// Kill the process.
    Kill,
    /// Kill the process group.
    KillGroup,
    /// Undo the change (e.g. restore a configuration file).
    Rollback,
    /// Refuse the operation (where it can be refused before it happens).
    Deny,
}

impl Action {
    /// The names accepted in rules files.
    pub const NAMES: [&'static str; 5] = ["alert", "kill", "kill_group", "rollback", "deny"];

    /// Parses a name.
    pub fn parse(name: &str) -> Option<Action> {
        match name {
            "alert" => Some(Action::Alert),
            "kill" => Some(Action::Kill),
            "kill_group" => Some(Action::KillGroup),
            "rollback" => Some(Action::Rollback),
            "deny" => Some(Action::Deny),
            _ => None,
        }
    }
}

/// Where a rule is defined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleLocation {
    /// The rules file.
    pub file: String,
    /// 1-based line of the rule's name.
    pub line: usize,
    /// 1-based column of the rule's name.
    pub col: usize,
}

/// One compiled rule.
#[derive(Clone, Debug)]
pub struct Rule {
    pub(crate) name: String,
    pub(crate) desc: String,
    pub(crate) severity: Severity,
    pub(crate) tags: Vec<String>,
    pub(crate) enabled: bool,
    pub(crate) actions: Vec<Action>,
    pub(crate) location: RuleLocation,
    pub(crate) cond: Cond,
    pub(crate) output: Template,
    pub(crate) exec_match: Option<ExecMatch>,
}

impl Rule {
    /// The rule's name (unique in its set).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its description.
    pub fn desc(&self) -> &str {
        &self.desc
    }

    /// Its severity.
    pub fn severity(&self) -> Severity {
        self.severity
    }

    /// Its tags.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// Whether it is enabled ([`RuleSet::matches`] skips disabled rules).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// What to do when it matches.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// Where it is defined.
    pub fn location(&self) -> &RuleLocation {
        &self.location
    }

    /// Whether its condition holds for `event` (regardless of `enabled`).
    pub fn matches(&self, event: &Event) -> bool {
        self.cond.eval(event)
    }

    /// The output line for `event`: `%field` placeholders filled in, absent fields as `<NA>`.
    pub fn render_output(&self, event: &Event) -> String {
        self.output.render(event)
    }

    /// The exec-time description of this rule when its condition has the restricted form documented on
    /// [`ExecMatch`]; `None` otherwise.
    pub fn exec_time_only(&self) -> Option<ExecMatch> {
        self.exec_match.clone()
    }
}

/// A compiled, immutable set of rules.
#[derive(Clone, Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Per event kind, the indexes (in file order) of the rules that can match it.
    by_kind: std::collections::HashMap<String, Vec<usize>>,
    /// Indexes of rules that do not restrict `evt.kind` (used for kinds no rule names).
    any_kind: Vec<usize>,
}

impl RuleSet {
    /// Loads a rules file, or every `*.yaml`/`*.yml` file of a directory (sorted by name, sharing lists and
    /// macros). Collects all errors.
    pub fn load(path: &Path) -> Result<RuleSet, RuleErrors> {
        let shown = path.display().to_string();
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .map(|text| SourceFile::new(p.display().to_string(), text))
                .map_err(|e| {
                    RuleErrors(vec![RuleError::io(
                        &p.display().to_string(),
                        format!("cannot read: {e}"),
                    )])
                })
        };
        if !path.is_dir() {
            return RuleSet::compile(vec![read(path)?]);
        }
        let entries = std::fs::read_dir(path).map_err(|e| {
            RuleErrors(vec![RuleError::io(
                &shown,
                format!("cannot read directory: {e}"),
            )])
        })?;
        let mut paths: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        paths.sort();
        let files = paths
            .iter()
            .map(|p| read(p))
            .collect::<Result<Vec<_>, _>>()?;
        RuleSet::compile(files)
    }

    /// Compiles rules from text; `name` is the file name used in error messages.
    pub fn parse(name: &str, text: &str) -> Result<RuleSet, RuleErrors> {
        RuleSet::compile(vec![SourceFile::new(name.to_string(), text.to_string())])
    }

    fn compile(files: Vec<SourceFile>) -> Result<RuleSet, RuleErrors> {
        load::compile(files).map(RuleSet::indexed)
    }

    /// Indexes rules by the event kinds their condition requires, so an event is only tested against
    /// rules that can match its kind.
    fn indexed(rules: Vec<Rule>) -> RuleSet {
        let kinds: Vec<Option<std::collections::HashSet<String>>> = rules
            .iter()
            .map(|r| eval::required_kinds(&r.cond))
            .collect();
        let any_kind: Vec<usize> = (0..rules.len()).filter(|&i| kinds[i].is_none()).collect();
        let mut by_kind: std::collections::HashMap<String, Vec<usize>> =
            std::collections::HashMap::new();
        for (i, set) in kinds.iter().enumerate() {
            for kind in set.iter().flatten() {
                by_kind
                    .entry(kind.clone())
                    .or_insert_with(|| any_kind.clone())
                    .push(i);
            }
        }
        for list in by_kind.values_mut() {
            list.sort_unstable();
            list.dedup();
        }
        RuleSet {
            rules,
            by_kind,
            any_kind,
        }
    }

    /// Every rule, enabled or not, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The enabled rules whose condition holds for `event`, in file order.
    pub fn matches<'a>(&'a self, event: &Event) -> impl Iterator<Item = &'a Rule> {
        let candidates = self.by_kind.get(event.kind()).unwrap_or(&self.any_kind);
        candidates
            .iter()
            .filter_map(|&i| self.rules.get(i))
            .filter(move |r| r.enabled && r.cond.eval(event))
    }
}
