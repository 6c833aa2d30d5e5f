//! Container ids from cgroup paths (`/proc/<pid>/cgroup`), cached per cgroup id.
//!
//! Runtimes put the container id (64 hex digits) in the cgroup path: `…/docker-<id>.scope`,
//! `…/cri-containerd-<id>.scope`, `/docker/<id>`, `…/libpod-<id>.scope`. A cgroup whose path names no such id
//! is not a container.

use std::collections::HashMap;

/// cgroup id → container id, with a bound on entries.
#[derive(Debug, Default)]
pub struct Containers {
    cache: HashMap<u64, Option<String>>,
}

const CACHE_LIMIT: usize = 65536;

impl Containers {
    /// The container id of `pid`, whose cgroup id is `cgroup_id`.
    pub fn id(&mut self, cgroup_id: u64, pid: u32) -> Option<String> {
        if let Some(known) = self.cache.get(&cgroup_id) {
            return known.clone();
        }
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let id = container_id(&text);
        if self.cache.len() >= CACHE_LIMIT {
            self.cache.clear();
        }
        self.cache.insert(cgroup_id, id.clone());
        id
    }
}

/// The container id named in a `/proc/<pid>/cgroup` text, if any.
pub fn container_id(cgroup: &str) -> Option<String> {
    cgroup
        .lines()
        .flat_map(|line| line.rsplit(':').next().unwrap_or("").split('/'))
        .flat_map(|part| part.split(['-', '.']))
        .find(|token| token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_ids_in_runtime_paths() {
        let id = "a".repeat(64);
        assert_eq!(
            container_id(&format!("0::/system.slice/docker-{id}.scope\n")),
            Some(id.clone())
        );
        assert_eq!(
            container_id(&format!(
                "0::/kubepods/burstable/pod1/cri-containerd-{id}.scope"
            )),
            Some(id.clone())
        );
        assert_eq!(container_id(&format!("12:cpu:/docker/{id}")), Some(id));
        assert_eq!(
            container_id("0::/user.slice/user-0.slice/session-1.scope"),
            None
        );
    }
}
