//! In-kernel filters from the config: per-kind enable flags, pid/comm/path-prefix ignore lists, sensitive
//! read paths, written to the BPF maps at start and again on reload (no restart needed).

use std::collections::{BTreeSet, HashSet};

use agent_common::wire::{
    ExecKillRule, MAP_EXEC_KILL, MAP_IGNORE_COMMS, MAP_IGNORE_PATHS, MAP_IGNORE_TGIDS,
    MAP_OP_ENABLED, MAP_SENSITIVE_PATHS, OP_ON, OP_SLOT_EXEC, OP_SLOT_EXIT, OP_SLOT_FORK,
    OP_SLOT_IO_URING, OP_SLOTS, OP_URGENT, PATH_KEY_LEN, SIGNAL_KILL, SIGNAL_STOP, SyscallOp,
    op_slot,
};
use auditloop_model::EventKind;
use aya::Ebpf;
use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap as BpfHashMap, MapData};

use super::CaptureError;
use crate::config::CaptureConfig;
use crate::enforce::KernelExecRule;

/// The LPM key for a path: directory prefixes (ending in `/`) match everything below, `…*` every path
/// starting with what precedes the `*`; other paths match exactly (their NUL is part of the key). Paths
/// longer than the key are compared on their prefix.
pub fn path_key(path: &str) -> Key<[u8; PATH_KEY_LEN]> {
    let (path, prefix) = match path.strip_suffix('*') {
        Some(p) => (p, true),
        None => (path, path.ends_with('/')),
    };
    let mut data = [0u8; PATH_KEY_LEN];
    let bytes = path.as_bytes();
    let n = bytes.len().min(PATH_KEY_LEN);
    data[..n].copy_from_slice(&bytes[..n]);
    let significant = if prefix || n == PATH_KEY_LEN {
        n
    } else {
        n + 1
    };
    Key::new(u32::try_from(significant * 8).unwrap_or(0), data)
}

/// Writes the config's filters into the maps, replacing what was there (the agent's own pid stays ignored).
///
/// Each enabled slot whose records complete events of the `acting` kinds (`None`: every kind) is marked
/// urgent ([`OP_URGENT`]): a rule may kill or deny on them, so their records wake the reader at once instead
/// of waiting for a batch; the other enabled slots are [`OP_ON`].
pub fn apply(
    config: &CaptureConfig,
    acting: Option<&HashSet<EventKind>>,
    ebpf: &mut Ebpf,
) -> Result<(), CaptureError> {
    let disabled: BTreeSet<u32> = config.disable.iter().filter_map(|n| op_slot(n)).collect();
    let urgent: BTreeSet<u32> = match acting {
        Some(kinds) => kinds.iter().flat_map(|k| completing_slots(*k)).collect(),
        None => (0..OP_SLOTS).collect(),
    };
    set_slots(ebpf, |slot| {
        match (disabled.contains(&slot), urgent.contains(&slot)) {
            (true, _) => 0,
            (false, true) => OP_URGENT,
            (false, false) => OP_ON,
        }
    })?;

    let mut tgids: BpfHashMap<&mut MapData, u32, u8> = BpfHashMap::try_from(
        ebpf.map_mut(MAP_IGNORE_TGIDS)
            .ok_or(CaptureError::MissingMap(MAP_IGNORE_TGIDS))?,
    )
    .map_err(|e| CaptureError::Map(MAP_IGNORE_TGIDS, e))?;
    let old: Vec<u32> = tgids.keys().filter_map(Result::ok).collect();
    for pid in old {
        let _ = tgids.remove(&pid);
    }
    for pid in config
        .ignore
        .pids
        .iter()
        .copied()
        .chain([std::process::id()])
    {
        tgids
            .insert(pid, 1, 0)
            .map_err(|e| CaptureError::Map(MAP_IGNORE_TGIDS, e))?;
    }

    let mut comms: BpfHashMap<&mut MapData, [u8; 16], u8> = BpfHashMap::try_from(
        ebpf.map_mut(MAP_IGNORE_COMMS)
            .ok_or(CaptureError::MissingMap(MAP_IGNORE_COMMS))?,
    )
    .map_err(|e| CaptureError::Map(MAP_IGNORE_COMMS, e))?;
    let old: Vec<[u8; 16]> = comms.keys().filter_map(Result::ok).collect();
    for comm in old {
        let _ = comms.remove(&comm);
    }
    for comm in &config.ignore.comms {
        let mut key = [0u8; 16];
        let n = comm.len().min(15);
        key[..n].copy_from_slice(&comm.as_bytes()[..n]);
        comms
            .insert(key, 1, 0)
            .map_err(|e| CaptureError::Map(MAP_IGNORE_COMMS, e))?;
    }

    fill_trie(ebpf, MAP_IGNORE_PATHS, &config.ignore.path_prefixes)?;
    fill_trie(ebpf, MAP_SENSITIVE_PATHS, &config.sensitive_paths)?;
    Ok(())
}

/// Replaces the kernel exec rules.
pub fn set_exec_kill(ebpf: &mut Ebpf, rules: &[KernelExecRule]) -> Result<(), CaptureError> {
    let entries: Vec<_> = rules
        .iter()
        .map(|r| {
            let value: [u8; 16] = bytemuck::cast(ExecKillRule {
                rule: r.rule,
                uid: r.uid.unwrap_or(u32::MAX),
                signal: if r.hold { SIGNAL_STOP } else { SIGNAL_KILL },
                reserved: 0,
            });
            (path_key(&r.path), value)
        })
        .collect();
    replace_trie(ebpf, MAP_EXEC_KILL, &entries)
}

/// The `OP_ENABLED` slots whose records complete an event of `kind` (io_uring requests complete file and
/// net events too).
pub fn completing_slots(kind: EventKind) -> Vec<u32> {
    let mut slots: Vec<u32> = SyscallOp::ALL
        .iter()
        .filter(|op| op_completes(**op) == Some(kind))
        .map(|op| *op as u32)
        .collect();
    match kind {
        EventKind::Exec => slots.push(OP_SLOT_EXEC),
        EventKind::Fork => slots.push(OP_SLOT_FORK),
        EventKind::Exit => slots.push(OP_SLOT_EXIT),
        EventKind::File | EventKind::Net | EventKind::IoUring | EventKind::IoUringSetup => {
            slots.push(OP_SLOT_IO_URING);
        }
        // A watched file's change is seen through the file events of its path.
        EventKind::ConfigChange => slots = completing_slots(EventKind::File),
        EventKind::SetId
        | EventKind::Ptrace
        | EventKind::Kill
        | EventKind::SetName
        | EventKind::MemfdCreate
        | EventKind::Syscall
        | EventKind::Alert
        | EventKind::Action
        | EventKind::Loss
        | EventKind::AgentStart
        | EventKind::AgentStop
        | EventKind::ConfigLoaded
        | EventKind::JournalRecovered
        | EventKind::RulesLoaded
        | EventKind::RulesRejected
        | EventKind::Tamper
        | EventKind::Hold => {}
    }
    slots
}

/// The event kind a syscall op's return completes; `None` for one that only informs later events.
fn op_completes(op: SyscallOp) -> Option<EventKind> {
    match op {
        SyscallOp::Open
        | SyscallOp::Unlink
        | SyscallOp::Rename
        | SyscallOp::Link
        | SyscallOp::Symlink
        | SyscallOp::Chmod
        | SyscallOp::Chown
        | SyscallOp::Truncate
        | SyscallOp::Mkdir
        | SyscallOp::Rmdir
        | SyscallOp::Utimens
        | SyscallOp::Mount
        | SyscallOp::Umount
        | SyscallOp::Chdir => Some(EventKind::File),
        SyscallOp::Connect | SyscallOp::Bind | SyscallOp::Listen | SyscallOp::Accept => {
            Some(EventKind::Net)
        }
        SyscallOp::SetId => Some(EventKind::SetId),
        SyscallOp::Ptrace => Some(EventKind::Ptrace),
        SyscallOp::Kill => Some(EventKind::Kill),
        SyscallOp::SetName => Some(EventKind::SetName),
        SyscallOp::MemfdCreate => Some(EventKind::MemfdCreate),
        SyscallOp::Raw => Some(EventKind::Syscall),
        // Remembered for the socket's later net events; it makes none itself.
        SyscallOp::Socket => None,
    }
}

/// Turns every kind off at once (shutdown: the programs stay attached but record nothing new).
pub fn disable_all(ebpf: &mut Ebpf) -> Result<(), CaptureError> {
    set_slots(ebpf, |_| 0)
}

/// Writes every `OP_ENABLED` slot's value.
fn set_slots(ebpf: &mut Ebpf, value: impl Fn(u32) -> u8) -> Result<(), CaptureError> {
    let mut enabled: Array<&mut MapData, u8> = Array::try_from(
        ebpf.map_mut(MAP_OP_ENABLED)
            .ok_or(CaptureError::MissingMap(MAP_OP_ENABLED))?,
    )
    .map_err(|e| CaptureError::Map(MAP_OP_ENABLED, e))?;
    for slot in 0..OP_SLOTS {
        enabled
            .set(slot, value(slot), 0)
            .map_err(|e| CaptureError::Map(MAP_OP_ENABLED, e))?;
    }
    Ok(())
}

fn fill_trie(ebpf: &mut Ebpf, name: &'static str, paths: &[String]) -> Result<(), CaptureError> {
    let entries: Vec<_> = paths.iter().map(|p| (path_key(p), 1u8)).collect();
    replace_trie(ebpf, name, &entries)
}

/// Replaces the whole content of the LPM trie `name` with `entries`.
pub fn replace_trie<V: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    entries: &[(Key<[u8; PATH_KEY_LEN]>, V)],
) -> Result<(), CaptureError> {
    let mut trie: LpmTrie<&mut MapData, [u8; PATH_KEY_LEN], V> =
        LpmTrie::try_from(ebpf.map_mut(name).ok_or(CaptureError::MissingMap(name))?)
            .map_err(|e| CaptureError::Map(name, e))?;
    let old: Vec<Key<[u8; PATH_KEY_LEN]>> = trie.keys().filter_map(Result::ok).collect();
    for key in old {
        let _ = trie.remove(&key);
    }
    for (key, value) in entries {
        trie.insert(key, *value, 0)
            .map_err(|e| CaptureError::Map(name, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_keys() {
        let dir = path_key("/proc/");
        assert_eq!(dir.prefix_len(), 6 * 8);
        let file = path_key("/etc/shadow");
        assert_eq!(file.prefix_len(), 12 * 8, "exact files include their NUL");
        assert_eq!(&file.data()[..11], b"/etc/shadow");
        let names = path_key("/etc/ssh/ssh_host_*");
        assert_eq!(names.prefix_len(), 18 * 8, "a name prefix has no NUL");
    }

    #[test]
    fn every_captured_op_completes_some_event_kind() {
        let covered: BTreeSet<u32> = EventKind::all().flat_map(completing_slots).collect();
        for op in SyscallOp::ALL {
            let wakes = covered.contains(&(op as u32));
            assert_eq!(wakes, op != SyscallOp::Socket, "{op:?}");
        }
        assert!(covered.contains(&OP_SLOT_EXEC) && covered.contains(&OP_SLOT_IO_URING));
        assert_eq!(completing_slots(EventKind::Alert), Vec::<u32>::new());
    }
}
