//! Network events.

use auditloop_model_derive::Fields;
use serde::{Deserialize, Serialize};

use crate::vocab::{NetOp, NetProtocol};

/// A network operation.
///
/// `address`/`port` are the address the syscall itself names (connect: the peer dialled; bind: the local
/// end; accept: the peer that dialled in; listen: the local end the socket was bound to). The `local_*`
/// and `remote_*` fields hold both ends whatever the op, from the syscall, the agent's socket table and
/// the kernel's socket tables under `/proc/<pid>/net` (see `docs/events.md`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Fields)]
#[fields(prefix = "net", kind = Net)]
pub struct Net {
    /// Which operation.
    pub op: NetOp,
    /// The socket descriptor (for accept: the listening socket).
    pub fd: i64,
    /// `inet`, `inet6`, `unix`, `none` (unknown) or `family <n>`.
    pub family: String,
    /// The address the syscall itself names (connect: the peer dialled; bind and listen: the local end;
    /// accept: the peer that dialled in): IP address text, unix socket path (`@name` for abstract), or
    /// empty.
    pub address: String,
    /// Port of `address` for inet/inet6, else 0.
    pub port: u16,
    /// listen backlog, else 0.
    pub backlog: i64,
    /// Result (for accept: the new descriptor); `None` when lost.
    pub ret: Option<i64>,
    /// Whether it succeeded (`connect` on a non-blocking socket reports `-115`, EINPROGRESS).
    pub success: bool,
    /// The socket's transport (from the `socket` call, the socket's address family, or the kernel's
    /// socket table it was found in)
    pub protocol: NetProtocol,
    /// This host's end: IP address text, unix socket path (`@name` for abstract); empty when unknown or
    /// unbound.
    #[field(absent_if_empty)]
    pub local_address: String,
    /// Port of the local end (inet/inet6); 0 when unknown.
    pub local_port: u16,
    /// The other end: IP address text or unix socket path; empty for bind and listen, and when unknown
    /// (an unbound unix client).
    #[field(absent_if_empty)]
    pub remote_address: String,
    /// Port of the remote end (inet/inet6); 0 when none or unknown.
    pub remote_port: u16,
    /// For a unix socket bound to a file: its canonical path (the bound path for bind, listen and accept,
    /// the server's for connect); empty for abstract, unnamed and non-unix sockets.
    #[field(absent_if_empty)]
    pub path: String,
}
