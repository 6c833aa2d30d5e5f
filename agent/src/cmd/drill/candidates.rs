//! Candidate operations from a rule's words, in trial order, and the reasons a rule is not drillable.
//!
//! Values only: field names and keywords are skipped. Every absolute path gives an exact path, prefix
//! forms (`<dir>/auditloop-drill-<nonce>`, or a fresh directory `…/auditloop-drill-<nonce>/drill`) and,
//! for globs, an instance with the wildcards replaced by the nonce name; other words give suffix forms
//! inside a fresh temp directory (`endswith /nc`, `proc.name = nc`). Each candidate carries the reason it
//! is unsafe, if it is: an exec outside the temp directories and fresh directories, a write to an
//! existing path. Unsafe candidates are never performed; they only explain why a rule is not drillable.

use crate::cmd::drill::ops::{CHMOD_BITS, Context, Host, Op, TEMP_ROOTS};
use crate::cmd::drill::words::RuleWords;
use auditloop_model::EventKind;
use auditloop_rules::fields::{EVT_KIND, FIELDS};
use auditloop_rules::is_keyword;

/// Words that are syntax or field names, not values.
fn is_value(word: &str) -> bool {
    let field = word.split('[').next().unwrap_or(word);
    !word.is_empty() && !is_keyword(word) && !FIELDS.iter().any(|f| f.name == field)
}

fn is_glob(word: &str) -> bool {
    word.contains(['*', '?', '[', '{'])
}

/// A path matching glob `pattern`, with wildcards replaced by `name`; `None` for negated classes.
fn instantiate(pattern: &str, name: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                while chars.peek() == Some(&'*') {
                    chars.next();
                }
                out.push_str(name);
            }
            '?' => out.push('x'),
            '[' => {
                let first = chars.next()?;
                if first == '!' || first == '^' {
                    return None;
                }
                out.push(first);
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                }
            }
            '{' => {
                let mut first = String::new();
                let mut in_first = true;
                for d in chars.by_ref() {
                    match d {
                        '}' => break,
                        ',' => in_first = false,
                        d if in_first => first.push(d),
                        _ => {}
                    }
                }
                out.push_str(&first);
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// Why an exec path is not a safe place for a program copy, if it is not.
fn exec_refusal(path: &str, name: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    if !path.starts_with('/') || parts.iter().any(|p| *p == ".." || *p == ".") {
        return Some(format!("exec path {path} is not a plain absolute path"));
    }
    // A fresh directory named with the nonce (not the file itself) may be made anywhere.
    let in_fresh_dir = parts
        .iter()
        .take(parts.len().saturating_sub(1))
        .any(|p| p.contains(name));
    let in_temp = TEMP_ROOTS
        .iter()
        .any(|root| path.len() > root.len() && path.starts_with(root));
    (!in_fresh_dir && !in_temp).then(|| {
        format!(
            "exec of {path} needs a program outside /tmp, /var/tmp and /dev/shm; \
             the drill never places programs there"
        )
    })
}

/// Why a program copy cannot be placed at `path` on this host, if it cannot: the directory the drill
/// starts creating in must exist, and an exact path must not.
fn placement_refusal(path: &str, name: &str, host: &Host) -> Option<String> {
    let parent_of = |p: &str| match p.rsplit_once('/') {
        Some(("", _)) | None => "/".to_owned(),
        Some((dir, _)) => dir.to_owned(),
    };
    // The topmost directory named with the nonce, if any (the drill creates it and what is below).
    let fresh = path
        .match_indices('/')
        .filter_map(|(i, _)| path.get(..i))
        .find(|dir| {
            dir.rsplit('/')
                .next()
                .is_some_and(|last| last.contains(name))
        });
    let base = parent_of(fresh.unwrap_or(path));
    if !(host.is_dir)(&base) {
        return Some(format!("{base} is not an existing directory"));
    }
    (fresh.is_none() && (host.exists)(path))
        .then(|| format!("{path} exists; the drill never replaces files"))
}

/// Every candidate operation from `words`, in trial order, each with the reason it is unsafe (if it is).
pub fn candidates(words: &[String], ctx: &Context) -> Vec<(Op, Option<String>)> {
    let name = ctx.name();
    let values: Vec<&String> = words.iter().filter(|w| is_value(w)).collect();
    let paths: Vec<String> = values
        .iter()
        .filter(|w| w.starts_with('/'))
        .filter_map(|w| {
            if is_glob(w) {
                instantiate(w, &name)
            } else {
                Some((*w).clone())
            }
        })
        .collect();
    let names: Vec<&String> = values
        .iter()
        .copied()
        .filter(|w| !w.starts_with('/') && !is_glob(w) && !w.contains(char::is_whitespace))
        .collect();
    let mut exec_paths = Vec::new();
    // A nonce-named file directly in a directory only in the temp dirs; elsewhere in a fresh directory.
    let in_temp = |p: &str| TEMP_ROOTS.iter().any(|root| p.starts_with(root));
    for p in &paths {
        if let Some(dir) = p.strip_suffix('/') {
            if in_temp(p) {
                exec_paths.push(format!("{dir}/{name}"));
            }
            exec_paths.push(format!("{dir}/{name}/drill"));
        } else {
            exec_paths.push(p.clone());
            if in_temp(p) {
                exec_paths.push(format!("{p}-{name}"));
            }
            exec_paths.push(format!("{p}/{name}/drill"));
        }
    }
    exec_paths.push(format!("/tmp/{name}/drill"));
    // Suffixes (`endswith /nc`, `proc.name = nc`) inside a fresh directory.
    for p in paths
        .iter()
        .filter(|p| !p.ends_with('/') && !p.contains(&name))
    {
        exec_paths.push(format!("/tmp/{name}{p}"));
    }
    for n in &names {
        let n = n.trim_start_matches('/');
        if n.starts_with(['.', '-', '_']) {
            exec_paths.push(format!("/tmp/{name}{n}"));
        }
        exec_paths.push(format!("/tmp/{name}/{n}"));
    }
    let host = &ctx.host;
    let mut out: Vec<(Op, Option<String>)> = Vec::new();
    for path in exec_paths {
        let refusal = exec_refusal(&path, &name).or_else(|| placement_refusal(&path, &name, host));
        out.push((Op::Exec { path, fork: false }, refusal));
    }
    out.push((Op::MemfdExec { fork: false }, None));
    for p in paths
        .iter()
        .filter(|p| !p.ends_with('/') && !p.contains(&name))
    {
        let refusal = (!(host.is_file)(p)).then(|| format!("{p} is not an existing regular file"));
        out.push((Op::Read { path: p.clone() }, refusal));
    }
    let mut dirs: Vec<String> = Vec::new();
    for p in &paths {
        match p.strip_suffix('/') {
            Some(dir) => dirs.push(dir.to_owned()),
            None => {
                dirs.push(p.clone());
                dirs.push(
                    p.rsplit_once('/')
                        .map(|(d, _)| d.to_owned())
                        .unwrap_or_default(),
                );
            }
        }
    }
    for dir in dirs.iter().filter(|d| !d.contains(&name)) {
        let shown = if dir.is_empty() { "/" } else { dir.as_str() };
        let refusal =
            (!(host.is_dir)(shown)).then(|| format!("{shown} is not an existing directory"));
        out.push((
            Op::Create {
                path: format!("{dir}/{name}.tmp"),
            },
            refusal,
        ));
    }
    out.push((
        Op::Create {
            path: format!("/tmp/{name}.tmp"),
        },
        None,
    ));
    for n in names.iter().filter(|n| !n.contains('/')) {
        out.push((
            Op::Create {
                path: format!("/tmp/{name}{n}"),
            },
            None,
        ));
    }
    for p in paths
        .iter()
        .filter(|p| !p.ends_with('/') && !p.contains(&name))
    {
        let why = format!("needs a write to {p}; the drill never modifies existing files");
        out.push((Op::Create { path: p.clone() }, Some(why)));
    }
    out.extend(rarer(words, &names, &values, ctx));
    out.dedup();
    out
}

/// Most names paired for a server-and-shell stimulus.
const MAX_PAIRED: usize = 48;

/// Whether `name` can be a file name in the drill's fresh directory.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0'])
}

/// The stimuli tried after the common ones: a setuid `chmod` of the drill's file, a shell run by a
/// server copy, a loopback connection from a program copy, a signal 0 to the agent.
fn rarer(
    words: &[String],
    names: &[&String],
    values: &[&String],
    ctx: &Context,
) -> Vec<(Op, Option<String>)> {
    let name = ctx.name();
    let has = |w: &str| words.iter().any(|x| x == w);
    let mut out = Vec::new();
    if has("chmod") {
        let mut modes = vec![0o4600, 0o2600, 0o1600, 0o600];
        for word in values {
            let parsed = match word.strip_prefix("0o") {
                Some(octal) => u32::from_str_radix(octal, 8).ok(),
                None => word.parse::<u32>().ok(),
            };
            if let Some(bits) = parsed {
                modes.push((bits & CHMOD_BITS) | 0o600);
            }
        }
        for mode in modes {
            out.push((
                Op::Chmod {
                    path: format!("/tmp/{name}.tmp"),
                    mode,
                },
                None,
            ));
        }
    }
    let plain: Vec<&str> = names
        .iter()
        .map(|n| n.as_str())
        .filter(|n| plain_name(n))
        .take(MAX_PAIRED)
        .collect();
    let host = &ctx.host;
    let in_fresh = |file: &str| format!("/tmp/{name}/{file}");
    if words
        .iter()
        .any(|w| w.starts_with("proc.p") || w.starts_with("proc.a"))
    {
        for server in &plain {
            for shell in plain.iter().filter(|s| *s != server) {
                let server = in_fresh(server);
                let refusal = placement_refusal(&server, &name, host);
                out.push((
                    Op::ServerShell {
                        server,
                        shell: in_fresh(shell),
                    },
                    refusal,
                ));
            }
        }
    }
    if has("net") || has("connect") || words.iter().any(|w| w.starts_with("net.")) {
        for program in plain.iter().copied().chain(["drill"]) {
            let program = in_fresh(program);
            let refusal = placement_refusal(&program, &name, host);
            out.push((Op::Connect { program }, refusal));
        }
    }
    if has("io_uring") || words.iter().any(|w| w.starts_with("uring.")) {
        out.push((
            Op::UringCreate {
                path: format!("/tmp/{name}.uring"),
            },
            None,
        ));
    }
    out.push((Op::SignalAgent, None));
    out
}

/// Why no stimulus fits: the most specific reason the rule's words give.
pub fn reason(words: &RuleWords, unsafe_hit: Option<String>) -> String {
    let all: Vec<String> = words.all().cloned().collect();
    let kinds_of = |kind: EventKind| {
        all.iter().any(|w| {
            w == kind.as_str() && all.iter().any(|x| x == EVT_KIND)
                || FIELDS
                    .iter()
                    .any(|f| f.name == w.as_str() && f.kinds == [kind])
        })
    };
    if kinds_of(EventKind::ConfigChange) {
        return "config-change rule without rollback: the drill only stages a watched file for a \
                rollback rule"
            .into();
    }
    if kinds_of(EventKind::Net) {
        return "network rule: the drill only connects to 127.0.0.1 from a program copy, which does not \
                satisfy it"
            .into();
    }
    unsafe_hit.unwrap_or_else(|| reason_words(&all))
}

/// The reason for a condition (or a step) no candidate fits, from its words.
pub fn reason_words(all: &[String]) -> String {
    let has = |w: &str| all.iter().any(|x| x == w);
    let parent: Vec<&str> = [
        "proc.pname",
        "proc.pexe",
        "proc.pcmdline",
        "proc.aname",
        "proc.apid",
        "proc.aexe",
        "proc.acmdline",
        "proc.ancestors",
    ]
    .into_iter()
    .filter(|f| all.iter().any(|w| w.starts_with(f)))
    .collect();
    if !parent.is_empty() {
        return format!(
            "depends on the parent process ({}), which the drill cannot stage",
            parent.join(", ")
        );
    }
    const OTHER_OPS: [&str; 12] = [
        "rename", "link", "symlink", "chmod", "chown", "truncate", "mkdir", "rmdir", "utimens",
        "mount", "umount", "chdir",
    ];
    let ops: Vec<&str> = OTHER_OPS.into_iter().filter(|op| has(op)).collect();
    if has("file.op") && !ops.is_empty() {
        return format!(
            "needs file.op {}, which the drill never performs (it only opens files read-only and \
             creates and unlinks its own)",
            ops.join("/")
        );
    }
    let produced = [EventKind::Exec, EventKind::File, EventKind::MemfdCreate];
    let kinds: Vec<&str> = EventKind::all()
        .filter(|k| !produced.contains(k))
        .filter(|k| {
            has(k.as_str()) && has(EVT_KIND)
                || FIELDS
                    .iter()
                    .any(|f| f.kinds == [*k] && all.iter().any(|w| w == f.name))
        })
        .map(EventKind::as_str)
        .collect();
    if !kinds.is_empty() {
        return format!(
            "needs {} events, which the drill does not produce",
            kinds.join("/")
        );
    }
    "no supported stimulus satisfies the condition (see Drills in docs/rules.md)".into()
}
