//! Canonical paths: the absolute, normalised path the kernel acted on, from the raw argument a process
//! passed.
//!
//! A raw path is resolved against the directory its dirfd names or the process's cwd, then walked one
//! component at a time the way the kernel walks it: `.` is skipped, `..` goes up (never above `/`), repeated
//! slashes collapse, every symbolic link met on the way is replaced by its target (an absolute target
//! restarts at `/`), and the last component is followed only when the syscall follows it. The `/proc` links
//! a process can use to reach files under another name are followed as the kernel does: `/proc/self` and
//! `/proc/thread-self` name the calling process (not the agent), and `/proc/<pid>/{root,cwd,exe,fd/<n>}`
//! and their `task/<tid>/` forms lead to what they point at.
//!
//! The walk reads the file system after the syscall happened, through a [`Lookup`]; a link changed in
//! between can make it name a path the kernel did not use, which no tracepoint-level agent can rule out.
//! A walk that cannot be completed (the process is gone and its cwd unknown, a descriptor that is not a
//! file, more than [`MAX_LINKS`] links) gives `None`: callers keep the raw path and mark it unresolved.

use std::collections::VecDeque;

/// Most symbolic links followed in one walk (the kernel's `MAXSYMLINKS`).
pub const MAX_LINKS: usize = 40;

/// Whether the syscall follows a symbolic link in the last component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Last {
    /// It does (open without `O_NOFOLLOW`, exec, chdir, truncate, chmod, chown, …).
    Follow,
    /// It does not: it acts on the link itself (unlink, rename, lchown, symlink's link path, `O_NOFOLLOW`,
    /// `AT_SYMLINK_NOFOLLOW`).
    NoFollow,
}

/// What a walk asks of the file system, in the process's view (paths relative to its root).
pub trait Lookup {
    /// The target of the symbolic link at absolute `path`, or `None` when there is none (not a link, or
    /// nothing there).
    fn symlink(&mut self, pid: u32, path: &str) -> Option<String>;

    /// Where `/proc/<pid>/<what>` (`root`, `cwd`, `exe` or `fd/<n>`) leads, as an absolute path; `None`
    /// when it is not a file path (a pipe, a socket, a process that is gone).
    fn magic(&mut self, pid: u32, what: &str) -> Option<String>;
}

fn components(path: &str) -> impl Iterator<Item = String> + '_ {
    path.split('/').filter(|c| !c.is_empty()).map(str::to_owned)
}

fn join(stack: &[String]) -> String {
    if stack.is_empty() {
        return "/".into();
    }
    let mut out = String::with_capacity(stack.iter().map(|c| c.len() + 1).sum());
    for c in stack {
        out.push('/');
        out.push_str(c);
    }
    out
}

/// The canonical form of `raw` as process `pid` (thread `tid`) used it. `base` is the directory a relative
/// path starts from (the dirfd's path, or the cwd); `None` when unknown.
pub fn canonicalize(
    lookup: &mut impl Lookup,
    pid: u32,
    tid: u32,
    base: Option<&str>,
    raw: &str,
    last: Last,
) -> Option<String> {
    let mut stack: Vec<String> = if raw.starts_with('/') {
        Vec::new()
    } else {
        components(base?).collect()
    };
    let mut queue: VecDeque<String> = components(raw).collect();
    let mut links = 0usize;
    while let Some(c) = queue.pop_front() {
        match c.as_str() {
            "." => continue,
            ".." => {
                stack.pop();
                continue;
            }
            _ => stack.push(c),
        }
        let is_last = queue.is_empty();
        match proc_link(&stack, pid, tid) {
            ProcLink::None => {}
            ProcLink::Rename(renamed) => {
                stack = renamed;
                continue;
            }
            ProcLink::Magic(owner, what) => {
                if is_last && last == Last::NoFollow {
                    continue;
                }
                links += 1;
                if links > MAX_LINKS {
                    return None;
                }
                stack = components(&lookup.magic(owner, &what)?).collect();
                continue;
            }
        }
        if is_last && last == Last::NoFollow {
            continue;
        }
        if let Some(target) = lookup.symlink(pid, &join(&stack)) {
            links += 1;
            if links > MAX_LINKS {
                return None;
            }
            stack.pop();
            if target.starts_with('/') {
                stack.clear();
            }
            for (i, part) in components(&target).enumerate() {
                queue.insert(i, part);
            }
        }
    }
    Some(join(&stack))
}

/// What a `/proc` path prefix is.
enum ProcLink {
    /// Not a `/proc` link.
    None,
    /// `/proc/self` or `/proc/thread-self`: the calling process's directory under its own name.
    Rename(Vec<String>),
    /// A link of process `.0` (`root`, `cwd`, `exe`, `fd/<n>`) to be followed.
    Magic(u32, String),
}

fn proc_link(stack: &[String], pid: u32, tid: u32) -> ProcLink {
    let s: Vec<&str> = stack.iter().map(String::as_str).collect();
    let numeric = |x: &str| x.parse::<u32>().ok();
    match s.as_slice() {
        ["proc", "self"] => ProcLink::Rename(vec!["proc".into(), pid.to_string()]),
        ["proc", "thread-self"] => ProcLink::Rename(vec![
            "proc".into(),
            pid.to_string(),
            "task".into(),
            tid.to_string(),
        ]),
        ["proc", p, what @ ("root" | "cwd" | "exe")]
        | ["proc", p, "task", _, what @ ("root" | "cwd" | "exe")] => match numeric(p) {
            Some(owner) => ProcLink::Magic(owner, (*what).to_owned()),
            None => ProcLink::None,
        },
        ["proc", p, "fd", n] | ["proc", p, "task", _, "fd", n] => {
            match (numeric(p), n.parse::<u32>().ok()) {
                (Some(owner), Some(fd)) => ProcLink::Magic(owner, format!("fd/{fd}")),
                _ => ProcLink::None,
            }
        }
        _ => ProcLink::None,
    }
}

/// The live file system, as processes see it: a process's paths are looked up below `/proc/<pid>/root`
/// (its root, which differs from the agent's in a container or chroot) while it runs, and in the agent's
/// view once it is gone; magic links are read from `/proc` and made relative to that root.
#[derive(Debug, Default)]
pub struct LiveFs;

impl LiveFs {
    /// The root of `pid` in the agent's view (`/` for a process sharing the agent's root, or when it is
    /// gone).
    fn root_of(pid: u32) -> String {
        std::fs::read_link(format!("/proc/{pid}/root"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".into())
    }
}

impl Lookup for LiveFs {
    fn symlink(&mut self, pid: u32, path: &str) -> Option<String> {
        let root = format!("/proc/{pid}/root");
        let there = if std::path::Path::new(&root).exists() {
            format!("{root}{path}")
        } else {
            path.to_owned()
        };
        let meta = std::fs::symlink_metadata(&there).ok()?;
        if !meta.file_type().is_symlink() {
            return None;
        }
        std::fs::read_link(&there)
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }

    fn magic(&mut self, pid: u32, what: &str) -> Option<String> {
        let target = std::fs::read_link(format!("/proc/{pid}/{what}"))
            .ok()?
            .to_string_lossy()
            .into_owned();
        if !target.starts_with('/') {
            return None;
        }
        if what == "root" {
            return Some("/".into());
        }
        // The kernel names the target from the agent's root; the process sees it below its own root.
        let root = LiveFs::root_of(pid);
        if root == "/" {
            return Some(target);
        }
        match target.strip_prefix(&root) {
            Some("") => Some("/".into()),
            Some(rest) if rest.starts_with('/') => Some(rest.to_owned()),
            _ => Some(target),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A fake file system: symlinks by path, magic links by (pid, what).
    #[derive(Default)]
    struct Fake {
        links: HashMap<String, String>,
        magic: HashMap<(u32, String), String>,
    }

    impl Lookup for Fake {
        fn symlink(&mut self, _pid: u32, path: &str) -> Option<String> {
            self.links.get(path).cloned()
        }
        fn magic(&mut self, pid: u32, what: &str) -> Option<String> {
            self.magic.get(&(pid, what.to_owned())).cloned()
        }
    }

    fn fake() -> Fake {
        let mut f = Fake::default();
        f.links.insert("/tmp/link".into(), "/tmp/k/prog".into());
        f.links.insert("/tmp/rel".into(), "k/prog".into());
        f.links.insert("/tmp/etcdir".into(), "/etc".into());
        f.links.insert("/tmp/loop".into(), "/tmp/loop".into());
        f.magic.insert((7, "root".into()), "/".into());
        f.magic.insert((7, "cwd".into()), "/etc".into());
        f.magic.insert((7, "fd/3".into()), "/etc".into());
        f.magic.insert((7, "exe".into()), "/usr/bin/bash".into());
        f
    }

    fn canon(base: Option<&str>, raw: &str, last: Last) -> Option<String> {
        canonicalize(&mut fake(), 7, 8, base, raw, last)
    }

    #[test]
    fn every_spelling_of_a_file_is_one_path() {
        let f = Last::Follow;
        for (base, raw) in [
            (None, "/etc/shadow"),
            (None, "/etc//shadow"),
            (None, "/etc/./shadow"),
            (None, "/etc/../etc/shadow"),
            (None, "//etc/shadow"),
            (Some("/etc"), "shadow"),
            (Some("/etc"), "./shadow"),
            (Some("/usr/lib"), "../../etc/shadow"),
            (None, "/proc/self/root/etc/shadow"),
            (None, "/proc/thread-self/root/etc/shadow"),
            (None, "/proc/7/root/etc/shadow"),
            (None, "/proc/self/cwd/shadow"),
            (None, "/proc/self/fd/3/shadow"),
            (None, "/proc/7/task/8/cwd/shadow"),
            (None, "/tmp/etcdir/shadow"),
            // `..` after a symlinked directory is the parent of where the link points, as in the kernel.
            (Some("/tmp"), "etcdir/../etc/shadow"),
        ] {
            assert_eq!(
                canon(base, raw, f).as_deref(),
                Some("/etc/shadow"),
                "{base:?} {raw}"
            );
        }
    }

    #[test]
    fn dot_dot_is_physical_after_a_symlink() {
        // /tmp/etcdir -> /etc, so etcdir/.. is /, not /tmp (a lexical walk would say /tmp/etcdir/shadow).
        assert_eq!(
            canon(Some("/tmp"), "etcdir/../etcdir/shadow", Last::Follow).as_deref(),
            Some("/etcdir/shadow")
        );
    }

    #[test]
    fn the_last_link_is_followed_only_when_the_syscall_follows_it() {
        assert_eq!(
            canon(None, "/tmp/link", Last::Follow).as_deref(),
            Some("/tmp/k/prog")
        );
        assert_eq!(
            canon(None, "/tmp/rel", Last::Follow).as_deref(),
            Some("/tmp/k/prog"),
            "a relative target is relative to the link's directory"
        );
        assert_eq!(
            canon(None, "/tmp/link", Last::NoFollow).as_deref(),
            Some("/tmp/link")
        );
        assert_eq!(
            canon(None, "/tmp/etcdir/passwd", Last::NoFollow).as_deref(),
            Some("/etc/passwd"),
            "links before the last component are always followed"
        );
        assert_eq!(
            canon(None, "/proc/self/exe", Last::Follow).as_deref(),
            Some("/usr/bin/bash")
        );
    }

    #[test]
    fn walks_that_cannot_finish_give_none() {
        assert_eq!(canon(None, "/tmp/loop", Last::Follow), None, "a link cycle");
        assert_eq!(canon(None, "rel", Last::Follow), None, "no base");
        assert_eq!(
            canon(None, "/proc/self/fd/9/x", Last::Follow),
            None,
            "not a file"
        );
        assert_eq!(canon(None, "/..", Last::Follow).as_deref(), Some("/"));
        assert_eq!(canon(Some("/"), "..", Last::Follow).as_deref(), Some("/"));
    }
}
