//! The field registry: every name a condition or output template may use, its type, the event kinds it
//! applies to, and how its value is read from an [`Event`](auditloop_model::Event).
//!
//! Most fields are the model's own: `#[derive(Fields)]` on each model struct makes every model field a
//! rule field (its name, type and doc comment included), so a new model field needs no entry here. This
//! module adds only the fields computed from others ([`COMPUTED`]: `evt.kind`, `proc.cmdline`,
//! `proc.pname`, `file.name`, …); `crate::ancestry` adds the ancestry fields (`proc.aname[N]`,
//! `proc.ancestors`, `proc.cwd`, …), which read the agent's in-memory view of the process.
//!
//! A field that does not apply to an event is *absent*: every comparison on it is false (so
//! `not (f = x)` is true) and `f exists` is false. Besides kind mismatches, a field is absent when the model
//! has no value for it: an empty `exe`/`parent_exe`/`parent_argv` (unknown), a `null` option
//! (`container.id`, `change.old_sha256`, …), and an ancestor beyond the known chain.

use std::borrow::Cow;
use std::sync::LazyLock;

use auditloop_model::{EventBody, EventKind};

use crate::ancestry::ANCESTRY;
pub(crate) use crate::fielddef::Get;
pub use crate::fielddef::{FieldDef, FieldType, Getter, Value};

/// The name of the field holding the event kind.
pub const EVT_KIND: &str = "evt.kind";

const EXEC: &[EventKind] = &[EventKind::Exec];
const FILE: &[EventKind] = &[EventKind::File];

/// The fields computed from other fields. Each is listed after the last model field of its group (the
/// text before the first `.`).
pub const COMPUTED: &[FieldDef] = &[
    FieldDef {
        name: EVT_KIND,
        ty: FieldType::Str,
        kinds: &[],
        values: <EventKind as strum::VariantNames>::VARIANTS,
        indexed: false,
        list: false,
        doc: "event kind: the key of the event's body",
        get: Get::Plain(|ev| text(ev.kind().as_str())),
    },
    FieldDef {
        name: "proc.cmdline",
        ty: FieldType::Str,
        kinds: &[],
        values: &[],
        indexed: false,
        list: false,
        doc: "exec: argv joined by spaces; other kinds: the executable (the model keeps no argv outside exec)",
        get: Get::Plain(|ev| {
            if let EventBody::Exec(e) = &ev.event {
                joined(&e.argv).or_else(|| known(&e.filename))
            } else {
                known(&ev.process.exe)
            }
        }),
    },
    FieldDef {
        name: "proc.args",
        ty: FieldType::Str,
        kinds: EXEC,
        values: &[],
        indexed: false,
        list: false,
        doc: "exec argv after argv[0], joined by spaces",
        get: Get::Plain(|ev| {
            let EventBody::Exec(e) = &ev.event else {
                return None;
            };
            match e.argv.get(1..) {
                Some(rest) if !rest.is_empty() => joined(rest),
                _ => text(""),
            }
        }),
    },
    FieldDef {
        name: "proc.pname",
        ty: FieldType::Str,
        kinds: &[],
        values: &[],
        indexed: false,
        list: false,
        doc: "parent name: basename of the parent's executable; absent when unknown",
        get: Get::Plain(|ev| known(basename(&ev.process.parent_exe))),
    },
    FieldDef {
        name: "exec.argc",
        ty: FieldType::Num,
        kinds: EXEC,
        values: &[],
        indexed: false,
        list: false,
        doc: "number of captured argv entries",
        get: Get::Plain(|ev| {
            let EventBody::Exec(e) = &ev.event else {
                return None;
            };
            Some(Value::Num(e.argv.len() as i128))
        }),
    },
    FieldDef {
        name: "file.name",
        ty: FieldType::Str,
        kinds: FILE,
        values: &[],
        indexed: false,
        list: false,
        doc: "basename of file.path",
        get: Get::Plain(|ev| {
            let EventBody::File(f) = &ev.event else {
                return None;
            };
            text(basename(&f.path))
        }),
    },
    FieldDef {
        name: "file.directory",
        ty: FieldType::Str,
        kinds: FILE,
        values: &[],
        indexed: false,
        list: false,
        doc: "directory of file.path (`/` for top-level files)",
        get: Get::Plain(|ev| {
            let EventBody::File(f) = &ev.event else {
                return None;
            };
            text(dirname(&f.path))
        }),
    },
];

/// The registry, in documentation order: the model's fields, each computed field after its group.
pub static FIELDS: LazyLock<Vec<FieldDef>> = LazyLock::new(|| {
    let mut all: Vec<FieldDef> = auditloop_model::field::fields()
        .map(|f| FieldDef {
            name: f.name,
            ty: f.ty,
            kinds: f.kinds,
            values: f.values,
            indexed: false,
            list: false,
            doc: f.doc,
            get: Get::Plain(f.get),
        })
        .collect();
    for c in COMPUTED.iter().chain(ANCESTRY) {
        let group = group(c.name);
        let at = all
            .iter()
            .rposition(|f| self::group(f.name) == group)
            .map_or(all.len(), |i| i + 1);
        all.insert(
            at,
            FieldDef {
                name: c.name,
                ty: c.ty,
                kinds: c.kinds,
                values: c.values,
                indexed: c.indexed,
                list: c.list,
                doc: c.doc,
                get: c.get,
            },
        );
    }
    all
});

/// The field reference as a Markdown table, in registry order (the one in `docs/rules.md`).
pub fn markdown_table() -> String {
    let mut out = String::from("| field | type | event kinds | meaning |\n|---|---|---|---|\n");
    for f in FIELDS.iter() {
        let name = if f.indexed {
            format!("{}[N]", f.name)
        } else {
            f.name.to_owned()
        };
        let kinds = if f.kinds.is_empty() {
            "all".to_owned()
        } else {
            let names: Vec<&str> = f.kinds.iter().map(|k| k.as_str()).collect();
            names.join(", ")
        };
        let mut meaning = f.doc.to_owned();
        if !f.values.is_empty() {
            meaning.push_str(&format!("; one of: {}", f.values.join(", ")));
        }
        let ty = f.ty.describe().trim_start_matches("a ");
        let ty = if f.list {
            format!("{ty} list")
        } else {
            ty.to_owned()
        };
        out.push_str(&format!(
            "| `{name}` | {ty} | {kinds} | {} |\n",
            meaning.replace('|', "\\|")
        ));
    }
    out
}

fn group(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// The registered field called `name` (without index).
pub fn lookup(name: &str) -> Option<&'static FieldDef> {
    FIELDS.iter().find(|f| f.name == name)
}

fn text(s: &str) -> Option<Value<'_>> {
    Some(Value::Str(Cow::Borrowed(s)))
}

fn known(s: &str) -> Option<Value<'_>> {
    if s.is_empty() { None } else { text(s) }
}

fn joined(parts: &[String]) -> Option<Value<'_>> {
    match parts {
        [] => None,
        [one] => text(one),
        _ => Some(Value::Str(Cow::Owned(parts.join(" ")))),
    }
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn dirname(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_are_unique_and_every_group_is_contiguous() {
        for (i, f) in FIELDS.iter().enumerate() {
            assert!(!f.doc.is_empty(), "{}", f.name);
            assert!(
                FIELDS[i + 1..].iter().all(|g| g.name != f.name),
                "{}",
                f.name
            );
        }
        assert_eq!(lookup("proc.name").map(|f| f.ty), Some(FieldType::Str));
        assert!(lookup("proc.aname").is_some_and(|f| f.indexed));
        assert_eq!(
            lookup("file.path").map(|f| f.kinds),
            Some(&[EventKind::File][..])
        );
        let names: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
        let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
        assert!(at("file.directory") > at("file.success"));
        assert!(at("evt.kind") < at("proc.pid"));
    }

    #[test]
    fn path_helpers() {
        assert_eq!(basename("/usr/bin/bash"), "bash");
        assert_eq!(basename("bash"), "bash");
        assert_eq!(dirname("/etc/passwd"), "/etc");
        assert_eq!(dirname("/etc"), "/");
        assert_eq!(dirname("rel"), "");
    }
}
