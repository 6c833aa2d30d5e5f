//! Planning the drill of a rule on `config_change` events (a rollback rule such as
//! `sshd_config_changed`) without touching the file it watches: the drill creates a stand-in file of its
//! own in a fresh directory, asks the agent to stage an overlay (see [`crate::actions::overlay`]) holding
//! a copy of the rule with the watched path rewritten to the stand-in, overwrites the stand-in, and then
//! checks that the rollback put back the exact bytes it wrote first.
//!
//! [`derive`] is pure, like the rest of planning: it finds the watched path by playing a simulated
//! change through the compiled rule, rewrites the rule's source, and compiles the overlay exactly as the
//! agent will (same function), so a plan that cannot fire is reported before anything is created.

use std::path::Path;

use auditloop_model::{Event, WallTime};
use auditloop_rules::{Rule, RuleKind};
use serde_yaml_ng::Value;

use crate::actions::overlay;
use crate::cmd::drill::ops::{Context, Op};
use crate::cmd::drill::sim;
use crate::cmd::drill::words::RuleWords;

/// A stand-in file and the overlay that watches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    /// The watched path the rule names.
    pub original: String,
    /// The fresh directory (`/tmp/auditloop-drill-<nonce>`).
    pub dir: String,
    /// The stand-in file in it.
    pub file: String,
    /// The overlay's rules (YAML), as sent to the agent.
    pub overlay: String,
    /// The rule's name in the overlay (`drill:<name>`), as its alerts name it.
    pub rule: String,
    /// What the drill writes first: the known-good content a rollback must restore.
    pub known: Vec<u8>,
    /// What the stimulus overwrites it with.
    pub changed: Vec<u8>,
}

/// A `config_change` of `path` by the drill's child, as the agent would journal it.
fn change_event(path: &str, ctx: &Context) -> Event {
    Event {
        seq: 0,
        time: WallTime(1),
        mono_ns: 1,
        process: auditloop_model::Process {
            pid: ctx.pid + 1,
            ppid: ctx.pid,
            uid: ctx.uid,
            gid: ctx.gid,
            comm: ctx.comm.clone(),
            exe: ctx.exe.clone(),
            ..auditloop_model::Process::default()
        },
        event: sim::config_change(path),
    }
}

/// A file name the agent accepts in a drill directory.
fn safe_name(name: &str) -> String {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok { name.to_owned() } else { "drill".into() }
}

/// A staged plan: the stimulus's one operation, its label and the stand-in.
pub type Staged = (Op, String, Stage);

/// The staged plan for `rule`: `None` when it matches no change of a path its words name (then it is
/// drilled like any other rule), an error when it does but no overlay can be made of it.
pub fn derive(rule: &Rule, words: &RuleWords, ctx: &Context) -> Option<Result<Staged, String>> {
    let found = words
        .condition
        .iter()
        .filter(|w| w.starts_with('/'))
        .find_map(|word| {
            let path = if word.ends_with('/') {
                format!("{word}drill")
            } else {
                word.clone()
            };
            rule.matches(&change_event(&path, ctx))
                .then(|| (word.clone(), path))
        });
    let (word, original) = found?;
    Some(plan(rule, words, ctx, &word, &original))
}

fn plan(
    rule: &Rule,
    words: &RuleWords,
    ctx: &Context,
    word: &str,
    original: &str,
) -> Result<Staged, String> {
    if rule.kind() != RuleKind::Stateless {
        return Err("a threshold or sequence rule on config changes cannot be staged".into());
    }
    let dir = format!("/tmp/{}", ctx.name());
    let (file, replacement) = if word.ends_with('/') {
        (format!("{dir}/drill"), format!("{dir}/"))
    } else {
        let base = original.rsplit('/').next().unwrap_or_default();
        let file = format!("{dir}/{}", safe_name(base));
        (file.clone(), file)
    };
    let overlay = rewrite(&words.source, rule.name(), word, &replacement)?;
    let compiled = overlay::compile(&overlay, Path::new(&file)).map_err(|e| e.to_string())?;
    let name = format!("{}{}", overlay::RULE_PREFIX, rule.name());
    let fires = compiled
        .rules()
        .iter()
        .any(|r| r.name() == name && r.matches(&change_event(&file, ctx)));
    if !fires {
        return Err(format!(
            "the rule does not fire on a change of the drill's stand-in once {word} is rewritten to it"
        ));
    }
    let stage = Stage {
        original: original.to_owned(),
        dir,
        file: file.clone(),
        overlay,
        rule: name,
        known: format!(
            "# auditloop drill {}: known-good content of a stand-in for {original}\n",
            ctx.nonce
        )
        .into_bytes(),
        changed: format!("# auditloop drill {}: changed by the drill\n", ctx.nonce).into_bytes(),
    };
    Ok((
        Op::Change { path: file.clone() },
        format!("overwrite {file} (stand-in for {original})"),
        stage,
    ))
}

/// `source` (the rule with its set's lists and macros) with `word` replaced by `replacement` in every
/// condition, keeping only the rule `name` among the rules.
fn rewrite(source: &str, name: &str, word: &str, replacement: &str) -> Result<String, String> {
    let doc: Value = serde_yaml_ng::from_str(source).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for item in doc.as_sequence().into_iter().flatten() {
        let mut item = item.clone();
        let Some(map) = item.as_mapping_mut() else {
            continue;
        };
        if let Some(rule) = map.get("rule").and_then(Value::as_str)
            && rule != name
        {
            continue;
        }
        if let Some(Value::String(condition)) = map.get_mut("condition") {
            *condition = condition.replace(word, replacement);
        }
        out.push(item);
    }
    serde_yaml_ng::to_string(&Value::Sequence(out)).map_err(|e| e.to_string())
}
