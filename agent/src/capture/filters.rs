//! In-kernel filters from the config: per-kind enable flags, pid/comm/path-prefix ignore lists, sensitive
//! read paths, written to the BPF maps at start and again on reload (no restart needed).

use std::collections::BTreeSet;

use agent_common::wire::{
    ExecKillRule, MAP_EXEC_KILL, MAP_IGNORE_COMMS, MAP_IGNORE_PATHS, MAP_IGNORE_TGIDS,
    MAP_OP_ENABLED, MAP_SENSITIVE_PATHS, OP_SLOTS, PATH_KEY_LEN, op_slot,
};
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
pub fn apply(config: &CaptureConfig, ebpf: &mut Ebpf) -> Result<(), CaptureError> {
    let disabled: BTreeSet<u32> = config.disable.iter().filter_map(|n| op_slot(n)).collect();
    set_enabled(ebpf, |slot| !disabled.contains(&slot))?;

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
    let mut trie: LpmTrie<&mut MapData, [u8; PATH_KEY_LEN], [u8; 8]> = LpmTrie::try_from(
        ebpf.map_mut(MAP_EXEC_KILL)
            .ok_or(CaptureError::MissingMap(MAP_EXEC_KILL))?,
    )
    .map_err(|e| CaptureError::Map(MAP_EXEC_KILL, e))?;
    let old: Vec<Key<[u8; PATH_KEY_LEN]>> = trie.keys().filter_map(Result::ok).collect();
    for key in old {
        let _ = trie.remove(&key);
    }
    for r in rules {
        let value: [u8; 8] = bytemuck::cast(ExecKillRule {
            rule: r.rule,
            uid: r.uid.unwrap_or(u32::MAX),
        });
        trie.insert(&path_key(&r.path), value, 0)
            .map_err(|e| CaptureError::Map(MAP_EXEC_KILL, e))?;
    }
    Ok(())
}

/// Turns every kind off at once (shutdown: the programs stay attached but record nothing new).
pub fn disable_all(ebpf: &mut Ebpf) -> Result<(), CaptureError> {
    set_enabled(ebpf, |_| false)
}

/// Writes every `OP_ENABLED` slot: on where `on(slot)`.
fn set_enabled(ebpf: &mut Ebpf, on: impl Fn(u32) -> bool) -> Result<(), CaptureError> {
    let mut enabled: Array<&mut MapData, u8> = Array::try_from(
        ebpf.map_mut(MAP_OP_ENABLED)
            .ok_or(CaptureError::MissingMap(MAP_OP_ENABLED))?,
    )
    .map_err(|e| CaptureError::Map(MAP_OP_ENABLED, e))?;
    for slot in 0..OP_SLOTS {
        enabled
            .set(slot, u8::from(on(slot)), 0)
            .map_err(|e| CaptureError::Map(MAP_OP_ENABLED, e))?;
    }
    Ok(())
}

fn fill_trie(ebpf: &mut Ebpf, name: &'static str, paths: &[String]) -> Result<(), CaptureError> {
    let mut trie: LpmTrie<&mut MapData, [u8; PATH_KEY_LEN], u8> =
        LpmTrie::try_from(ebpf.map_mut(name).ok_or(CaptureError::MissingMap(name))?)
            .map_err(|e| CaptureError::Map(name, e))?;
    let old: Vec<Key<[u8; PATH_KEY_LEN]>> = trie.keys().filter_map(Result::ok).collect();
    for key in old {
        let _ = trie.remove(&key);
    }
    for path in paths {
        trie.insert(&path_key(path), 1, 0)
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
}
