//! Process events beyond exec: setuid family, kill of another process, ptrace, PR_SET_NAME, memfd_create
//! and exec from a memfd.

use std::io::Write;
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use harness::{Agent, marker};

#[test]
fn setuid_kill_ptrace_and_rename() {
    let mut agent = Agent::start(&[]);
    let me = u64::from(std::process::id());

    let status = Command::new("/bin/true")
        .uid(65534)
        .gid(65534)
        .status()
        .expect("run as nobody");
    assert!(status.success());
    let ev = agent.wait_for("setid", |_, s| {
        s["syscall"] == "setuid" && s["ids"][0] == 65534
    });
    assert_eq!(ev["event"]["setid"]["success"], true, "{ev}");

    let mut sleeper = Command::new("/bin/sleep").arg("30").spawn().expect("sleep");
    let pid = libc::pid_t::try_from(sleeper.id()).expect("pid");
    // SAFETY: plain syscalls on our own child.
    unsafe {
        assert_eq!(libc::kill(pid, 0), 0);
        assert_eq!(libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0), 0);
    }
    let kill = agent.wait_for("kill", |e, k| {
        e["process"]["pid"] == me && k["target_pid"] == i64::from(pid)
    });
    assert_eq!(kill["event"]["kill"]["signal"], 0, "{kill}");
    let ptrace = agent.wait_for("ptrace", |_, p| p["target_pid"] == i64::from(pid));
    assert_eq!(
        ptrace["event"]["ptrace"]["request_name"], "PTRACE_SEIZE",
        "{ptrace}"
    );
    sleeper.kill().expect("kill sleep");
    let _ = sleeper.wait();

    let name = "al-renamed";
    std::thread::spawn(move || {
        let cname = std::ffi::CString::new(name).expect("name");
        // SAFETY: PR_SET_NAME with a valid NUL-terminated string renames this thread only.
        unsafe { libc::prctl(libc::PR_SET_NAME, cname.as_ptr(), 0, 0, 0) };
    })
    .join()
    .expect("thread");
    agent.wait_for("set_name", |e, s| {
        e["process"]["pid"] == me && s["name"] == name
    });
}

#[test]
fn exec_from_memfd_is_flagged() {
    let mut agent = Agent::start(&[]);
    let name = marker("memfd");
    let cname = std::ffi::CString::new(name.clone()).expect("name");
    // SAFETY: memfd_create with a valid name; no MFD_CLOEXEC so the child inherits it.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), 0) };
    assert!(fd >= 0, "memfd_create");
    // SAFETY: `fd` is a fresh descriptor owned here.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.write_all(&std::fs::read("/bin/true").expect("read /bin/true"))
        .expect("fill memfd");
    let status = Command::new(format!("/proc/self/fd/{fd}"))
        .status()
        .expect("exec memfd");
    assert!(status.success());
    let created = agent.wait_for("memfd_create", |_, m| m["name"] == name.as_str());
    assert_eq!(created["event"]["memfd_create"]["ret"], fd, "{created}");
    let ev = agent.wait_for("exec", |_, x| {
        x["filename"] == format!("/proc/self/fd/{fd}").as_str()
    });
    assert_eq!(ev["event"]["exec"]["from_memfd"], true, "{ev}");
    assert_eq!(ev["process"]["exe"], format!("/memfd:{name}"), "{ev}");
}
