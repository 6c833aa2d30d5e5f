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

    /// Whether the kernel, walking absolute `path` in process `pid`'s view, meets no symbolic link in any
    /// component it passes (the last one only when `last` follows it) and finds every directory on the way:
    /// then the path's canonical form is its lexical normalisation and the component walk can be skipped.
    /// `false` when that cannot be shown (the walk then decides); the default never shows it.
    fn plain(&mut self, _pid: u32, _path: &str, _last: Last) -> bool {
        false
    }
}

fn components(path: &str) -> impl Iterator<Item = String> + '_ {
    path.split('/').filter(|c| !c.is_empty()).map(str::to_owned)
}

fn join<S: AsRef<str>>(stack: &[S]) -> String {
    if stack.is_empty() {
        return "/".into();
    }
    let mut out = String::with_capacity(stack.iter().map(|c| c.as_ref().len() + 1).sum());
    for c in stack {
        out.push('/');
        out.push_str(c.as_ref());
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
    if let Some(path) = fast_path(lookup, pid, base, raw, last) {
        return Some(path);
    }
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

/// The lexical normalisation of `base` + `raw` when the lookup shows that the kernel's walk of that
/// spelling meets no symbolic link (one check of the whole path instead of a lookup per component).
/// Spellings through a `/proc` component always take the walk, which knows the process's magic links.
fn fast_path(
    lookup: &mut impl Lookup,
    pid: u32,
    base: Option<&str>,
    raw: &str,
    last: Last,
) -> Option<String> {
    let mut joined = String::new();
    let whole = if raw.starts_with('/') {
        raw
    } else {
        joined.push_str(base?);
        joined.push('/');
        joined.push_str(raw);
        &joined
    };
    if !whole.starts_with('/') || whole.split('/').any(|c| c == "proc") {
        return None;
    }
    if !lookup.plain(pid, whole, last) {
        return None;
    }
    let mut stack: Vec<&str> = Vec::new();
    for c in whole.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                stack.pop();
            }
            _ => stack.push(c),
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

    fn plain(&mut self, pid: u32, path: &str, last: Last) -> bool {
        let Ok(root) = open_root(pid) else {
            return false;
        };
        let rel = path.trim_start_matches('/');
        if rel.is_empty() {
            return true;
        }
        match open_plain(&root, rel, last) {
            Ok(()) => true,
            // Nothing there (a failed open, a file removed since): its directory decides, and a name that
            // does not exist is no link.
            Err(nix::errno::Errno::ENOENT) => match rel.rsplit_once('/') {
                Some((_, name)) if name == ".." || name == "." => false,
                Some((dir, _)) => open_plain(&root, dir, Last::Follow).is_ok(),
                None => true,
            },
            Err(_) => false,
        }
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

/// The root directory of process `pid`, opened as a path (`/proc/<pid>/root` followed once).
fn open_root(pid: u32) -> nix::Result<std::os::fd::OwnedFd> {
    use nix::fcntl::{OFlag, open};
    open(
        format!("/proc/{pid}/root").as_str(),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
}

/// Opens `rel` below `root` as a path, refusing every symbolic link on the way (and the last one when
/// `last` follows it) and never climbing above `root`: `openat2(2)` with `RESOLVE_NO_SYMLINKS |
/// RESOLVE_IN_ROOT`, one walk in the kernel.
fn open_plain(root: &std::os::fd::OwnedFd, rel: &str, last: Last) -> Result<(), nix::errno::Errno> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let Ok(c_rel) = std::ffi::CString::new(rel) else {
        return Err(nix::errno::Errno::EINVAL);
    };
    let mut flags = libc::O_PATH | libc::O_CLOEXEC;
    if last == Last::NoFollow {
        flags |= libc::O_NOFOLLOW;
    }
    // SAFETY: open_how is plain data; zeroed is its documented default (no mode, no resolve flags).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.resolve = libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_IN_ROOT;
    // SAFETY: every pointer is valid for the call; the size is open_how's.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c_rel.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(nix::errno::Errno::last());
    }
    // SAFETY: the kernel just returned this descriptor to us; it is owned here and closed on drop.
    drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    Ok(())
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

    /// The live file system on a scratch tree: `d/` a directory, `d/f` a file, `l -> d` and `d/lf -> f`.
    fn scratch() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let top = dir.path().to_str().expect("utf-8").to_owned();
        std::fs::create_dir(format!("{top}/d")).expect("mkdir");
        std::fs::write(format!("{top}/d/f"), b"x").expect("write");
        std::os::unix::fs::symlink(format!("{top}/d"), format!("{top}/l")).expect("symlink");
        std::os::unix::fs::symlink("f", format!("{top}/d/lf")).expect("symlink");
        (dir, top)
    }

    fn live(base: Option<&str>, raw: &str, last: Last) -> Option<String> {
        let pid = std::process::id();
        canonicalize(&mut LiveFs, pid, pid, base, raw, last)
    }

    #[test]
    fn the_one_check_sees_links_anywhere_on_the_path() {
        let (_dir, top) = scratch();
        let mut fs = LiveFs;
        let pid = std::process::id();
        assert!(fs.plain(pid, &format!("{top}/d/f"), Last::Follow));
        assert!(fs.plain(pid, &format!("{top}//d/./f"), Last::Follow));
        assert!(
            fs.plain(pid, &format!("{top}/d/missing"), Last::Follow),
            "a name that does not exist is no link"
        );
        assert!(
            !fs.plain(pid, &format!("{top}/l/f"), Last::Follow),
            "a linked directory"
        );
        assert!(
            !fs.plain(pid, &format!("{top}/l/missing"), Last::Follow),
            "a missing name below a linked directory"
        );
        assert!(
            !fs.plain(pid, &format!("{top}/l/../d/f"), Last::Follow),
            "a link passed before `..`"
        );
        assert!(
            !fs.plain(pid, &format!("{top}/d/lf"), Last::Follow),
            "a followed last link"
        );
        assert!(
            fs.plain(pid, &format!("{top}/d/lf"), Last::NoFollow),
            "an unfollowed last link"
        );
        assert!(
            !fs.plain(pid, &format!("{top}/nodir/x/y"), Last::Follow),
            "a missing directory: the walk decides"
        );
    }

    #[test]
    fn live_spellings_resolve_with_and_without_the_one_check() {
        let (_dir, top) = scratch();
        let file = format!("{top}/d/f");
        for (base, raw, last) in [
            (None, file.clone(), Last::Follow),
            (None, format!("{top}//d/../d/./f"), Last::Follow),
            (Some(top.as_str()), "d/f".to_owned(), Last::Follow),
            (None, format!("{top}/l/f"), Last::Follow),
            (None, format!("{top}/l/../d/f"), Last::Follow),
            (None, format!("{top}/d/lf"), Last::Follow),
            (None, format!("/proc/self/root{top}/d/f"), Last::Follow),
        ] {
            assert_eq!(
                live(base, &raw, last).as_deref(),
                Some(file.as_str()),
                "{raw}"
            );
        }
        assert_eq!(
            live(None, &format!("{top}/d/lf"), Last::NoFollow),
            Some(format!("{top}/d/lf"))
        );
        assert_eq!(
            live(None, &format!("{top}/l/new"), Last::Follow),
            Some(format!("{top}/d/new")),
            "a file not there yet, below a linked directory"
        );
    }
}
