//! File events: each family performed for real in a temp dir, with resolved paths; sensitive reads.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use harness::{Agent, temp_dir};
use serde_json::Value;

fn file_event(agent: &mut Agent, op: &str, path: &str) -> Value {
    let ev = agent.wait_for("file", |_, f| f["op"] == op && f["path"] == path);
    let body = ev["event"]["file"].clone();
    assert_eq!(body["resolved"], true, "{ev}");
    assert_eq!(body["success"], true, "{ev}");
    assert_eq!(ev["process"]["pid"], u64::from(std::process::id()), "{ev}");
    body
}

#[test]
fn every_file_family_is_recorded_with_its_fields() {
    let mut agent = Agent::start(&[]);
    let dir = temp_dir("files");
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();

    std::fs::write(p("a"), "one").expect("create");
    let open = file_event(&mut agent, "open", &p("a"));
    assert_eq!(open["syscall"], "openat");
    assert_ne!(
        open["flags"].as_u64().expect("flags") & 0o100,
        0,
        "O_CREAT: {open}"
    );

    std::fs::rename(p("a"), p("b")).expect("rename");
    let rename = file_event(&mut agent, "rename", &p("a"));
    assert_eq!(rename["target"], p("b"));

    std::fs::hard_link(p("b"), p("c")).expect("link");
    assert_eq!(file_event(&mut agent, "link", &p("b"))["target"], p("c"));

    std::os::unix::fs::symlink("b", p("s")).expect("symlink");
    assert_eq!(file_event(&mut agent, "symlink", &p("s"))["target"], "b");

    std::fs::set_permissions(p("b"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_eq!(file_event(&mut agent, "chmod", &p("b"))["mode"], 0o600);

    std::os::unix::fs::chown(p("b"), Some(1), Some(2)).expect("chown");
    let chown = file_event(&mut agent, "chown", &p("b"));
    assert_eq!(
        (chown["uid"].clone(), chown["gid"].clone()),
        (Value::from(1), Value::from(2))
    );

    let c = std::ffi::CString::new(p("b")).expect("path");
    // SAFETY: truncate(2) on a valid NUL-terminated path.
    assert_eq!(unsafe { libc::truncate(c.as_ptr(), 1) }, 0);
    assert_eq!(file_event(&mut agent, "truncate", &p("b"))["length"], 1);

    std::fs::create_dir(p("sub")).expect("mkdir");
    file_event(&mut agent, "mkdir", &p("sub"));
    std::fs::remove_dir(p("sub")).expect("rmdir");
    assert!(
        agent
            .wait_for("file", |_, f| f["path"] == p("sub")
                && (f["op"] == "rmdir" || f["op"] == "unlink"))
            .is_object()
    );

    let f = std::fs::File::options()
        .write(true)
        .open(p("b"))
        .expect("open");
    f.set_modified(std::time::SystemTime::UNIX_EPOCH)
        .expect("utimens");
    drop(f);
    file_event(&mut agent, "utimens", &p("b"));

    std::fs::remove_file(p("c")).expect("unlink");
    file_event(&mut agent, "unlink", &p("c"));

    // A relative path from another process is resolved against that process's cwd.
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg("cd \"$1\" && : > rel && mkdir reldir")
        .arg("sh")
        .arg(&dir)
        .status()
        .expect("sh");
    assert!(status.success());
    let rel = agent.wait_for("file", |_, f| f["op"] == "open" && f["path"] == p("rel"));
    assert_eq!(rel["event"]["file"]["resolved"], true, "{rel}");
    agent.wait_for("file", |_, f| {
        f["op"] == "mkdir" && f["path"] == p("reldir")
    });
    harness::remove_tree(&dir);
}

#[test]
fn sensitive_reads_are_recorded_and_plain_reads_are_not() {
    let mut agent = Agent::start(&[]);
    let dir = temp_dir("reads");
    let plain = dir.join("plain");
    std::fs::write(&plain, "x").expect("write");
    std::fs::read(&plain).expect("plain read");
    std::fs::read("/etc/shadow").expect("read /etc/shadow");
    let ev = agent.wait_for("file", |_, f| {
        f["op"] == "read" && f["path"] == "/etc/shadow"
    });
    assert_eq!(ev["process"]["pid"], u64::from(std::process::id()), "{ev}");
    let plain = plain.to_string_lossy().into_owned();
    assert!(
        !agent
            .seen()
            .iter()
            .any(|e| e["event"]["file"]["op"] == "read"
                && e["event"]["file"]["path"] == plain.as_str()),
        "a read-only open of a non-sensitive file was recorded"
    );
    harness::remove_tree(&dir);
}

#[test]
fn mount_and_umount_are_recorded() {
    let mut agent = Agent::start(&[]);
    let dir = temp_dir("mnt");
    let target = std::ffi::CString::new(dir.to_string_lossy().into_owned()).expect("path");
    let (src, fstype) = (c"auditloop-test", c"tmpfs");
    // SAFETY: mount(2)/umount2(2) with valid NUL-terminated strings and no data.
    unsafe {
        assert_eq!(
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                std::ptr::null()
            ),
            0
        );
        assert_eq!(libc::umount2(target.as_ptr(), 0), 0);
    }
    let path = dir.to_string_lossy().into_owned();
    let mount = file_event(&mut agent, "mount", &path);
    assert_eq!(mount["target"], "auditloop-test", "{mount}");
    file_event(&mut agent, "umount", &path);
    harness::remove_tree(&dir);
}
