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
//!   actions: [alert]    # alert|kill|kill_group|rollback|deny|hold (default [alert])
//!   hold: {timeout: 5m, default: deny}   # with `hold` only: how long to wait, and approve|deny after
//! ```
//!
//! Conditions: `=`, `!=`, `<`, `<=`, `>`, `>=`, `in (a, b, list_name)`, `contains`, `icontains` (ASCII
//! case-insensitive), `startswith`, `endswith`, `glob` (shell glob; `*` does not cross `/`, `**` does),
//! `regex` (unanchored, Rust `regex` syntax), `&` (bit test on numbers: `file.mode & 0o4000` holds when the
//! bit is set), `exists`; `and`, `or`, `not`, parentheses; macro names. Values are bare words, numbers
//! (decimal, `0x…`, `0o…`, `0b…`) or quoted strings. Bare words inside `in (…)` that name a list expand to
//! its items. A bare word after `=`, `!=`, `<`, `<=`, `>` or `>=` that names a field is that field's value
//! in the same event (`user.loginuid != user.uid`); quote it to compare with the text. Fields are listed in [`fields::FIELDS`]; a field that does not apply to the event is absent
//! and every comparison on it is false.
//!
//! ## Stateful rules
//!
//! A rule may carry one of two keys (not both) that make it fire on a pattern of events rather than on one:
//!
//! ```yaml
//! - rule: shadow_read_burst
//!   condition: evt.kind = file and file.op = read and file.path = /etc/shadow and file.success = false
//!   threshold:
//!     count: 20          # fire on the event that brings the count within the window to 20 ...
//!     window: 10s        # ... in a sliding window of this length (units: ms, s, m, h)
//!     by: [user.uid]     # counted per distinct value of these fields (optional: one global count)
//!   output: "%user.uid failed %file.path 20 times in 10s"
//! - rule: write_then_exec_tmp
//!   sequence:
//!     within: 30s        # all steps within this time of the first step's event
//!     by: [proc.ppid]    # correlation key of every step (optional) ...
//!     steps:             # at least 2, matched in this order
//!       - condition: evt.kind = file and file.op = open and file.path startswith /tmp/
//!         by: [proc.pid] # ... unless a step names its own
//!       - condition: evt.kind = exec and exec.filename startswith /tmp/
//!   output: "%proc.name executed %exec.filename shortly after a write in /tmp"
//! ```
//!
//! - **threshold**: `condition` is required; the rule fires on the event that makes `count` matching
//!   events of one key fall within `window` (first and last at most `window` apart), then that key's count
//!   starts again from zero, so a steady stream fires once per `count` events. `count` is 1 to 10,000.
//! - **sequence**: `condition` is optional and, when given, every step's event must also satisfy it. Per
//!   key, the rule remembers how far the steps have matched and when the first step matched; it fires on
//!   the event matching the last step when the earlier ones matched in that order and the last step's event
//!   is at most `within` after the first's, then that key starts over. A new first-step match restarts a
//!   key that has matched only the first step or has run out of time.
//! - A key is the `by` fields' values as text, joined; an event where one of them is absent does not count.
//!   Step keys are compared across steps, so step 1 `by: [proc.pid]` and step 2 `by: [proc.ppid]` link a
//!   parent's event to its child's.
//! - Time is the event's monotonic `mono_ns`, never the wall clock.
//! - Memory is bounded per rule: at most [`MAX_KEYS`] (10,000) keys, the least recently touched evicted
//!   first; a threshold key keeps at most `count` timestamps, a sequence key one step index and one time.
//! - The memory lives in a [`RuleState`] that the caller keeps and passes to [`RuleSet::fire`]. A reloaded
//!   rule set needs a new state ([`RuleSet::new_state`]): counts and partial sequences in flight are
//!   dropped. [`RuleSet::matches`] is stateless and skips threshold and sequence rules.
//!
//! Loading reports every error with `file:line:col`, the source line, a caret and a hint. This stage only
//! decides which rules match; it never acts on the host (that is the actions stage's job).

mod ancestry;
mod ast;
mod check;
mod error;
#[cfg(test)]
mod error_tests;
mod eval;
mod exec_match;
#[cfg(test)]
mod field_cmp_tests;
mod fielddef;
pub mod fields;
mod file_match;
mod hold;
mod item;
mod lexer;
mod load;
mod parser;
pub use parser::is_keyword;
mod source;
mod stateful;
mod stateful_load;
#[cfg(test)]
mod stateful_tests;
mod template;
#[cfg(test)]
mod tests;

use std::path::Path;

use auditloop_model::{ActionKind, EVENT_KIND_COUNT, Event, EventKind};

pub use error::{ErrorKind, RuleError, RuleErrors};
pub use exec_match::ExecMatch;
pub use file_match::{FileMatch, KERNEL_FILE_OPS};
pub use hold::{DEFAULT_HOLD_TIMEOUT_NS, HoldSpec};
pub use stateful::{MAX_KEYS, RuleState};

use eval::{Cond, Template};
use source::SourceFile;
use stateful::Stateful;

pub use auditloop_model::Severity;

/// What to do when a rule matches (carried out by the actions stage). Its names are the ones rules files
/// accept in `actions:`.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    strum::EnumIter,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
)]
#[strum(serialize_all = "snake_case")]
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
    /// Stop the process until a person (or the rule's timeout) decides: approve continues it, deny
    /// kills it.
    Hold,
}

impl Action {
    /// The name as written in rules files.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses a name.
    pub fn parse(name: &str) -> Option<Action> {
        name.parse().ok()
    }

    /// Every action, in declaration order.
    pub fn all() -> impl Iterator<Item = Action> {
        <Action as strum::IntoEnumIterator>::iter()
    }

    /// The journaled action that carries this one out; `None` for [`Action::Alert`], which is journaled as
    /// the alert itself.
    pub fn taken(self) -> Option<ActionKind> {
        match self {
            Action::Alert => None,
            Action::Kill => Some(ActionKind::Kill),
            Action::KillGroup => Some(ActionKind::KillGroup),
            Action::Rollback => Some(ActionKind::Rollback),
            Action::Deny => Some(ActionKind::Deny),
            // Journaled as `hold` events of its own.
            Action::Hold => None,
        }
    }

    /// Whether it kills the process (or its group).
    pub fn kills(self) -> bool {
        matches!(self, Action::Kill | Action::KillGroup)
    }

    /// Whether it does something beyond alerting.
    pub fn acts(self) -> bool {
        self != Action::Alert
    }
}

/// Whether a rule decides on one event or on a pattern of events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// Fires on every event its condition holds for.
    Stateless,
    /// Fires when `count` matching events of one key fall within a window (`threshold:`).
    Threshold,
    /// Fires when its steps match in order, per key, within a time limit (`sequence:`).
    Sequence,
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
    pub(crate) hold: Option<HoldSpec>,
    pub(crate) location: RuleLocation,
    pub(crate) cond: Cond,
    pub(crate) output: Template,
    pub(crate) exec_match: Option<ExecMatch>,
    pub(crate) file_match: Option<FileMatch>,
    pub(crate) stateful: Option<Stateful>,
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

    /// How its `hold` waits, when its actions include [`Action::Hold`].
    pub fn hold(&self) -> Option<HoldSpec> {
        self.hold
    }

    /// Where it is defined.
    pub fn location(&self) -> &RuleLocation {
        &self.location
    }

    /// Whether it decides on one event, or is a threshold or sequence rule.
    pub fn kind(&self) -> RuleKind {
        match self.stateful {
            None => RuleKind::Stateless,
            Some(Stateful::Threshold(_)) => RuleKind::Threshold,
            Some(Stateful::Sequence(_)) => RuleKind::Sequence,
        }
    }

    /// Whether its condition holds for `event` (regardless of `enabled`). For a sequence rule: whether
    /// `event` matches one of its steps (and its `condition`, when it has one).
    pub fn matches(&self, event: &Event) -> bool {
        self.cond.eval(event)
    }

    /// The output line for `event`: `%field` placeholders filled in, absent fields as `<NA>`.
    pub fn render_output(&self, event: &Event) -> String {
        self.output.render(event)
    }

    /// The exec-time description of this rule when its condition has the restricted form documented on
    /// [`ExecMatch`]; `None` otherwise, and always for threshold and sequence rules.
    pub fn exec_time_only(&self) -> Option<ExecMatch> {
        self.exec_match.clone()
    }

    /// The file-time description of this rule when its condition has the restricted form documented on
    /// [`FileMatch`]; `None` otherwise, and always for threshold and sequence rules.
    pub fn file_time_only(&self) -> Option<FileMatch> {
        self.file_match.clone()
    }
}

/// Resolves an absolute path to its canonical path on this host (`None`: leave it as written).
pub type PathResolver<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A path literal that rules match as its canonical path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathRewrite {
    /// Where the literal is: `file:line:col`.
    pub at: String,
    /// The literal as written.
    pub literal: String,
    /// Its canonical path on this host.
    pub canonical: String,
}

/// A compiled, immutable set of rules.
#[derive(Clone, Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Path literals matched as their canonical path.
    rewrites: Vec<PathRewrite>,
    /// Per event kind (indexed by the kind's position), the indexes (in file order) of the rules that can
    /// match it.
    by_kind: [Vec<usize>; EVENT_KIND_COUNT],
}

impl RuleSet {
    /// Loads a rules file, or every `*.yaml`/`*.yml` file of a directory (sorted by name, sharing lists and
    /// macros). Collects all errors.
    pub fn load(path: &Path) -> Result<RuleSet, RuleErrors> {
        RuleSet::load_with(path, None)
    }

    /// Like [`RuleSet::load`], matching absolute path literals compared with canonical path fields
    /// (`file.path`, `exec.filename`, `change.path`, …) as their canonical path by `resolve`: events carry
    /// canonical paths, so `exec.filename = /bin/sh` on a host where `/bin` links to `usr/bin` would never
    /// match otherwise. [`RuleSet::path_rewrites`] lists what was rewritten.
    pub fn load_resolving(path: &Path, resolve: PathResolver<'_>) -> Result<RuleSet, RuleErrors> {
        RuleSet::load_with(path, Some(resolve))
    }

    fn load_with(path: &Path, resolve: Option<PathResolver<'_>>) -> Result<RuleSet, RuleErrors> {
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
            return RuleSet::compile(vec![read(path)?], resolve);
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
        RuleSet::compile(files, resolve)
    }

    /// Compiles rules from text; `name` is the file name used in error messages.
    pub fn parse(name: &str, text: &str) -> Result<RuleSet, RuleErrors> {
        RuleSet::compile(
            vec![SourceFile::new(name.to_string(), text.to_string())],
            None,
        )
    }

    /// Like [`RuleSet::parse`], resolving path literals as [`RuleSet::load_resolving`] does.
    pub fn parse_resolving(
        name: &str,
        text: &str,
        resolve: PathResolver<'_>,
    ) -> Result<RuleSet, RuleErrors> {
        RuleSet::compile(
            vec![SourceFile::new(name.to_string(), text.to_string())],
            Some(resolve),
        )
    }

    fn compile(
        files: Vec<SourceFile>,
        resolve: Option<PathResolver<'_>>,
    ) -> Result<RuleSet, RuleErrors> {
        let (rules, rewrites) = load::compile(files, resolve)?;
        let mut set = RuleSet::indexed(rules);
        set.rewrites = rewrites;
        Ok(set)
    }

    /// Path literals matched as their canonical path.
    pub fn path_rewrites(&self) -> &[PathRewrite] {
        &self.rewrites
    }

    /// Indexes rules by the event kinds their condition requires, so an event is only tested against
    /// rules that can match its kind. A sequence rule's condition is its `condition` and the `or` of its
    /// steps, so it is indexed under the union of its steps' kinds (unrestricted if one step is).
    fn indexed(rules: Vec<Rule>) -> RuleSet {
        let kinds: Vec<Option<std::collections::HashSet<EventKind>>> = rules
            .iter()
            .map(|r| eval::required_kinds(&r.cond))
            .collect();
        let by_kind = std::array::from_fn(|slot| {
            kinds
                .iter()
                .enumerate()
                .filter(|(_, set)| {
                    set.as_ref()
                        .is_none_or(|s| s.iter().any(|k| *k as usize == slot))
                })
                .map(|(i, _)| i)
                .collect()
        });
        RuleSet {
            rewrites: Vec::new(),
            rules,
            by_kind,
        }
    }

    /// The event kinds on which an enabled rule can take an action beyond alerting (kill, kill the group,
    /// roll back, deny): the events that must reach the rules without delay. `None` when such a rule can
    /// match any kind; an empty set when no rule acts.
    pub fn acting_kinds(&self) -> Option<std::collections::HashSet<EventKind>> {
        let mut kinds = std::collections::HashSet::new();
        for rule in self.rules.iter().filter(|r| r.enabled) {
            if !rule.actions.iter().any(|a| a.acts()) {
                continue;
            }
            kinds.extend(eval::required_kinds(&rule.cond)?);
        }
        Some(kinds)
    }

    /// Every rule, enabled or not, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The enabled stateless rules whose condition holds for `event`, in file order (threshold and
    /// sequence rules need a [`RuleState`]: see [`RuleSet::fire`]).
    pub fn matches<'a>(&'a self, event: &Event) -> impl Iterator<Item = &'a Rule> {
        self.candidates(event)
            .iter()
            .filter_map(|&i| self.rules.get(i))
            .filter(move |r| r.enabled && r.stateful.is_none() && r.cond.eval(event))
    }

    /// The indexes of the rules that can match `event`'s kind, in file order.
    fn candidates(&self, event: &Event) -> &[usize] {
        self.by_kind
            .get(event.kind() as usize)
            .map_or(&[], Vec::as_slice)
    }

    /// A fresh memory for this set's threshold and sequence rules (at most [`MAX_KEYS`] keys per rule).
    pub fn new_state(&self) -> RuleState {
        RuleState::new(&self.rules, MAX_KEYS)
    }

    /// Every enabled rule that fires for this event: stateless rules whose condition holds, plus threshold
    /// and sequence rules this event completes. Updates `state` (a state of another rule set is started
    /// afresh). In file order.
    pub fn fire<'a>(&'a self, state: &mut RuleState, event: &Event) -> Vec<&'a Rule> {
        if !state.fits(&self.rules) {
            *state = RuleState::new(&self.rules, state.max_keys());
        }
        self.candidates(event)
            .iter()
            .filter_map(|&i| Some((i, self.rules.get(i)?)))
            .filter(|(i, r)| r.enabled && state.fire(*i, r, event))
            .map(|(_, r)| r)
            .collect()
    }
}
