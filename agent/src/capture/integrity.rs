//! The agent's own kernel objects, checked every second: its programs and links still exist and still join
//! the same programs, and the maps that hold its filters hold what it last wrote. Another root process can
//! open any of them by id (`bpftool map update id …`): an entry added to the ignore maps would make its
//! activity invisible. A difference is reported as a `tamper` event and the maps' recorded entries are
//! written back.

use std::collections::BTreeSet;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::{Arc, PoisonError, RwLock};

use agent_common::wire::{
    MAP_EXEC_KILL, MAP_IGNORE_COMMS, MAP_IGNORE_PATHS, MAP_IGNORE_TGIDS, MAP_OP_ENABLED,
    MAP_SENSITIVE_PATHS, MAP_SYSCALL_SPECS,
};
use aya::Ebpf;
use aya::maps::{Map, MapData};

/// The maps whose content is the agent's configuration (filters, specs, kernel exec rules).
pub const CONFIG_MAPS: &[&str] = &[
    MAP_IGNORE_TGIDS,
    MAP_IGNORE_COMMS,
    MAP_IGNORE_PATHS,
    MAP_SENSITIVE_PATHS,
    MAP_SYSCALL_SPECS,
    MAP_OP_ENABLED,
    MAP_EXEC_KILL,
];

/// A map's entries, sorted by key.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Ids of the agent's programs, links and maps, shared with the self-protection stage (which attributes
/// other processes' `bpf()` calls to them).
#[derive(Clone, Debug, Default)]
pub struct OwnObjects {
    inner: Arc<RwLock<ObjectIds>>,
}

/// The ids themselves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectIds {
    /// Program ids.
    pub programs: BTreeSet<u32>,
    /// Link ids.
    pub links: BTreeSet<u32>,
    /// Map ids.
    pub maps: BTreeSet<u32>,
}

impl OwnObjects {
    /// The ids now.
    pub fn get(&self) -> ObjectIds {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, ids: ObjectIds) {
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = ids;
    }

    /// Sets the ids (tests of the stages that read them).
    #[cfg(test)]
    pub fn set_for_test(&self, programs: &[u32], links: &[u32], maps: &[u32]) {
        self.set(ObjectIds {
            programs: programs.iter().copied().collect(),
            links: links.iter().copied().collect(),
            maps: maps.iter().copied().collect(),
        });
    }
}

/// What one check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The object (`link 12`, `program 40`, `map IGNORE_TGIDS (id 7)`).
    pub target: String,
    /// What is wrong with it.
    pub detail: String,
    /// Whether the map's recorded content was written back.
    pub restored: bool,
}

/// The expected state and how to compare with it.
#[derive(Debug, Default)]
pub struct Integrity {
    /// (link id, program id) of every attached link.
    links: Vec<(u32, u32)>,
    programs: BTreeSet<u32>,
    /// (name, id, entries) of each config map.
    maps: Vec<(&'static str, u32, Entries)>,
    shared: OwnObjects,
}

impl Integrity {
    /// Records the agent's objects as they are now (call after attaching and writing the filters).
    pub fn snapshot(ebpf: &Ebpf, shared: OwnObjects) -> Integrity {
        let programs: BTreeSet<u32> = ebpf
            .programs()
            .filter_map(|(_, p)| p.info().ok().map(|i| i.id()))
            .collect();
        let links: Vec<(u32, u32)> = aya::programs::loaded_links()
            .filter_map(Result::ok)
            .filter(|l| programs.contains(&l.program_id()))
            .map(|l| (l.id(), l.program_id()))
            .collect();
        let map_ids: BTreeSet<u32> = ebpf
            .maps()
            .filter_map(|(_, m)| data(m).and_then(|d| d.info().ok()).map(|i| i.id()))
            .collect();
        let mut integrity = Integrity {
            links,
            programs: programs.clone(),
            maps: Vec::new(),
            shared,
        };
        integrity.rebase(ebpf);
        tracing::debug!(
            programs = integrity.programs.len(),
            links = integrity.links.len(),
            maps = ?integrity.maps.iter().map(|(n, id, e)| (*n, *id, e.len())).collect::<Vec<_>>(),
            "integrity baseline"
        );
        integrity.shared.set(ObjectIds {
            programs,
            links: integrity.links.iter().map(|(l, _)| *l).collect(),
            maps: map_ids,
        });
        integrity
    }

    /// Takes the config maps' content as expected (after the agent wrote them itself).
    pub fn rebase(&mut self, ebpf: &Ebpf) {
        self.maps = CONFIG_MAPS
            .iter()
            .filter_map(|name| {
                let data = data(ebpf.map(name)?)?;
                let id = data.info().ok()?.id();
                Some((*name, id, entries(data)?))
            })
            .collect();
    }

    /// Compares the objects with what was recorded.
    pub fn check(&self, ebpf: &Ebpf) -> Vec<Finding> {
        let mut found = Vec::new();
        let links: std::collections::HashMap<u32, u32> = aya::programs::loaded_links()
            .filter_map(Result::ok)
            .map(|l| (l.id(), l.program_id()))
            .collect();
        for (link, program) in &self.links {
            match links.get(link) {
                None => found.push(Finding {
                    target: format!("link {link}"),
                    detail: format!("the link of program {program} is gone (detached)"),
                    restored: false,
                }),
                Some(now) if now != program => found.push(Finding {
                    target: format!("link {link}"),
                    detail: format!("the link now runs program {now} instead of {program}"),
                    restored: false,
                }),
                Some(_) => {}
            }
        }
        let programs: BTreeSet<u32> = aya::programs::loaded_programs()
            .filter_map(Result::ok)
            .map(|p| p.id())
            .collect();
        for program in self.programs.difference(&programs) {
            found.push(Finding {
                target: format!("program {program}"),
                detail: "the program is no longer loaded".into(),
                restored: false,
            });
        }
        for (name, id, expected) in &self.maps {
            let now = ebpf.map(name).and_then(data).and_then(entries);
            if now.as_ref() != Some(expected) {
                let restored = ebpf.map(name).and_then(data).is_some_and(|map| {
                    restore(map, expected);
                    entries(map).as_ref() == Some(expected)
                });
                found.push(Finding {
                    target: format!("map {name} (id {id})"),
                    detail: format!(
                        "its entries differ from what the agent wrote ({} entries now, {} written){}",
                        now.as_ref().map_or(0, Vec::len),
                        expected.len(),
                        if restored { "; written back" } else { "; could not be written back" }
                    ),
                    restored,
                });
            }
        }
        found
    }
}

/// The map's data for the kinds the agent uses.
fn data(map: &Map) -> Option<&MapData> {
    match map {
        Map::HashMap(d)
        | Map::LpmTrie(d)
        | Map::Array(d)
        | Map::LruHashMap(d)
        | Map::PerCpuArray(d)
        | Map::RingBuf(d) => Some(d),
        _ => None,
    }
}

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
/// Most entries digested per map (the config maps are far smaller).
const MAX_ENTRIES: usize = 1 << 16;

/// `union bpf_attr` for the map element commands.
#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

fn bpf(cmd: libc::c_long, attr: &mut ElemAttr) -> bool {
    // SAFETY: `attr` is a valid, fully initialised `bpf_attr` prefix of the size passed; the buffers it
    // points to are owned by the caller and sized by the map's key and value sizes.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            std::mem::size_of::<ElemAttr>() as libc::c_uint,
        )
    };
    ret == 0
}

/// Every (key, value) of the map, in key order.
fn entries(map: &MapData) -> Option<Entries> {
    let info = map.info().ok()?;
    let fd = map.fd().as_fd().as_raw_fd() as u32;
    let (key_size, value_size) = (info.key_size() as usize, info.value_size() as usize);
    let mut entries: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut key: Option<Vec<u8>> = None;
    loop {
        let mut next = vec![0u8; key_size];
        let mut attr = ElemAttr {
            map_fd: fd,
            key: key.as_ref().map_or(0, |k| k.as_ptr() as u64),
            value: next.as_mut_ptr() as u64,
            ..ElemAttr::default()
        };
        if !bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) || entries.len() >= MAX_ENTRIES {
            break;
        }
        let mut value = vec![0u8; value_size];
        let mut attr = ElemAttr {
            map_fd: fd,
            key: next.as_ptr() as u64,
            value: value.as_mut_ptr() as u64,
            ..ElemAttr::default()
        };
        if bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
            entries.push((next.clone(), value));
        }
        key = Some(next);
    }
    entries.sort();
    Some(entries)
}

/// Writes the recorded entries back into `map` and deletes any other key.
fn restore(map: &MapData, expected: &Entries) {
    let Some(now) = entries(map) else {
        return;
    };
    let fd = map.fd().as_fd().as_raw_fd() as u32;
    for (key, _) in &now {
        if expected.binary_search_by(|(k, _)| k.cmp(key)).is_err() {
            let mut attr = ElemAttr {
                map_fd: fd,
                key: key.as_ptr() as u64,
                ..ElemAttr::default()
            };
            bpf(BPF_MAP_DELETE_ELEM, &mut attr);
        }
    }
    for (key, value) in expected {
        if now
            .binary_search_by(|(k, _)| k.cmp(key))
            .ok()
            .map(|i| &now[i].1)
            != Some(value)
        {
            let mut attr = ElemAttr {
                map_fd: fd,
                key: key.as_ptr() as u64,
                value: value.as_ptr() as u64,
                ..ElemAttr::default()
            };
            bpf(BPF_MAP_UPDATE_ELEM, &mut attr);
        }
    }
}
