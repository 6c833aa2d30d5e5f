//! Turning a [`Baseline`] into proposed rules: alert-only, one per group of subjects that share the same
//! normal values (parents that start the same programs, config paths with the same writers, …), each
//! value in a list with its support as a comment. Every rule is a departure test (`not … in (list)`), and
//! every list holds exactly the values the window showed, so the window itself raises nothing.

use std::collections::{BTreeMap, BTreeSet};

use auditloop_model::WallTime;
use auditloop_rules::{RuleErrors, RuleSet};
use serde::Serialize;

use crate::baseline::{Baseline, Keyed, Options, Seen, WRITE_OPS, merge_seen};
use crate::yaml::{self, Item, RuleText, literal, quote, support, when};

/// One proposed rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProposedRule {
    /// Its name (`learned_…`).
    pub name: String,
    /// What departure it flags: `exec_under_parent`, `exec_under_quiet_server`, `config_writer`,
    /// `new_config_write`, `new_listener`, `listen_port`, `server_destination`,
    /// `connect_from_quiet_server`, `sensitive_reader`.
    pub flags: &'static str,
    /// The subjects it judges (parents, paths, programs).
    pub subjects: Vec<String>,
    /// Normal values it allows.
    pub values: usize,
    /// Events of the window behind it.
    pub support: u64,
    /// First and last of those events.
    pub first: Option<WallTime>,
    /// See `first`.
    pub last: Option<WallTime>,
}

/// A subject the proposal leaves out, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The parent, path or program.
    pub subject: String,
    /// Why it has no rule.
    pub why: String,
}

/// Proposed rules: the rules file's text and what it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Proposal {
    /// The rules file (YAML with comments).
    pub yaml: String,
    /// Its rules, in file order.
    pub rules: Vec<ProposedRule>,
    /// Subjects without a rule.
    pub skipped: Vec<Skipped>,
}

impl Proposal {
    /// The proposal compiled as the agent would load it (`name` is the file name errors cite).
    pub fn compile(&self, name: &str) -> Result<RuleSet, RuleErrors> {
        RuleSet::parse(name, &self.yaml)
    }
}

/// A rule being built: its lists and rule text.
struct Draft {
    meta: ProposedRule,
    text: String,
}

/// Names handed out so far.
#[derive(Default)]
struct Names(BTreeSet<String>);

impl Names {
    /// A unique rule name `learned_<what>_<slug of subject>`.
    fn take(&mut self, what: &str, subject: &str) -> String {
        let base = subject.rsplit('/').next().unwrap_or(subject);
        let mut slug = String::new();
        for c in base.chars() {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() {
                slug.push(c);
            } else if !slug.ends_with('_') {
                slug.push('_');
            }
            if slug.len() >= 32 {
                break;
            }
        }
        let slug = slug.trim_matches('_');
        let stem = if slug.is_empty() {
            format!("learned_{what}")
        } else {
            format!("learned_{what}_{slug}")
        };
        let mut name = stem.clone();
        let mut n = 2;
        while !self.0.insert(name.clone()) {
            name = format!("{stem}_{n}");
            n += 1;
        }
        name
    }
}

fn span<'a>(seen: impl Iterator<Item = &'a Seen>) -> (u64, Option<WallTime>, Option<WallTime>) {
    let mut count = 0;
    let mut first: Option<WallTime> = None;
    let mut last: Option<WallTime> = None;
    for s in seen {
        count += s.count;
        first = Some(first.map_or(s.first, |f| f.min(s.first)));
        last = Some(last.map_or(s.last, |l| l.max(s.last)));
    }
    (count, first, last)
}

fn rule_note(meta: &ProposedRule) -> String {
    let mut note = format!(
        "support: {} events, {} subject(s), {} normal value(s)",
        meta.support,
        meta.subjects.len(),
        meta.values
    );
    if let (Some(f), Some(l)) = (meta.first, meta.last) {
        note.push_str(&format!("; first seen {}, last seen {}", when(f), when(l)));
    }
    note
}

fn string_items<'a>(values: impl Iterator<Item = (&'a String, &'a Seen)>) -> Vec<Item> {
    values
        .map(|(v, s)| Item {
            value: quote(v),
            note: support(s),
        })
        .collect()
}

/// Numbers (uids, ports) as list items, unquoted, each with its support.
fn bare_items<'a, V: std::fmt::Display + 'a>(
    values: impl Iterator<Item = (&'a V, &'a Seen)>,
) -> Vec<Item> {
    values
        .map(|(v, s)| Item {
            value: v.to_string(),
            note: support(s),
        })
        .collect()
}

fn subject_items<'a>(subjects: impl Iterator<Item = (&'a String, Option<&'a Seen>)>) -> Vec<Item> {
    subjects
        .map(|(v, s)| Item {
            value: quote(v),
            note: s.map_or_else(|| "no events of its own".into(), support),
        })
        .collect()
}

/// Values of several subjects' `Keyed`, merged.
fn merged<'a>(keyed: impl Iterator<Item = &'a Keyed>) -> BTreeMap<String, Seen> {
    let mut out: BTreeMap<String, Seen> = BTreeMap::new();
    for k in keyed {
        merge_seen(&mut out, &k.by);
    }
    out
}

/// Subjects grouped by their set of normal values (and whether some of their events were unjudged).
fn groups<'a>(
    subjects: impl Iterator<Item = (&'a String, &'a Keyed)>,
) -> Vec<(Vec<&'a String>, bool)> {
    let mut by: BTreeMap<(Vec<&'a String>, bool), Vec<&'a String>> = BTreeMap::new();
    for (subject, keyed) in subjects {
        let values: Vec<&String> = keyed.by.keys().collect();
        by.entry((values, keyed.unjudged > 0))
            .or_default()
            .push(subject);
    }
    by.into_iter()
        .map(|((_, unjudged), subjects)| (subjects, unjudged))
        .collect()
}

const WRITE_OP_NAMES: &str = "open, unlink, rename, link, symlink, chmod, chown, truncate";

/// Proposes rules from `baseline`.
pub fn propose(baseline: &Baseline, options: &Options) -> Proposal {
    debug_assert_eq!(WRITE_OPS.len(), WRITE_OP_NAMES.split(", ").count());
    let mut names = Names::default();
    let mut drafts = Vec::new();
    let mut skipped = Vec::new();
    exec_rules(baseline, options, &mut names, &mut drafts, &mut skipped);
    config_rules(baseline, options, &mut names, &mut drafts);
    listen_rules(baseline, &mut names, &mut drafts);
    connect_rules(baseline, &mut names, &mut drafts);
    read_rules(baseline, &mut names, &mut drafts);
    if drafts.len() > options.max_rules {
        let mut order: Vec<usize> = (0..drafts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(drafts[i].meta.support));
        let keep: BTreeSet<usize> = order.into_iter().take(options.max_rules).collect();
        let mut kept = Vec::new();
        for (i, d) in drafts.into_iter().enumerate() {
            if keep.contains(&i) {
                kept.push(d);
            } else {
                skipped.push(Skipped {
                    subject: d.meta.subjects.join(", "),
                    why: format!(
                        "rule {} left out: more than {} rules, and it has less support ({} events)",
                        d.meta.name, options.max_rules, d.meta.support
                    ),
                });
            }
        }
        drafts = kept;
    }
    let mut text = String::new();
    header(&mut text, baseline, options, &skipped);
    for d in &drafts {
        text.push('\n');
        text.push_str(&d.text);
    }
    Proposal {
        yaml: text,
        rules: drafts.into_iter().map(|d| d.meta).collect(),
        skipped,
    }
}

fn header(out: &mut String, b: &Baseline, options: &Options, skipped: &[Skipped]) {
    let window = b.window.map_or_else(
        || "no events".to_owned(),
        |(f, l)| format!("{} .. {}", when(f), when(l)),
    );
    let mut text = format!(
        "auditloop learned rules: proposed from {} events, {window}.\n\
         Alert-only. Each rule flags a departure from this baseline; every list item is treated as\n\
         normal, with its support (times seen, first .. last) beside it. Review the lists, remove what\n\
         should not be normal, add what is, then:\n\
         \x20 auditloop rules check THIS_FILE\n\
         \x20 auditloop rules diff CURRENT_RULES CURRENT_RULES+THIS_FILE --journal DIR\n\
         Config paths: {}.",
        b.events,
        options.config_paths.join(", ")
    );
    if b.execs_unknown_parent > 0 {
        text.push_str(&format!(
            "\n{} execs had no known parent executable and are not judged by the exec rules.",
            b.execs_unknown_parent
        ));
    }
    if b.connects_unknown_program > 0 {
        text.push_str(&format!(
            "\n{} connections had no known program and are not judged.",
            b.connects_unknown_program
        ));
    }
    if !skipped.is_empty() {
        text.push_str("\nLeft out:");
        for s in skipped {
            text.push_str(&format!("\n  {}: {}", s.subject, s.why));
        }
    }
    yaml::comment(out, "", &text);
}

fn exec_rules(
    b: &Baseline,
    options: &Options,
    names: &mut Names,
    drafts: &mut Vec<Draft>,
    skipped: &mut Vec<Skipped>,
) {
    let mut eligible: BTreeMap<(Vec<&String>, Vec<u32>), Vec<&String>> = BTreeMap::new();
    for (parent, p) in &b.execs {
        let base = parent.rsplit('/').next().unwrap_or(parent);
        let starts = p.programs.seen.map_or(0, |s| s.count);
        let why = if options.skip_parents.iter().any(|s| s == base) {
            Some(format!(
                "{base} is an interactive shell or wrapper: its programs are whatever it is told"
            ))
        } else if starts < options.min_starts {
            Some(format!(
                "started only {starts} program(s), fewer than {} to judge by",
                options.min_starts
            ))
        } else if p.programs.by.len() > options.max_programs {
            Some(format!(
                "started {} distinct programs, more than {}: too varied to baseline",
                p.programs.by.len(),
                options.max_programs
            ))
        } else {
            None
        };
        if let Some(why) = why {
            skipped.push(Skipped {
                subject: parent.clone(),
                why,
            });
            continue;
        }
        let key = (
            p.programs.by.keys().collect(),
            p.users.keys().copied().collect(),
        );
        eligible.entry(key).or_default().push(parent);
    }
    for ((programs, users), parents) in eligible {
        let name = names.take("exec_under", parents[0]);
        let execs: Vec<_> = parents.iter().map(|p| &b.execs[*p]).collect();
        let program_seen = merged(execs.iter().map(|p| &p.programs));
        let mut user_seen: BTreeMap<u32, Seen> = BTreeMap::new();
        for p in &execs {
            merge_seen(&mut user_seen, &p.users);
        }
        let (count, first, last) = span(execs.iter().filter_map(|p| p.programs.seen.as_ref()));
        let meta = ProposedRule {
            name: name.clone(),
            flags: "exec_under_parent",
            subjects: parents.iter().map(|p| (*p).clone()).collect(),
            values: programs.len() + users.len(),
            support: count,
            first,
            last,
        };
        let mut text = String::new();
        yaml::comment(&mut text, "", &rule_note(&meta));
        yaml::list(
            &mut text,
            &format!("{name}_parents"),
            &subject_items(
                parents
                    .iter()
                    .map(|p| (*p, b.execs[*p].programs.seen.as_ref())),
            ),
        );
        yaml::list(
            &mut text,
            &format!("{name}_programs"),
            &string_items(program_seen.iter()),
        );
        yaml::list(
            &mut text,
            &format!("{name}_users"),
            &bare_items(user_seen.iter()),
        );
        let condition = vec![
            "evt.kind = exec and exec.success = true".to_owned(),
            format!("proc.pexe in ({name}_parents)"),
            format!("(not exec.filename in ({name}_programs) or not user.uid in ({name}_users))"),
        ];
        yaml::rule(
            &mut text,
            &RuleText {
                name: &name,
                desc: "A program its parent never started during the learning window, or started as a \
                       user it never ran as",
                condition: &condition,
                output: "%proc.pexe started %exec.filename as uid %user.uid, a departure from the \
                         baseline (pid %proc.pid): %proc.cmdline",
                tags: &["learned", "T1059"],
            },
        );
        drafts.push(Draft { meta, text });
    }
    let quiet: Vec<&String> = b
        .servers
        .iter()
        .filter(|s| !b.execs.contains_key(*s))
        .filter(|s| {
            let base = s.rsplit('/').next().unwrap_or(s);
            !options.skip_parents.iter().any(|p| p == base)
        })
        .collect();
    if !quiet.is_empty() {
        let name = names.take("exec_under_quiet_server", "");
        let meta = ProposedRule {
            name: name.clone(),
            flags: "exec_under_quiet_server",
            subjects: quiet.iter().map(|s| (*s).clone()).collect(),
            values: 0,
            support: 0,
            first: None,
            last: None,
        };
        let mut text = String::new();
        yaml::comment(
            &mut text,
            "",
            "Servers (programs that listened or accepted) that started no program in the window.",
        );
        yaml::list(
            &mut text,
            &format!("{name}_servers"),
            &subject_items(quiet.iter().map(|s| (*s, None))),
        );
        yaml::rule(
            &mut text,
            &RuleText {
                name: &name,
                desc: "A server that started no program during the learning window started one",
                condition: &[
                    "evt.kind = exec and exec.success = true".to_owned(),
                    format!("proc.pexe in ({name}_servers)"),
                ],
                output: "server %proc.pexe started %exec.filename (pid %proc.pid, uid %user.uid): \
                         %proc.cmdline",
                tags: &["learned", "T1190"],
            },
        );
        drafts.push(Draft { meta, text });
    }
}

/// The config prefixes as a condition: `(file.path startswith /etc/ or file.path = /x or …)`.
fn covered_condition(prefixes: &[String]) -> String {
    let parts: Vec<String> = prefixes
        .iter()
        .map(|p| {
            if p.ends_with('/') {
                format!("file.path startswith {}", literal(p))
            } else {
                format!(
                    "file.path = {} or file.path startswith {}",
                    literal(p),
                    literal(&format!("{p}/"))
                )
            }
        })
        .collect();
    format!("({})", parts.join(" or "))
}

fn config_rules(b: &Baseline, options: &Options, names: &mut Names, drafts: &mut Vec<Draft>) {
    for (paths, unjudged) in groups(b.config_writes.iter()) {
        let name = names.take("config_writer", paths[0]);
        let keyed: Vec<&Keyed> = paths.iter().map(|p| &b.config_writes[*p]).collect();
        let writers = merged(keyed.iter().copied());
        let (count, first, last) = span(keyed.iter().filter_map(|k| k.seen.as_ref()));
        let meta = ProposedRule {
            name: name.clone(),
            flags: "config_writer",
            subjects: paths.iter().map(|p| (*p).clone()).collect(),
            values: writers.len(),
            support: count,
            first,
            last,
        };
        let mut text = String::new();
        yaml::comment(&mut text, "", &rule_note(&meta));
        yaml::list(
            &mut text,
            &format!("{name}_paths"),
            &subject_items(
                paths
                    .iter()
                    .map(|p| (*p, b.config_writes[*p].seen.as_ref())),
            ),
        );
        yaml::list(
            &mut text,
            &format!("{name}_writers"),
            &string_items(writers.iter()),
        );
        let mut condition = vec![
            format!("evt.kind = file and file.success = true and file.op in ({WRITE_OP_NAMES})"),
            format!(
                "(file.path in ({name}_paths) or (file.op in (rename, link) and file.target in ({name}_paths)))"
            ),
        ];
        if unjudged {
            condition.push("proc.exe exists".into());
        }
        condition.push(format!("not proc.exe in ({name}_writers)"));
        yaml::rule(
            &mut text,
            &RuleText {
                name: &name,
                desc: "A config file was changed by a program that did not change it during the learning \
                       window",
                condition: &condition,
                output: "%proc.exe (pid %proc.pid, uid %user.uid) did %file.op on %file.path %file.target, \
                         a new writer",
                tags: &["learned", "T1543"],
            },
        );
        drafts.push(Draft { meta, text });
    }
    let name = names.take("new_config_write", "");
    let writers = merged(b.config_writes.values());
    let meta = ProposedRule {
        name: name.clone(),
        flags: "new_config_write",
        subjects: options.config_paths.clone(),
        values: writers.len() + b.config_writes.len(),
        support: 0,
        first: None,
        last: None,
    };
    let mut text = String::new();
    yaml::comment(
        &mut text,
        "",
        "A config path that was not changed in the window, changed by a program that changed no config \
         path then.",
    );
    yaml::list(
        &mut text,
        &format!("{name}_known_paths"),
        &subject_items(b.config_writes.iter().map(|(p, k)| (p, k.seen.as_ref()))),
    );
    yaml::list(
        &mut text,
        &format!("{name}_known_writers"),
        &string_items(writers.iter()),
    );
    let mut condition = vec![
        format!("evt.kind = file and file.success = true and file.op in ({WRITE_OP_NAMES})"),
        covered_condition(&options.config_paths),
        format!("not file.path in ({name}_known_paths)"),
    ];
    if b.config_writes.values().any(|k| k.unjudged > 0) {
        condition.push("proc.exe exists".into());
    }
    condition.push(format!("not proc.exe in ({name}_known_writers)"));
    yaml::rule(
        &mut text,
        &RuleText {
            name: &name,
            desc: "A config path no program changed during the learning window was changed by a program \
                   that changed no config then",
            condition: &condition,
            output: "%proc.exe (pid %proc.pid, uid %user.uid) did %file.op on %file.path, new to the \
                     baseline",
            tags: &["learned", "T1543"],
        },
    );
    drafts.push(Draft { meta, text });
}

fn listen_rules(b: &Baseline, names: &mut Names, drafts: &mut Vec<Draft>) {
    let name = names.take("new_listener", "");
    let (count, first, last) = span(b.listens.seen.iter());
    let meta = ProposedRule {
        name: name.clone(),
        flags: "new_listener",
        subjects: Vec::new(),
        values: b.listens.by.len(),
        support: count,
        first,
        last,
    };
    let mut text = String::new();
    yaml::comment(&mut text, "", &rule_note(&meta));
    yaml::list(
        &mut text,
        &format!("{name}_programs"),
        &string_items(b.listens.by.iter()),
    );
    let mut condition =
        vec!["evt.kind = net and net.op = listen and net.family in (inet, inet6)".to_owned()];
    if b.listens.unjudged > 0 {
        condition.push("proc.exe exists".into());
    }
    condition.push(format!("not proc.exe in ({name}_programs)"));
    yaml::rule(
        &mut text,
        &RuleText {
            name: &name,
            desc: "A program that did not listen during the learning window listens on an inet socket",
            condition: &condition,
            output: "%proc.exe (pid %proc.pid, uid %user.uid) listens on %net.address:%net.port, a new \
                     listener",
            tags: &["learned", "T1571"],
        },
    );
    drafts.push(Draft { meta, text });
    for (programs, _) in groups(b.listen_ports.iter()) {
        let name = names.take("listen_port", programs[0]);
        let keyed: Vec<&Keyed> = programs.iter().map(|p| &b.listen_ports[*p]).collect();
        let ports = merged(keyed.iter().copied());
        let (count, first, last) = span(keyed.iter().filter_map(|k| k.seen.as_ref()));
        let meta = ProposedRule {
            name: name.clone(),
            flags: "listen_port",
            subjects: programs.iter().map(|p| (*p).clone()).collect(),
            values: ports.len(),
            support: count,
            first,
            last,
        };
        let mut text = String::new();
        yaml::comment(&mut text, "", &rule_note(&meta));
        yaml::list(
            &mut text,
            &format!("{name}_programs"),
            &subject_items(
                programs
                    .iter()
                    .map(|p| (*p, b.listen_ports[*p].seen.as_ref())),
            ),
        );
        yaml::list(
            &mut text,
            &format!("{name}_ports"),
            &bare_items(ports.iter()),
        );
        yaml::rule(
            &mut text,
            &RuleText {
                name: &name,
                desc: "A known listener listens on a port it did not use during the learning window",
                condition: &[
                    "evt.kind = net and net.op = listen and net.family in (inet, inet6)".to_owned(),
                    format!("proc.exe in ({name}_programs)"),
                    format!("not net.port in ({name}_ports)"),
                ],
                output: "%proc.exe (pid %proc.pid) listens on new port %net.port (%net.address)",
                tags: &["learned", "T1571"],
            },
        );
        drafts.push(Draft { meta, text });
    }
}

fn connect_rules(b: &Baseline, names: &mut Names, drafts: &mut Vec<Draft>) {
    let servers = b
        .connects
        .iter()
        .filter(|(exe, _)| b.servers.contains(*exe));
    for (programs, unjudged) in groups(servers) {
        let name = names.take("server_destination", programs[0]);
        let keyed: Vec<&Keyed> = programs.iter().map(|p| &b.connects[*p]).collect();
        let dests = merged(keyed.iter().copied());
        let (count, first, last) = span(keyed.iter().filter_map(|k| k.seen.as_ref()));
        let meta = ProposedRule {
            name: name.clone(),
            flags: "server_destination",
            subjects: programs.iter().map(|p| (*p).clone()).collect(),
            values: dests.len(),
            support: count,
            first,
            last,
        };
        let mut text = String::new();
        yaml::comment(&mut text, "", &rule_note(&meta));
        let ports: BTreeSet<u16> = programs
            .iter()
            .filter_map(|p| b.connect_ports.get(*p))
            .flatten()
            .copied()
            .collect();
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        yaml::comment(
            &mut text,
            "",
            &format!("ports dialled in the window: {}", ports.join(", ")),
        );
        yaml::list(
            &mut text,
            &format!("{name}_programs"),
            &subject_items(programs.iter().map(|p| (*p, b.connects[*p].seen.as_ref()))),
        );
        yaml::list(
            &mut text,
            &format!("{name}_destinations"),
            &string_items(dests.iter()),
        );
        let mut condition = vec![
            "evt.kind = net and net.op = connect and net.family in (inet, inet6)".to_owned(),
            format!("proc.exe in ({name}_programs)"),
        ];
        if unjudged {
            condition.push("net.address exists".into());
        }
        condition.push(format!("not net.address in ({name}_destinations)"));
        yaml::rule(
            &mut text,
            &RuleText {
                name: &name,
                desc: "A server connected to a destination it did not connect to during the learning window",
                condition: &condition,
                output: "server %proc.exe (pid %proc.pid) connected to new destination %net.address:%net.port",
                tags: &["learned", "T1071"],
            },
        );
        drafts.push(Draft { meta, text });
    }
    let quiet: Vec<&String> = b
        .servers
        .iter()
        .filter(|s| !b.connects.contains_key(*s))
        .collect();
    if quiet.is_empty() {
        return;
    }
    let name = names.take("connect_from_quiet_server", "");
    let meta = ProposedRule {
        name: name.clone(),
        flags: "connect_from_quiet_server",
        subjects: quiet.iter().map(|s| (*s).clone()).collect(),
        values: 0,
        support: 0,
        first: None,
        last: None,
    };
    let mut text = String::new();
    yaml::comment(
        &mut text,
        "",
        "Servers (programs that listened or accepted) that made no outbound connection in the window.",
    );
    yaml::list(
        &mut text,
        &format!("{name}_servers"),
        &subject_items(quiet.iter().map(|s| (*s, None))),
    );
    yaml::rule(
        &mut text,
        &RuleText {
            name: &name,
            desc: "A server that made no outbound connection during the learning window made one",
            condition: &[
                "evt.kind = net and net.op = connect and net.family in (inet, inet6)".to_owned(),
                format!("proc.exe in ({name}_servers)"),
            ],
            output: "server %proc.exe (pid %proc.pid) connected out to %net.address:%net.port",
            tags: &["learned", "T1071"],
        },
    );
    drafts.push(Draft { meta, text });
}

/// Sensitive paths grouped by (readers, users, whether some reads were unjudged).
type ReadGroups<'a> = BTreeMap<(Vec<&'a String>, Vec<u32>, bool), Vec<&'a String>>;

fn read_rules(b: &Baseline, names: &mut Names, drafts: &mut Vec<Draft>) {
    let none = BTreeMap::new();
    let mut by: ReadGroups<'_> = BTreeMap::new();
    for (path, keyed) in &b.reads {
        let users = b.read_users.get(path).unwrap_or(&none);
        let key = (
            keyed.by.keys().collect(),
            users.keys().copied().collect(),
            keyed.unjudged > 0,
        );
        by.entry(key).or_default().push(path);
    }
    for ((_, _, unjudged), paths) in by {
        let name = names.take("sensitive_reader", paths[0]);
        let keyed: Vec<&Keyed> = paths.iter().map(|p| &b.reads[*p]).collect();
        let readers = merged(keyed.iter().copied());
        let mut users: BTreeMap<u32, Seen> = BTreeMap::new();
        for p in &paths {
            merge_seen(&mut users, b.read_users.get(*p).unwrap_or(&none));
        }
        let (count, first, last) = span(keyed.iter().filter_map(|k| k.seen.as_ref()));
        let meta = ProposedRule {
            name: name.clone(),
            flags: "sensitive_reader",
            subjects: paths.iter().map(|p| (*p).clone()).collect(),
            values: readers.len() + users.len(),
            support: count,
            first,
            last,
        };
        let mut text = String::new();
        yaml::comment(&mut text, "", &rule_note(&meta));
        yaml::list(
            &mut text,
            &format!("{name}_paths"),
            &subject_items(paths.iter().map(|p| (*p, b.reads[*p].seen.as_ref()))),
        );
        yaml::list(
            &mut text,
            &format!("{name}_readers"),
            &string_items(readers.iter()),
        );
        yaml::list(
            &mut text,
            &format!("{name}_users"),
            &bare_items(users.iter()),
        );
        let mut condition = vec![
            "evt.kind = file and file.op = read and file.success = true".to_owned(),
            format!("file.path in ({name}_paths)"),
        ];
        if unjudged {
            condition.push("proc.exe exists".into());
        }
        condition.push(format!(
            "(not proc.exe in ({name}_readers) or not user.uid in ({name}_users))"
        ));
        yaml::rule(
            &mut text,
            &RuleText {
                name: &name,
                desc: "A sensitive file was read by a program or a user that did not read it during the \
                       learning window",
                condition: &condition,
                output: "%proc.exe (pid %proc.pid, uid %user.uid) read %file.path, a new reader",
                tags: &["learned", "T1005"],
            },
        );
        drafts.push(Draft { meta, text });
    }
}
