//! Path spelling does not evade: every way the kernel accepts to name a file — relative paths, `.`, `..`,
//! `//`, symbolic links, `/proc/self/{root,cwd,fd/N}`, a dirfd, `AT_EMPTY_PATH`, a bind mount — gives the
//! same canonical path in events, the same alerts from the default rules, and for a kill rule the same
//! outcome: the program never runs.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use harness::{Agent, marker, temp_dir};
use serde_json::Value;
use sha2::Digest;

const DEFAULT_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/default.yaml");

fn sh(script: &str) -> std::process::ExitStatus {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .status()
        .expect("sh")
}

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL")
}

/// An open of `name` relative to the directory descriptor of `dir`, from this process.
fn openat(dir: &str, name: &str, flags: libc::c_int) -> libc::c_int {
    let (d, n) = (c(dir), c(name));
    // SAFETY: plain syscalls on NUL-terminated strings that outlive them.
    unsafe {
        let dirfd = libc::open(d.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
        assert!(dirfd >= 0, "open {dir}");
        let fd = libc::openat(dirfd, n.as_ptr(), flags, 0o600);
        libc::close(dirfd);
        fd
    }
}

/// A directory descriptor of `dir` left open in this process, and its `/proc/self/fd/N` name.
fn dir_fd(dir: &str) -> (libc::c_int, String) {
    let d = c(dir);
    // SAFETY: plain syscall on a NUL-terminated string.
    let fd = unsafe { libc::open(d.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
    assert!(fd >= 0, "open {dir}");
    (fd, format!("/proc/self/fd/{fd}"))
}

fn close(fd: libc::c_int) {
    // SAFETY: closing a descriptor this test opened.
    unsafe { libc::close(fd) };
}

/// Bind-mounts `from` on `to` (a directory on a directory, a file on a file).
fn mount_bind(from: &Path, to: &Path) -> bool {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("mount point");
    } else {
        std::fs::write(to, b"").expect("mount point");
    }
    sh(&format!("mount --bind {} {}", from.display(), to.display())).success()
}

/// Detaches the mount on `at` even while something still uses it.
fn umount(at: &Path) {
    let _ = sh(&format!("umount -l {}", at.display()));
}

/// The alert of `rule` for event `ev`.
fn alert_for(agent: &mut Agent, rule: &str, ev: &Value) -> Value {
    let seq = ev["seq"].clone();
    agent.wait_for("alert", |_, a| a["rule"] == rule && a["trigger_seq"] == seq)
}

/// Removes the files a test created below /etc when dropped, also when the test fails.
struct EtcFiles(String);

impl Drop for EtcFiles {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir("/etc") {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&self.0) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

#[test]
fn writes_below_etc_are_seen_under_their_canonical_name_however_spelled() {
    let mut agent = Agent::start(&["--rules", DEFAULT_RULES]);
    let tmp = temp_dir("evade-write");
    let me = std::process::id();
    let prefix = marker("w");
    let _cleanup = EtcFiles(prefix.clone());
    let name = |i: usize| format!("{prefix}-{i}");
    let mut cases: Vec<(String, String, u32)> = Vec::new(); // (canonical, raw, pid; 0 = any)
    // Spelled in this process.
    for (i, spell) in [
        "/etc/{}",
        "/proc/self/root/etc/{}",
        "/etc//{}",
        "/etc/./{}",
        "/etc/../etc/{}",
    ]
    .iter()
    .enumerate()
    {
        let n = name(i);
        let raw = spell.replace("{}", &n);
        std::fs::write(&raw, b"x").expect("write");
        cases.push((format!("/etc/{n}"), raw, me));
    }
    let n = name(10);
    close(openat("/etc", &n, libc::O_WRONLY | libc::O_CREAT));
    cases.push((format!("/etc/{n}"), n.clone(), me));
    let n = name(11);
    let (fd, fd_name) = dir_fd("/etc");
    std::fs::write(format!("{fd_name}/{n}"), b"x").expect("write through fd");
    close(fd);
    cases.push((format!("/etc/{n}"), format!("{fd_name}/{n}"), me));
    let n = name(12);
    let link = tmp.join("link");
    std::os::unix::fs::symlink(format!("/etc/{n}"), &link).expect("symlink");
    std::fs::write(&link, b"x").expect("write through link");
    cases.push((format!("/etc/{n}"), link.display().to_string(), me));
    let n = name(13);
    let dir_link = tmp.join("etcdir");
    std::os::unix::fs::symlink("/etc", &dir_link).expect("symlink");
    let raw = format!("{}/{n}", dir_link.display());
    std::fs::write(&raw, b"x").expect("write through dir link");
    cases.push((format!("/etc/{n}"), raw, me));
    // Spelled by a shell in /etc (bash: the default rules leave `sh`, which package scripts run, alone).
    for (i, spell) in ["{}", "./{}", "/proc/self/cwd/{}", "../etc/{}"]
        .iter()
        .enumerate()
    {
        let n = name(20 + i);
        let raw = spell.replace("{}", &n);
        let status = Command::new("bash")
            .arg("-c")
            .arg(format!("cd /etc && echo x > {raw}"))
            .status()
            .expect("bash");
        assert!(status.success());
        cases.push((format!("/etc/{n}"), raw, 0));
    }
    for (path, raw, pid) in &cases {
        let ev = agent.wait_for("file", |e, f| {
            f["op"] == "open"
                && f["path"] == path.as_str()
                && (*pid == 0 || e["process"]["pid"] == *pid)
        });
        let f = &ev["event"]["file"];
        let want_raw = if raw == path { "" } else { raw.as_str() };
        assert_eq!(f["raw_path"], want_raw, "{ev}");
        alert_for(&mut agent, "write_below_etc", &ev);
    }
    for (path, _, _) in &cases {
        let _ = std::fs::remove_file(path);
    }
    harness::remove_tree(&tmp);
}

#[test]
fn sensitive_reads_are_seen_however_the_file_is_named() {
    let mut agent = Agent::start(&["--rules", DEFAULT_RULES]);
    let tmp = temp_dir("evade-read");
    // (how, pid of the reader, raw path the event must carry, or None when fanotify reports it)
    let mut cases: Vec<(String, u32, Option<String>)> = Vec::new();
    for raw in [
        "/etc//shadow",
        "/etc/./shadow",
        "/etc/../etc/shadow",
        "/proc/self/root/etc/shadow",
    ] {
        let child = Command::new("cat")
            .arg(raw)
            .stdout(std::process::Stdio::null())
            .spawn();
        let mut child = child.expect("cat");
        let pid = child.id();
        assert!(child.wait().expect("cat").success());
        cases.push((raw.into(), pid, Some(raw.into())));
    }
    for raw in ["shadow", "./shadow", "/proc/self/cwd/shadow"] {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("cd /etc && exec cat {raw} > /dev/null"))
            .spawn()
            .expect("sh");
        let pid = child.id();
        assert!(child.wait().expect("sh").success());
        cases.push((format!("cd /etc; {raw}"), pid, Some(raw.into())));
    }
    let fd = openat("/etc", "shadow", libc::O_RDONLY);
    assert!(fd >= 0);
    close(fd);
    cases.push((
        "openat(/etc, shadow)".into(),
        std::process::id(),
        Some("shadow".into()),
    ));
    // Names the kernel's path filter cannot know: a symbolic link and a bind mount.
    let link = tmp.join("shadow-link");
    std::os::unix::fs::symlink("/etc/shadow", &link).expect("symlink");
    let mut child = Command::new("cat")
        .arg(&link)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("cat");
    let pid = child.id();
    assert!(child.wait().expect("cat").success());
    cases.push((link.display().to_string(), pid, None));
    // The file itself, never /etc: a mount of a system directory below a test directory is a hazard.
    let view = tmp.join("shadow-view");
    assert!(mount_bind(Path::new("/etc/shadow"), &view), "mount --bind");
    let mut child = Command::new("cat")
        .arg(&view)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("cat");
    let pid = child.id();
    assert!(child.wait().expect("cat").success());
    umount(&view);
    cases.push((view.display().to_string(), pid, None));
    for (how, pid, raw) in &cases {
        let ev = agent.wait_for("file", |e, f| {
            f["op"] == "read" && f["path"] == "/etc/shadow" && e["process"]["pid"] == *pid
        });
        let f = &ev["event"]["file"];
        match raw {
            Some(raw) if raw != "/etc/shadow" => {
                assert_eq!(f["raw_path"], raw.as_str(), "{how}: {ev}")
            }
            Some(_) => {}
            None => assert_eq!(f["syscall"], "fanotify", "{how}: {ev}"),
        }
        alert_for(&mut agent, "shadow_read", &ev);
    }
    harness::remove_tree(&tmp);
}

/// A program whose first action creates `marker-<arg>` in `dir`.
fn marker_program(dir: &Path) -> std::path::PathBuf {
    let prog = dir.join("prog");
    std::fs::write(
        &prog,
        format!("#!/bin/sh\ntouch {}/marker-\"$1\"\n", dir.display()),
    )
    .expect("program");
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    prog
}

/// Forks; the child calls `execveat(dirfd, path, [argv0, arg], [], flags)`; returns the child's pid and
/// status.
fn execveat(
    dirfd: libc::c_int,
    path: &str,
    arg: &str,
    flags: libc::c_int,
) -> (u32, std::process::ExitStatus) {
    let path = c(path);
    let argv0 = c("prog");
    let arg = c(arg);
    let argv = [argv0.as_ptr(), arg.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    // SAFETY: the child only calls execveat and _exit (async-signal-safe) on memory prepared before the
    // fork.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                dirfd,
                path.as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
                flags,
            );
            libc::_exit(127);
        }
    }
    assert!(pid > 0, "fork");
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    (pid as u32, std::process::ExitStatus::from_raw(status))
}

#[test]
fn a_kill_rule_on_exec_holds_for_every_spelling_and_the_program_never_runs() {
    let dir = temp_dir("evade-exec");
    let prog = marker_program(&dir);
    let canonical = prog.display().to_string();
    let rules = temp_dir("rules").join("kill.yaml");
    std::fs::write(
        &rules,
        format!(
            "- rule: kill_dir\n  condition: evt.kind = exec and exec.filename startswith {}/\n  output: \"killed %exec.filename\"\n  actions: [kill]\n",
            dir.display()
        ),
    )
    .expect("rules");
    let mut agent = Agent::start(&["--rules", rules.to_str().expect("utf-8")]);
    let parent = dir.parent().expect("parent").display().to_string();
    let base = dir
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let link = temp_dir("evade-exec-link").join("link");
    std::os::unix::fs::symlink(&prog, &link).expect("symlink");
    let view = temp_dir("evade-exec-view").join("mnt");
    assert!(mount_bind(&dir, &view), "mount --bind");
    // (spelling, pid, status)
    let mut runs: Vec<(String, u32, std::process::ExitStatus)> = Vec::new();
    let mut spawn = |what: &str, mut cmd: Command| {
        let mut child = cmd.spawn().expect("spawn");
        let pid = child.id();
        let status = child.wait().expect("wait");
        runs.push((what.to_owned(), pid, status));
    };
    let mut direct = Command::new(&prog);
    direct.arg("direct");
    spawn("absolute", direct);
    let mut dot = Command::new(format!("{parent}/./{base}/prog"));
    dot.arg("dot");
    spawn("dot segment", dot);
    let mut dotdot = Command::new(format!("{parent}/{base}/../{base}/prog"));
    dotdot.arg("dotdot");
    spawn("dot-dot segment", dotdot);
    let mut slashes = Command::new(format!("{parent}//{base}//prog"));
    slashes.arg("slashes");
    spawn("double slashes", slashes);
    let mut via_link = Command::new(&link);
    via_link.arg("link");
    spawn("symlink", via_link);
    let mut relative = Command::new("/bin/sh");
    relative
        .arg("-c")
        .arg(format!("cd {} && exec ./prog relative", dir.display()));
    spawn("relative", relative);
    let mut fd = Command::new("/bin/sh");
    fd.arg("-c").arg(format!(
        "exec 3<{}; exec /proc/self/fd/3 fd",
        prog.display()
    ));
    spawn("/proc/self/fd/N", fd);
    let mut bind = Command::new(view.join("prog"));
    bind.arg("bind");
    spawn("bind mount", bind);
    let (dirfd, _) = dir_fd(&dir.display().to_string());
    let (pid, status) = execveat(dirfd, "prog", "execveat", 0);
    runs.push(("execveat(dirfd, prog)".into(), pid, status));
    close(dirfd);
    let p = c(&canonical);
    // SAFETY: plain syscall on a NUL-terminated string.
    let file_fd = unsafe { libc::open(p.as_ptr(), libc::O_PATH) };
    assert!(file_fd >= 0);
    let (pid, status) = execveat(file_fd, "", "empty-path", libc::AT_EMPTY_PATH);
    runs.push(("execveat(fd, \"\", AT_EMPTY_PATH)".into(), pid, status));
    close(file_fd);
    umount(&view);
    harness::remove_tree(view.parent().expect("parent"));
    for (what, pid, status) in &runs {
        assert!(!status.success(), "{what}: the program ran ({status:?})");
        let marker = std::fs::read_dir(&dir)
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with("marker-"));
        assert_eq!(
            marker, None,
            "{what}: the program ran its first instruction"
        );
        let ev = agent.wait_for("exec", |e, _| {
            e["process"]["pid"] == *pid && e["event"]["exec"]["success"] == false
        });
        let x = &ev["event"]["exec"];
        let stopped = x["stopped_by_rule"] == "kill_dir" || x["killed_by_rule"] == 0;
        assert!(stopped, "{what}: stopped by the rule: {ev}");
        if what != "bind mount" {
            assert_eq!(
                x["filename"],
                canonical.as_str(),
                "{what}: canonical name: {ev}"
            );
        }
        agent.wait_for("action", |_, a| {
            a["rule"] == "kill_dir" && a["trigger_seq"] == ev["seq"]
        });
    }
    // A program outside the rule runs normally.
    assert!(Command::new("/bin/true").status().expect("true").success());
    harness::remove_tree(&dir);
}

#[test]
fn a_sha256_rule_kills_a_renamed_copy_and_spares_other_programs() {
    let dir = temp_dir("evade-sha");
    let prog = marker_program(&dir);
    let bytes = std::fs::read(&prog).expect("program");
    let sha: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let rules = temp_dir("rules").join("sha.yaml");
    std::fs::write(
        &rules,
        format!(
            "- rule: known_bad\n  condition: evt.kind = exec and exec.sha256 = {sha}\n  output: \"killed %exec.filename\"\n  actions: [kill]\n"
        ),
    )
    .expect("rules");
    let mut agent = Agent::start(&["--rules", rules.to_str().expect("utf-8")]);
    // Renamed copies elsewhere: a new name, a new directory, an innocent-looking name.
    let other = temp_dir("evade-sha-copies");
    let mut copies = Vec::new();
    for name in ["renamed", "ls", ".hidden"] {
        let copy = other.join(name);
        std::fs::copy(&prog, &copy).expect("copy");
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        copies.push(copy);
    }
    // The same program with one byte changed is another file: it runs.
    let changed = other.join("changed");
    std::fs::write(&changed, [bytes.as_slice(), b"\n"].concat()).expect("changed copy");
    std::fs::set_permissions(&changed, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for copy in &copies {
        let mut child = Command::new(copy).arg("copy").spawn().expect("spawn");
        let pid = child.id();
        let status = child.wait().expect("wait");
        assert_eq!(status.signal(), Some(9), "{}: {status:?}", copy.display());
        let ev = agent.wait_for("exec", |e, _| e["process"]["pid"] == pid);
        let x = &ev["event"]["exec"];
        assert_eq!(x["sha256"], sha.as_str(), "{ev}");
        assert_eq!(x["stopped_by_rule"], "known_bad", "{ev}");
        agent.wait_for("action", |_, a| {
            a["rule"] == "known_bad" && a["trigger_seq"] == ev["seq"]
        });
    }
    let ran = Command::new(&changed).arg("changed").status().expect("run");
    assert!(ran.success(), "{ran:?}");
    let markers: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("marker-"))
        .collect();
    assert_eq!(markers, ["marker-changed"], "only the changed copy ran");
    harness::remove_tree(&dir);
    harness::remove_tree(&other);
}
