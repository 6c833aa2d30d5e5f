//! Field reflection: every model field as a named, typed, documented value that can be read from an
//! [`Event`]. `#[derive(Fields)]` on each model struct generates its descriptors; [`fields`] lists them all.
//! The rules engine builds its field registry on this, so a new model field is a rule field without a
//! hand-kept table.

use std::borrow::Cow;

use crate::agent::{
    AgentStart, AgentStop, ConfigLoaded, JournalRecovered, Loss, RulesLoaded, RulesRejected, Tamper,
};
use crate::event::{Event, EventKind, Process};
use crate::file::{ConfigChange, File};
use crate::finding::{ActionTaken, Alert, Hold};
use crate::net::Net;
use crate::process::{Exec, Exit, Fork, Kill, MemfdCreate, Ptrace, SetId, SetName};
use crate::syscall::RawSyscall;
use crate::time::WallTime;
use crate::uring::{IoUring, IoUringSetup, UringOp, UringUnresolved};
use crate::vocab::{
    ActionKind, ChangeTrigger, FileOp, HoldDecision, HoldState, HoldStopper, LossStage, NetOp,
    NetProtocol, Severity,
};

/// The type of a field's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// Text.
    Str,
    /// An integer.
    Num,
    /// `true` or `false`.
    Bool,
}

impl FieldType {
    /// The type's name in messages (`a string`, …).
    pub fn describe(self) -> &'static str {
        match self {
            FieldType::Str => "a string",
            FieldType::Num => "a number",
            FieldType::Bool => "a boolean",
        }
    }
}

/// A field's value in one event (text is borrowed from the event where it can be).
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue<'e> {
    /// Text.
    Str(Cow<'e, str>),
    /// An integer.
    Num(i128),
    /// A boolean.
    Bool(bool),
}

impl FieldValue<'_> {
    /// Whether this is empty text.
    pub fn is_empty_text(&self) -> bool {
        matches!(self, FieldValue::Str(s) if s.is_empty())
    }
}

/// Reads an event's value of one field; `None` when the field is absent from this event.
pub type Getter = for<'e> fn(&'e Event) -> Option<FieldValue<'e>>;

/// One model field.
#[derive(Clone, Copy, Debug)]
pub struct FieldDesc {
    /// The field's name (`exec.filename`, `proc.pid`, …).
    pub name: &'static str,
    /// Its doc comment.
    pub doc: &'static str,
    /// Its value type.
    pub ty: FieldType,
    /// The event kinds it applies to; empty = every kind.
    pub kinds: &'static [EventKind],
    /// For a field whose values come from a vocabulary: every value it can have; empty otherwise.
    pub values: &'static [&'static str],
    /// Reads it from an event.
    pub get: Getter,
}

/// A model value type that a field can have.
pub trait Field {
    /// Its field type.
    const TYPE: FieldType;
    /// Every value it can have, for vocabulary types; empty for free-form ones.
    const VALUES: &'static [&'static str] = &[];
    /// Its value; `None` when absent.
    fn value(&self) -> Option<FieldValue<'_>>;
}

macro_rules! numbers {
    ($($t:ty),*) => {$(
        impl Field for $t {
            const TYPE: FieldType = FieldType::Num;
            fn value(&self) -> Option<FieldValue<'_>> {
                Some(FieldValue::Num(i128::from(*self)))
            }
        }
    )*};
}
numbers!(u16, u32, u64, i32, i64);

impl Field for bool {
    const TYPE: FieldType = FieldType::Bool;
    fn value(&self) -> Option<FieldValue<'_>> {
        Some(FieldValue::Bool(*self))
    }
}

impl Field for String {
    const TYPE: FieldType = FieldType::Str;
    fn value(&self) -> Option<FieldValue<'_>> {
        Some(FieldValue::Str(Cow::Borrowed(self)))
    }
}

impl<T: Field> Field for Option<T> {
    const TYPE: FieldType = T::TYPE;
    const VALUES: &'static [&'static str] = T::VALUES;
    fn value(&self) -> Option<FieldValue<'_>> {
        self.as_ref().and_then(Field::value)
    }
}

/// A list is its entries joined by spaces.
impl Field for Vec<String> {
    const TYPE: FieldType = FieldType::Str;
    fn value(&self) -> Option<FieldValue<'_>> {
        Some(match self.as_slice() {
            [one] => FieldValue::Str(Cow::Borrowed(one)),
            all => FieldValue::Str(Cow::Owned(all.join(" "))),
        })
    }
}

macro_rules! number_lists {
    ($($t:ty),*) => {$(
        /// A list is its entries joined by spaces.
        impl Field for Vec<$t> {
            const TYPE: FieldType = FieldType::Str;
            fn value(&self) -> Option<FieldValue<'_>> {
                let text: Vec<String> = self.iter().map(<$t>::to_string).collect();
                Some(FieldValue::Str(Cow::Owned(text.join(" "))))
            }
        }
    )*};
}
number_lists!(u32, u64);

/// Wall-clock time is RFC 3339 text.
impl Field for WallTime {
    const TYPE: FieldType = FieldType::Str;
    fn value(&self) -> Option<FieldValue<'_>> {
        Some(FieldValue::Str(Cow::Owned(self.to_string())))
    }
}

macro_rules! names {
    ($($t:ty),*) => {$(
        /// A vocabulary value is its name.
        impl Field for $t {
            const TYPE: FieldType = FieldType::Str;
            const VALUES: &'static [&'static str] = <$t as strum::VariantNames>::VARIANTS;
            fn value(&self) -> Option<FieldValue<'_>> {
                Some(FieldValue::Str(Cow::Borrowed(self.as_str())))
            }
        }
    )*};
}
names!(
    EventKind,
    LossStage,
    ActionKind,
    Severity,
    FileOp,
    NetOp,
    NetProtocol,
    ChangeTrigger,
    UringOp,
    UringUnresolved,
    HoldState,
    HoldStopper,
    HoldDecision
);

/// A list of vocabulary values is their names joined by spaces.
impl Field for Vec<UringUnresolved> {
    const TYPE: FieldType = FieldType::Str;
    const VALUES: &'static [&'static str] = <UringUnresolved as strum::VariantNames>::VARIANTS;
    fn value(&self) -> Option<FieldValue<'_>> {
        let names: Vec<&str> = self.iter().map(|v| v.as_str()).collect();
        Some(FieldValue::Str(Cow::Owned(names.join(" "))))
    }
}

/// The fields of the body of events of `kind`.
pub fn body_fields(kind: EventKind) -> &'static [FieldDesc] {
    match kind {
        EventKind::Exec => Exec::FIELDS,
        EventKind::Fork => Fork::FIELDS,
        EventKind::Exit => Exit::FIELDS,
        EventKind::Loss => Loss::FIELDS,
        EventKind::AgentStart => AgentStart::FIELDS,
        EventKind::AgentStop => AgentStop::FIELDS,
        EventKind::File => File::FIELDS,
        EventKind::SetId => SetId::FIELDS,
        EventKind::Ptrace => Ptrace::FIELDS,
        EventKind::Kill => Kill::FIELDS,
        EventKind::SetName => SetName::FIELDS,
        EventKind::MemfdCreate => MemfdCreate::FIELDS,
        EventKind::Net => Net::FIELDS,
        EventKind::Syscall => RawSyscall::FIELDS,
        EventKind::ConfigChange => ConfigChange::FIELDS,
        EventKind::ConfigLoaded => ConfigLoaded::FIELDS,
        EventKind::JournalRecovered => JournalRecovered::FIELDS,
        EventKind::Alert => Alert::FIELDS,
        EventKind::Action => ActionTaken::FIELDS,
        EventKind::RulesLoaded => RulesLoaded::FIELDS,
        EventKind::RulesRejected => RulesRejected::FIELDS,
        EventKind::IoUring => IoUring::FIELDS,
        EventKind::IoUringSetup => IoUringSetup::FIELDS,
        EventKind::Tamper => Tamper::FIELDS,
        EventKind::Hold => Hold::FIELDS,
    }
}

/// Every model field: the event's own (`evt.*`), its process's, then each kind's body fields in kind
/// order.
pub fn fields() -> impl Iterator<Item = &'static FieldDesc> {
    Event::FIELDS
        .iter()
        .chain(Process::FIELDS)
        .chain(EventKind::all().flat_map(|k| body_fields(k).iter()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_documented() {
        let all: Vec<&FieldDesc> = fields().collect();
        for (i, f) in all.iter().enumerate() {
            assert!(!f.doc.is_empty(), "{}", f.name);
            assert!(
                all[i + 1..].iter().all(|g| g.name != f.name),
                "{} is declared twice",
                f.name
            );
        }
        let path = all.iter().find(|f| f.name == "file.path").unwrap();
        assert_eq!(path.kinds, &[EventKind::File]);
        assert_eq!(path.ty, FieldType::Str);
        assert!(path.values.is_empty());
        let op = all.iter().find(|f| f.name == "file.op").unwrap();
        assert!(op.values.contains(&"open") && op.values.contains(&"chdir"));
    }
}
