//! Network events.

use auditloop_model_derive::Fields;
use serde::{Deserialize, Serialize};

use crate::vocab::NetOp;

/// A network operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "net", kind = Net)]
pub struct Net {
    /// Which operation.
    pub op: NetOp,
    /// The socket descriptor (for accept: the listening socket).
    pub fd: i64,
    /// `inet`, `inet6`, `unix`, `none` (listen) or `family <n>`.
    pub family: String,
    /// IP address text, unix socket path (`@name` for abstract), or empty.
    pub address: String,
    /// Port for inet/inet6, else 0.
    pub port: u16,
    /// listen backlog, else 0.
    pub backlog: i64,
    /// Result (for accept: the new descriptor); `None` when lost.
    pub ret: Option<i64>,
    /// Whether it succeeded (`connect` on a non-blocking socket reports `-115`, EINPROGRESS).
    pub success: bool,
}
