//! auditloop's event model: the one [`Event`] type that capture produces and the journal, rules, actions,
//! shipper, exports and collector all use, and the vocabularies it carries ([`EventKind`], [`LossStage`],
//! [`ActionKind`], [`Severity`]).
//!
//! This crate owns what an event *is*. It must not know where events come from (the kernel's wire records
//! live in `agent-common`), how they are stored or chained (the journal), how rules read them (the rules
//! crate), or how they travel (the protocol crate).
//!
//! The model serializes with serde. It avoids representations that only self-describing formats can read
//! back (no `flatten`, no internally tagged enums, no skipped fields), so the same type round-trips through
//! JSON and through compact binary encodings. [`WallTime`] prints as RFC 3339 text in human-readable formats
//! and as integer nanoseconds otherwise. In the binary encoding the order of fields and of [`EventBody`]
//! variants is the format: add at the end, never reorder.
#![deny(missing_docs)]

pub mod agent;
pub mod event;
pub mod field;
pub mod file;
pub mod finding;
pub mod lineage;
pub mod net;
pub mod process;
pub mod syscall;
pub mod time;
pub mod uring;
pub mod vocab;

pub use agent::{
    AgentStart, AgentStop, ConfigLoaded, JournalRecovered, Loss, RulesLoaded, RulesRejected, Tamper,
};
pub use event::{EVENT_KIND_COUNT, Event, EventBody, EventKind, Process};
pub use file::{ConfigChange, File};
pub use finding::{ActionTaken, Alert, Hold};
pub use lineage::{Ancestor, Lineage};
pub use net::Net;
pub use process::{Exec, Exit, Fork, Kill, MemfdCreate, Ptrace, SetId, SetName};
pub use syscall::RawSyscall;
pub use time::WallTime;
pub use uring::{IoUring, IoUringSetup, UringOp, UringUnresolved};
pub use vocab::{
    ActionKind, ChangeTrigger, FileOp, HoldDecision, HoldState, HoldStopper, LossStage, NetOp,
    NetProtocol, Severity,
};

/// The name-based API every vocabulary enum shares (its names come from its `strum` derives).
macro_rules! named {
    ($($ty:ident),*) => {$(
        impl $ty {
            /// The stable name.
            pub fn as_str(self) -> &'static str {
                self.into()
            }

            /// The value called `name`, if any.
            pub fn parse(name: &str) -> Option<$ty> {
                name.parse().ok()
            }

            /// Every value, in declaration order.
            pub fn all() -> impl Iterator<Item = $ty> {
                <$ty as strum::IntoEnumIterator>::iter()
            }
        }
    )*};
}
pub(crate) use named;

#[cfg(test)]
mod tests;
