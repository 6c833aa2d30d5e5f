//! The ancestry and working-directory fields: `proc.aname[N]`, `proc.apid[N]`, `proc.aexe[N]`,
//! `proc.acmdline[N]`, `proc.ancestors` and `proc.cwd`.
//!
//! They read the agent's in-memory view of the event's process (`Process::lineage`: the process table's
//! whole chain, up to `capture.ancestry.depth` ancestors). An event read back from the journal has no such
//! view; then an exec event's compact chain (`exec.ancestors`) is used, and for `[1]` the parent's own
//! fields (`proc.ppid`, `proc.pexe`, `proc.pcmdline`). An ancestor the agent marked unknown has only its
//! pid: its name, executable and argv are absent, and there is nothing beyond it.

use std::borrow::Cow;

use auditloop_model::{Ancestor, Event, EventBody};

use crate::fielddef::{FieldDef, FieldType, Get, Value};

/// Ancestor `n` (1 = the parent) of the event's process, when known.
fn ancestor(ev: &Event, n: u32) -> Option<&Ancestor> {
    let i = usize::try_from(n.checked_sub(1)?).ok()?;
    let lineage = &ev.process.lineage.ancestors;
    if !lineage.is_empty() {
        return lineage.get(i).map(|a| &**a);
    }
    if let EventBody::Exec(e) = &ev.event {
        e.ancestors.get(i)
    } else {
        None
    }
}

/// The names of every known ancestor, parent first.
fn names(ev: &Event) -> Vec<Value<'_>> {
    let lineage = &ev.process.lineage.ancestors;
    let chain: Vec<&Ancestor> = if !lineage.is_empty() {
        lineage.iter().map(|a| &**a).collect()
    } else if let EventBody::Exec(e) = &ev.event
        && !e.ancestors.is_empty()
    {
        e.ancestors.iter().collect()
    } else {
        let parent = basename(&ev.process.parent_exe);
        return if parent.is_empty() {
            Vec::new()
        } else {
            vec![Value::Str(Cow::Borrowed(parent))]
        };
    };
    chain
        .into_iter()
        .filter_map(Ancestor::name)
        .map(|n| Value::Str(Cow::Borrowed(n)))
        .collect()
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn known(s: &str) -> Option<Value<'_>> {
    (!s.is_empty()).then_some(Value::Str(Cow::Borrowed(s)))
}

fn cmdline(argv: &[String]) -> Option<Value<'_>> {
    match argv {
        [] => None,
        [one] => known(one),
        all => Some(Value::Str(Cow::Owned(all.join(" ")))),
    }
}

/// Whether the event has no ancestor view at all, so `[1]` falls back to the parent's own fields.
fn no_chain(ev: &Event) -> bool {
    ev.process.lineage.ancestors.is_empty()
        && !matches!(&ev.event, EventBody::Exec(e) if !e.ancestors.is_empty())
}

/// The ancestry fields, listed after the other `proc.*` fields.
pub(crate) const ANCESTRY: &[FieldDef] = &[
    FieldDef {
        name: "proc.aname",
        ty: FieldType::Str,
        kinds: &[],
        values: &[],
        indexed: true,
        list: false,
        doc: "ancestor name, `proc.aname[N]` (1 = parent, 2 = grandparent, …): basename of its executable, else its task name; absent beyond the known chain and for an ancestor marked unknown",
        get: Get::Indexed(|ev, n| match ancestor(ev, n) {
            Some(a) => a.name().map(|s| Value::Str(Cow::Borrowed(s))),
            None if n == 1 && no_chain(ev) => known(basename(&ev.process.parent_exe)),
            None => None,
        }),
    },
    FieldDef {
        name: "proc.apid",
        ty: FieldType::Num,
        kinds: &[],
        values: &[],
        indexed: true,
        list: false,
        doc: "ancestor pid, `proc.apid[N]` (1 = parent); known also for an ancestor marked unknown",
        get: Get::Indexed(|ev, n| match ancestor(ev, n) {
            Some(a) => Some(Value::Num(i128::from(a.pid))),
            None if n == 1 && no_chain(ev) && ev.process.ppid != 0 => {
                Some(Value::Num(i128::from(ev.process.ppid)))
            }
            None => None,
        }),
    },
    FieldDef {
        name: "proc.aexe",
        ty: FieldType::Str,
        kinds: &[],
        values: &[],
        indexed: true,
        list: false,
        doc: "ancestor executable path, `proc.aexe[N]` (1 = parent); absent when unknown",
        get: Get::Indexed(|ev, n| match ancestor(ev, n) {
            Some(a) => known(&a.exe),
            None if n == 1 && no_chain(ev) => known(&ev.process.parent_exe),
            None => None,
        }),
    },
    FieldDef {
        name: "proc.acmdline",
        ty: FieldType::Str,
        kinds: &[],
        values: &[],
        indexed: true,
        list: false,
        doc: "ancestor argv joined by spaces, `proc.acmdline[N]` (1 = parent; cut to a few hundred bytes per ancestor; exec events read back from the journal carry no ancestor argv beyond the parent's)",
        get: Get::Indexed(|ev, n| match ancestor(ev, n) {
            Some(a) if n == 1 && a.argv.is_empty() => cmdline(&ev.process.parent_argv),
            Some(a) => cmdline(&a.argv),
            None if n == 1 && no_chain(ev) => cmdline(&ev.process.parent_argv),
            None => None,
        }),
    },
    FieldDef {
        name: "proc.ancestors",
        ty: FieldType::Str,
        kinds: &[],
        values: &[],
        indexed: false,
        list: true,
        doc: "names of all known ancestors, parent first (a list: `in`, `contains`, `startswith`, … hold when they hold for one of them, `!=` when none equals; printed joined by spaces); absent when none is known",
        get: Get::List(names),
    },
    FieldDef {
        name: "proc.cwd",
        ty: FieldType::Str,
        kinds: &[],
        values: &[],
        indexed: false,
        list: false,
        doc: "working directory: `exec.cwd` for exec events, else the process's current one as the agent tracks it (not recorded in the event); absent when unknown",
        get: Get::Plain(|ev| {
            if let EventBody::Exec(e) = &ev.event
                && !e.cwd.is_empty()
            {
                return known(&e.cwd);
            }
            ev.process
                .lineage
                .cwd
                .as_deref()
                .map(|c| Value::Str(Cow::Borrowed(c)))
        }),
    },
];

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use auditloop_model::{Ancestor, Lineage};

    use crate::tests::{event, exec, holds};

    fn chain() -> Lineage {
        let a = |pid: u32, exe: &str, comm: &str| {
            Arc::new(Ancestor {
                pid,
                exe: exe.into(),
                comm: comm.into(),
                argv: vec![comm.into(), "-x".into()],
                ..Ancestor::default()
            })
        };
        let unknown = Arc::new(Ancestor {
            pid: 3,
            unknown: true,
            ..Ancestor::default()
        });
        Lineage {
            ancestors: Arc::from(vec![
                a(20, "/usr/bin/dash", "sh"),
                a(10, "/srv/bin/nginx", "nginx"),
                a(5, "", "kthreadd"),
                unknown,
            ]),
            cwd: Some(Arc::from("/srv/www")),
        }
    }

    #[test]
    fn indexed_ancestors_from_the_lineage() {
        let mut ev = exec("/bin/sh", &["sh", "-c", "id"]);
        ev.process.lineage = chain();
        for (cond, want) in [
            ("proc.aname[1] = dash", true),
            ("proc.aname[2] = nginx", true),
            ("proc.aname[3] = kthreadd", true),
            ("proc.aname[4] exists", false),
            ("proc.apid[4] = 3", true),
            ("proc.aname[5] exists", false),
            ("proc.apid[2] = 10", true),
            ("proc.aexe[2] = /srv/bin/nginx", true),
            ("proc.aexe[3] exists", false),
            ("proc.acmdline[2] = 'nginx -x'", true),
            ("proc.ancestors in (httpd, nginx)", true),
            ("proc.ancestors in (httpd, apache2)", false),
            ("proc.ancestors contains ngin", true),
            ("proc.ancestors startswith kth", true),
            ("proc.ancestors = dash", true),
            ("proc.ancestors != dash", false),
            ("proc.ancestors != bash", true),
            ("not proc.ancestors in (nginx)", false),
            ("proc.cwd = /srv/www", true),
        ] {
            assert_eq!(holds(cond, &ev), want, "{cond}");
        }
    }

    #[test]
    fn a_journaled_exec_uses_its_compact_chain_and_the_parent_fields_stay() {
        let mut ev = exec("/bin/sh", &["sh"]);
        let auditloop_model::EventBody::Exec(e) = &mut ev.event else {
            unreachable!()
        };
        e.cwd = "/tmp".into();
        e.ancestors = chain()
            .ancestors
            .iter()
            .map(|a| Ancestor {
                argv: Vec::new(),
                ..(**a).clone()
            })
            .collect();
        assert!(holds("proc.aname[2] = nginx and proc.cwd = /tmp", &ev));
        assert!(holds("proc.acmdline[1] = 'nginx -g daemon off;'", &ev));
        // Without any chain, `[1]` is the parent's own fields and nothing lies beyond.
        let ev = event(auditloop_model::EventBody::Fork(Default::default()));
        assert!(holds("proc.aname[1] = nginx and proc.apid[1] = 1", &ev));
        assert!(holds("proc.aexe[1] = /usr/sbin/nginx", &ev));
        assert!(holds("proc.ancestors = nginx", &ev));
        assert!(!holds("proc.aname[2] exists or proc.cwd exists", &ev));
    }

    #[test]
    fn list_fields_render_joined_and_key_joined() {
        let mut ev = exec("/bin/sh", &["sh"]);
        ev.process.lineage = chain();
        let set = crate::tests::rules(
            "- rule: r\n  condition: proc.ancestors exists\n  output: \"%proc.ancestors|%proc.aname[4]|%proc.apid[4]\"\n",
        );
        let rule = set.matches(&ev).next().unwrap();
        assert_eq!(rule.render_output(&ev), "dash nginx kthreadd|<NA>|3");
    }
}
