//! Tests of the process table against this machine's `/proc` and against fake `/proc` trees: ancestry
//! chains and their bounds, unknown ancestors, login identity and the SSH client of processes under sshd.

use super::*;

/// A fake `/proc/<pid>` with a stat line (ppid, tty_nr, start in ticks), an exe link and login files.
fn fake_proc(root: &Path, pid: u32, comm: &str, ppid: u32, tty: i64, start_ticks: u64) {
    let dir = root.join(pid.to_string());
    std::fs::create_dir_all(dir.join("fd")).unwrap();
    std::fs::write(
        dir.join("stat"),
        format!("{pid} ({comm}) S {ppid} {pid} {pid} {tty} 0 0 0 0 0 0 0 0 0 0 20 0 1 0 {start_ticks} 0 0"),
    )
    .unwrap();
    std::os::unix::fs::symlink(format!("/usr/bin/{comm}"), dir.join("exe")).unwrap();
}

#[test]
fn scans_this_machines_proc() {
    let mut t = ProcessTable::new(1 << 16, Path::new("/proc"));
    assert!(t.scan().unwrap() > 0);
    let me = std::process::id();
    let parent = std::os::unix::process::parent_id();
    assert_eq!(t.ppid(me), parent);
    let chain = t.ancestors(me);
    assert_eq!(chain.first().map(|a| a.pid), Some(parent));
    assert!(chain.iter().all(|a| !a.unknown), "{chain:?}");
    let start = t.get(me).and_then(|i| i.start).unwrap();
    let now = WallTime::now().0;
    assert!(
        start.0 <= now && now - start.0 < 3_600_000_000_000,
        "{start:?}"
    );
}

#[test]
fn fork_exit_and_eviction() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = ProcessTable::new(2, dir.path());
    t.on_fork(1, 100, None);
    t.on_fork(1, 101, None);
    assert_eq!(t.ppid(100), 1);
    t.on_fork(101, 102, None);
    assert_eq!(t.len(), 2);
    assert_eq!(t.ppid(100), 0, "oldest evicted, not in fake /proc");
    assert_eq!(t.on_exit(102).map(|i| i.ppid), Some(101));
    assert_eq!(t.ppid(102), 0);
}

#[test]
fn fork_inherits_and_exec_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = ProcessTable::new(8, dir.path());
    t.on_fork(0, 1, None);
    t.on_exec(1, "/bin/sh".into(), vec!["sh".into()], "sh".into(), None);
    t.on_chdir(1, "/tmp".into());
    t.on_set_euid(1, 0);
    t.on_fork(1, 2, Some(WallTime(50)));
    let child = t.get(2).cloned().unwrap();
    assert_eq!(
        (child.ppid, child.exe.as_str(), child.cwd.as_deref()),
        (1, "/bin/sh", Some("/tmp"))
    );
    assert_eq!(child.start, Some(WallTime(50)));
    t.on_exec(
        2,
        "/usr/bin/passwd".into(),
        vec![],
        "passwd".into(),
        Some(0),
    );
    assert_eq!(t.get(2).unwrap().euid, Some(0));
    assert_eq!(
        parse_status_euid("Name:\tx\nUid:\t1000\t0\t0\t0\n"),
        Some(0)
    );
}

#[test]
fn falls_back_to_proc() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("55")).unwrap();
    std::fs::write(dir.path().join("55/stat"), "55 (sh) S 9 55 55").unwrap();
    let mut t = ProcessTable::new(8, dir.path());
    assert_eq!(t.ppid(55), 9);
    assert_eq!(t.len(), 1);
}

/// `n` processes, each forked by the one before and exec'ing `prog<i>`, pids 1000, 1001, ….
fn chain_of(t: &mut ProcessTable, n: u32) {
    for i in 0..n {
        let pid = 1000 + i;
        t.on_fork(pid - 1, pid, Some(WallTime(u64::from(i) * 10)));
        t.on_exec(
            pid,
            format!("/usr/bin/prog{i}"),
            vec![format!("prog{i}"), "x".repeat(1000)],
            format!("prog{i}"),
            None,
        );
    }
}

#[test]
fn ancestry_is_a_bounded_chain_of_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = ProcessTable::new(64, dir.path());
    chain_of(&mut t, 20);
    let chain = t.ancestors(1019);
    assert_eq!(chain.len(), 16, "at most the configured depth");
    let pids: Vec<u32> = chain.iter().map(|a| a.pid).collect();
    assert_eq!(pids, (1003..=1018).rev().collect::<Vec<_>>());
    let parent = &chain[0];
    assert_eq!(
        (parent.exe.as_str(), parent.comm.as_str(), parent.start),
        ("/usr/bin/prog18", "prog18", Some(WallTime(180)))
    );
    assert_eq!(parent.argv[0], "prog18");
    let bytes: usize = parent.argv.iter().map(String::len).sum();
    assert_eq!(bytes, ANCESTOR_ARGV_BYTES, "argv is cut");
    // The exec event's compact chain: 4 nearest, no argv.
    let compact = t.exec_ancestors(1019);
    assert_eq!(compact.len(), 4);
    assert!(compact.iter().all(|a| a.argv.is_empty()));
    assert_eq!(compact[1].exe, "/usr/bin/prog17");
    // The first process of the chain descends from pid 999, which the agent never saw.
    let top = t.ancestors(1000);
    assert_eq!(top.len(), 1);
    assert!(top[0].unknown && top[0].pid == 999 && top[0].exe.is_empty());
    assert_eq!(top[0].name(), None);
    let second = t.ancestors(1002);
    assert_eq!(
        second.iter().map(|a| a.pid).collect::<Vec<_>>(),
        [1001, 1000, 999]
    );
    assert!(second[2].unknown, "the chain ends at the unknown ancestor");
    // Depth is configurable; an ancestor that exits stays in its descendants' chains.
    t.set_ancestry(3, 2);
    t.on_exit(1018);
    t.on_fork(1019, 1020, None);
    let chain = t.ancestors(1020);
    assert_eq!(
        chain.iter().map(|a| a.pid).collect::<Vec<_>>(),
        [1019, 1018, 1017]
    );
    assert_eq!(t.exec_ancestors(1020).len(), 2);
}

#[test]
fn the_table_stays_bounded_under_a_fork_storm() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = ProcessTable::new(64, dir.path());
    chain_of(&mut t, 3000);
    assert!(t.len() <= 64, "{}", t.len());
    for pid in 2936..3000 {
        assert!(t.ancestors(1000 + pid).len() <= 16);
    }
}

#[test]
fn a_reused_parent_pid_is_unknown_not_guessed() {
    let dir = tempfile::tempdir().unwrap();
    // pid 70's parent 60 is in /proc, but it started after 70 did: another process now has that pid.
    fake_proc(dir.path(), 60, "bash", 1, 0, 5_000);
    fake_proc(dir.path(), 70, "sleep", 60, 0, 1_000);
    let mut t = ProcessTable::new(8, dir.path());
    let chain = t.ancestors(70);
    assert_eq!(chain.len(), 1);
    assert!(chain[0].unknown && chain[0].pid == 60);
    // A genuine parent (older than its child) is known, and its own parent (pid 1) is looked up too.
    fake_proc(dir.path(), 80, "sh", 60, 0, 6_000);
    fake_proc(dir.path(), 1, "init", 0, 0, 1);
    let chain = t.ancestors(80);
    let got: Vec<(u32, Option<&str>)> = chain.iter().map(|a| (a.pid, a.name())).collect();
    assert_eq!(got, [(60, Some("bash")), (1, Some("init"))]);
}

#[test]
fn login_identity_is_read_once_and_inherited() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fake_proc(root, 1, "init", 0, 0, 1);
    fake_proc(root, 10, "bash", 1, (136 << 8) | 2, 100);
    std::fs::write(root.join("10/loginuid"), "1000").unwrap();
    std::fs::write(root.join("10/sessionid"), "7").unwrap();
    let passwd = root.join("passwd");
    std::fs::write(&passwd, "alice:x:1000:1000::/home/alice:/bin/bash\n").unwrap();
    let mut t = ProcessTable::new(16, root);
    t.set_passwd(&passwd);
    t.scan().unwrap();
    let mut p = Process {
        pid: 10,
        comm: "bash".into(),
        ..Process::default()
    };
    t.fill(&mut p);
    assert_eq!((p.loginuid, p.sessionid), (Some(1000), Some(7)));
    assert_eq!((p.loginname.as_str(), p.tty.as_str()), ("alice", "pts/2"));
    assert_eq!((p.ppid, p.exe.as_str()), (1, "/usr/bin/bash"));
    assert_eq!(p.lineage.ancestors.first().map(|a| a.pid), Some(1));
    // Read once: a later change of the file is not seen until the process execs.
    std::fs::write(root.join("10/loginuid"), "0").unwrap();
    let mut again = Process {
        pid: 10,
        ..Process::default()
    };
    t.fill(&mut again);
    assert_eq!(again.loginuid, Some(1000));
    t.on_exec(10, "/usr/bin/su".into(), vec![], "su".into(), None);
    let mut after = Process {
        pid: 10,
        ..Process::default()
    };
    t.fill(&mut after);
    assert_eq!((after.loginuid, after.loginname.as_str()), (Some(0), ""));
    // A child gone from /proc before its first event keeps its parent's identity.
    t.on_fork(10, 11, None);
    let mut child = Process {
        pid: 11,
        ..Process::default()
    };
    t.fill(&mut child);
    assert_eq!((child.loginuid, child.sessionid), (Some(0), Some(7)));
    // Unset ids are absent.
    std::fs::write(root.join("10/loginuid"), "4294967295").unwrap();
    std::fs::write(root.join("10/sessionid"), "4294967295").unwrap();
    t.on_exec(10, "/bin/sh".into(), vec![], "sh".into(), None);
    let mut unset = Process {
        pid: 10,
        ..Process::default()
    };
    t.fill(&mut unset);
    assert_eq!((unset.loginuid, unset.sessionid), (None, None));
}

#[test]
fn processes_under_sshd_carry_the_ssh_client() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fake_proc(root, 1, "init", 0, 0, 1);
    fake_proc(root, 20, "sshd", 1, 0, 10);
    fake_proc(root, 30, "sshd-session", 20, 0, 20);
    // Its executable: a name that says sshd-session for a file root installed (this system's /bin/true).
    let links = root.join("links");
    std::fs::create_dir(&links).unwrap();
    std::os::unix::fs::symlink("/bin/true", links.join("sshd-session")).unwrap();
    std::fs::remove_file(root.join("30/exe")).unwrap();
    std::os::unix::fs::symlink(links.join("sshd-session"), root.join("30/exe")).unwrap();
    // The session sshd holds a unix socket (fd 3) and the client connection (fd 4); a forwarded
    // connection on fd 9 comes later.
    for (fd, inode) in [(3, 500), (4, 501), (9, 502)] {
        std::os::unix::fs::symlink(
            format!("socket:[{inode}]"),
            root.join(format!("30/fd/{fd}")),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink("/dev/null", root.join("30/fd/0")).unwrap();
    std::fs::create_dir(root.join("30/net")).unwrap();
    std::fs::write(
        root.join("30/net/tcp"),
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
         0: 0200000A:0016 0500000A:C350 01 00000000:00000000 00:00000000 00000000     0        0 501 1 0 20 4 30 10 -1\n\
         1: 0200000A:8000 0600000A:0050 01 00000000:00000000 00:00000000 00000000     0        0 502 1 0 20 4 30 10 -1\n",
    )
    .unwrap();
    let mut t = ProcessTable::new(16, root);
    t.scan().unwrap();
    t.on_fork(30, 40, None);
    t.on_exec(
        40,
        "/bin/bash".into(),
        vec!["-bash".into()],
        "bash".into(),
        None,
    );
    let mut shell = Process {
        pid: 40,
        ..Process::default()
    };
    t.fill(&mut shell);
    assert_eq!(
        (shell.ssh_client_address.as_str(), shell.ssh_client_port),
        ("10.0.0.5", Some(50000))
    );
    // Its descendants inherit it (no /proc entry needed) ...
    t.on_fork(40, 41, None);
    let mut grandchild = Process {
        pid: 41,
        ..Process::default()
    };
    t.fill(&mut grandchild);
    assert_eq!(grandchild.ssh_client_port, Some(50000));
    // ... and a process outside sshd has none.
    let mut init = Process {
        pid: 1,
        ..Process::default()
    };
    t.fill(&mut init);
    assert!(init.ssh_client_address.is_empty() && init.ssh_client_port.is_none());
}

#[test]
fn an_sshd_anyone_could_have_written_speaks_for_no_client() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fake_proc(root, 1, "init", 0, 0, 1);
    fake_proc(root, 30, "sshd", 1, 0, 20);
    // A copy named sshd that anyone may rewrite, holding an established connection.
    let copy = root.join("sshd");
    std::fs::copy("/bin/true", &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::remove_file(root.join("30/exe")).unwrap();
    std::os::unix::fs::symlink(&copy, root.join("30/exe")).unwrap();
    std::os::unix::fs::symlink("socket:[501]", root.join("30/fd/4")).unwrap();
    std::fs::create_dir(root.join("30/net")).unwrap();
    std::fs::write(
        root.join("30/net/tcp"),
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
         0: 0200000A:0016 0500000A:C350 01 00000000:00000000 00:00000000 00000000     0        0 501 1 0 20 4 30 10 -1\n",
    )
    .unwrap();
    let mut t = ProcessTable::new(16, root);
    t.scan().unwrap();
    t.on_fork(30, 40, None);
    let mut shell = Process {
        pid: 40,
        ..Process::default()
    };
    t.fill(&mut shell);
    assert_eq!(shell.ppid, 30);
    assert!(
        shell.ssh_client_address.is_empty() && shell.ssh_client_port.is_none(),
        "{shell:?}"
    );
}
