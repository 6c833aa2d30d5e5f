//! What a registered field is ([`FieldDef`]) and how its value is read from an event ([`Get`]): the shape
//! the registry (`crate::fields`) and the field families (`crate::ancestry`) share.

use std::borrow::Cow;

pub use auditloop_model::field::{FieldType, FieldValue as Value, Getter};
use auditloop_model::{Event, EventKind};

/// One registered field.
#[derive(Debug)]
pub struct FieldDef {
    /// The name as written (`proc.aname` is written with an index: `proc.aname[1]`).
    pub name: &'static str,
    /// Its value type.
    pub ty: FieldType,
    /// The event kinds it applies to; empty = every kind.
    pub kinds: &'static [EventKind],
    /// For a field whose values come from a vocabulary: every value it can have (a comparison with
    /// another value is an error); empty otherwise.
    pub values: &'static [&'static str],
    /// Whether it takes (and requires) an `[N]` index.
    pub indexed: bool,
    /// Whether its value is a list (each comparison holds when it holds for one entry; `!=` when no
    /// entry equals).
    pub list: bool,
    /// What it is.
    pub doc: &'static str,
    pub(crate) get: Get,
}

/// How a field's value is read.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Get {
    /// From the event alone.
    Plain(Getter),
    /// From the event and the field's `[N]` index.
    Indexed(for<'e> fn(&'e Event, u32) -> Option<Value<'e>>),
    /// A list of values from the event (empty: absent).
    List(for<'e> fn(&'e Event) -> Vec<Value<'e>>),
}

impl Get {
    /// The value for `ev` (with `index` for indexed fields; a list's entries joined by spaces); `None`
    /// when absent.
    pub(crate) fn read<'e>(self, ev: &'e Event, index: Option<u32>) -> Option<Value<'e>> {
        match self {
            Get::Plain(get) => get(ev),
            Get::Indexed(get) => get(ev, index?),
            Get::List(get) => {
                let entries = get(ev);
                match entries.as_slice() {
                    [] => None,
                    [_] => entries.into_iter().next(),
                    _ => {
                        let text: Vec<String> = entries.iter().map(render).collect();
                        Some(Value::Str(Cow::Owned(text.join(" "))))
                    }
                }
            }
        }
    }

    /// A list field's getter; `None` for single-valued fields.
    pub(crate) fn list(self) -> Option<for<'e> fn(&'e Event) -> Vec<Value<'e>>> {
        match self {
            Get::List(get) => Some(get),
            Get::Plain(_) | Get::Indexed(_) => None,
        }
    }
}

/// A value as text (list entries are joined with it).
pub(crate) fn render(v: &Value<'_>) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        Value::Num(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
    }
}
