//! TCP state changes (`sock:inet_sock_set_state`): the records that tell both ends of a TCP connection
//! without reading kernel memory.
//!
//! Only the transitions userspace pairs with syscalls are recorded: `SYN_SENT` (in the connecting task,
//! before the kernel picks the local port), `SYN_SENT → ESTABLISHED` or `→ CLOSE` (the active end's local
//! port), `SYN_RECV → ESTABLISHED` (a connection a listener will accept, with both ends) and `→ LISTEN`
//! (in the listening task, with the bound address).

use super::RecordHeader;

/// TCP state `ESTABLISHED`.
pub const TCP_ESTABLISHED: u32 = 1;
/// TCP state `SYN_SENT`.
pub const TCP_SYN_SENT: u32 = 2;
/// TCP state `SYN_RECV`.
pub const TCP_SYN_RECV: u32 = 3;
/// TCP state `CLOSE`.
pub const TCP_CLOSE: u32 = 7;
/// TCP state `LISTEN`.
pub const TCP_LISTEN: u32 = 10;
/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: u16 = 6;

/// A TCP socket changed state. The header names the task the change happened in (for transitions driven
/// by arriving packets, whatever task the CPU was running).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct SockState {
    /// Header; `kind` is `RecordKind::SockState`.
    pub header: RecordHeader,
    /// The kernel's socket address, as an opaque identity of the socket (never dereferenced).
    pub skaddr: u64,
    /// State before (`TCP_*`).
    pub oldstate: u32,
    /// State after.
    pub newstate: u32,
    /// Local port (host order; 0 while the kernel has not picked one).
    pub sport: u16,
    /// Remote port.
    pub dport: u16,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Reserved, zero.
    pub reserved: u16,
    /// Local and remote IPv4 address (for `AF_INET`).
    pub saddr: [u8; 4],
    /// Remote IPv4 address.
    pub daddr: [u8; 4],
    /// Local IPv6 address (for `AF_INET6`).
    pub saddr_v6: [u8; 16],
    /// Remote IPv6 address.
    pub daddr_v6: [u8; 16],
}

const _: () = assert!(core::mem::size_of::<SockState>() == 56 + 8 + 8 + 8 + 8 + 32);
