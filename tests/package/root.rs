//! A scratch root for installing the packages: an empty directory with its own dpkg database and a
//! minimal user database, driven by `dpkg --root` with the maintainer scripts run on the host with
//! `DPKG_ROOT` set (`--force-script-chrootless`). Nothing outside the directory is touched, so the test is
//! safe on a machine the other tests (and other users) share, and a failed run leaves no package
//! installed on the host.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use harness::temp_dir;

/// The environment variable naming a package file, and the package it must hold.
pub fn deb(var: &str) -> PathBuf {
    let path = std::env::var_os(var).unwrap_or_else(|| {
        panic!(
            "{var} is not set: the package tests install the .deb files `cargo xtask package` builds \
             (`cargo xtask test` builds them and sets AUDITLOOP_DEB_AGENT and AUDITLOOP_DEB_COLLECTOR)"
        )
    });
    let path = PathBuf::from(path);
    assert!(path.is_file(), "{var}={} is not a file", path.display());
    path
}

/// A scratch root directory with a dpkg database.
pub struct ScratchRoot {
    /// The root directory.
    pub dir: PathBuf,
}

impl ScratchRoot {
    /// An empty root: `var/lib/dpkg/{status,info,updates}`, `etc/{passwd,group,shadow,gshadow}` with root
    /// and nobody only (what base-passwd gives a real system), and the host's systemd units and `kill`
    /// (what `systemd-analyze verify --root` resolves the packaged units' dependencies and `ExecReload=`
    /// against).
    pub fn new(name: &str) -> ScratchRoot {
        let dir = temp_dir(name);
        for sub in [
            "var/lib/dpkg/info",
            "var/lib/dpkg/updates",
            "var/log",
            "etc",
        ] {
            std::fs::create_dir_all(dir.join(sub)).expect("scratch root dirs");
        }
        let files: [(&str, &str, u32); 5] = [
            ("var/lib/dpkg/status", "", 0o644),
            (
                "etc/passwd",
                "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                0o644,
            ),
            ("etc/group", "root:x:0:\nnogroup:x:65534:\n", 0o644),
            (
                "etc/shadow",
                "root:*:20000:0:99999:7:::\nnobody:*:20000:0:99999:7:::\n",
                0o640,
            ),
            ("etc/gshadow", "root:*::\nnogroup:*::\n", 0o640),
        ];
        for (path, text, mode) in files {
            let path = dir.join(path);
            std::fs::write(&path, text).expect("scratch root file");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        std::fs::create_dir_all(dir.join("usr/lib/systemd")).expect("usr/lib/systemd");
        std::fs::create_dir_all(dir.join("bin")).expect("bin");
        for (from, to) in [
            ("/usr/lib/systemd/system", "usr/lib/systemd/"),
            ("/bin/kill", "bin/kill"),
        ] {
            let copied = Command::new("cp")
                .args(["-a", from])
                .arg(dir.join(to))
                .status()
                .expect("cp");
            assert!(
                copied.success(),
                "copying {from} into the scratch root (is systemd installed?)"
            );
        }
        ScratchRoot { dir }
    }

    /// `rel` (no leading `/`) below the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Runs `dpkg --root=<root> … args` and fails the test unless it succeeds; returns its output.
    /// `--force-depends`: the scratch root has no libc6 package (the host's libc serves the binaries).
    pub fn dpkg(&self, args: &[&std::ffi::OsStr]) -> Output {
        let out = Command::new("dpkg")
            .arg(format!("--root={}", self.dir.display()))
            .args(["--force-script-chrootless", "--force-depends"])
            .args(args)
            .output()
            .expect("running dpkg");
        assert!(
            out.status.success(),
            "dpkg {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `dpkg-query -W -f=<format> <package>` against the scratch database; `None` when dpkg knows no
    /// such package.
    pub fn query(&self, package: &str, format: &str) -> Option<String> {
        let out = Command::new("dpkg-query")
            .arg(format!(
                "--admindir={}",
                self.path("var/lib/dpkg").display()
            ))
            .args(["-W", &format!("-f={format}"), package])
            .output()
            .expect("running dpkg-query");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Fails unless `rel` exists with `mode` (permission bits) and owner `uid:gid`.
    pub fn assert_owned(&self, rel: &str, mode: u32, uid: u32, gid: u32) {
        let path = self.path(rel);
        let meta = std::fs::symlink_metadata(&path)
            .unwrap_or_else(|e| panic!("{} was not installed: {e}", path.display()));
        assert_eq!(
            (meta.mode() & 0o7777, meta.uid(), meta.gid()),
            (mode, uid, gid),
            "{rel}: mode {:o}, owner {}:{} (expected {mode:o}, {uid}:{gid})",
            meta.mode() & 0o7777,
            meta.uid(),
            meta.gid()
        );
    }

    /// Purges `package` and fails if any of `paths` (relative to the root) remains.
    pub fn purge_leaves_nothing(&self, package: &str, paths: &[&str]) {
        self.dpkg(&[
            std::ffi::OsStr::new("--purge"),
            std::ffi::OsStr::new(package),
        ]);
        for gone in paths {
            assert!(!self.path(gone).exists(), "{gone} remains after purge");
        }
    }

    /// Fails unless `systemd-analyze verify` accepts the unit `name` installed in the root (with the
    /// root's binaries as ExecStart=).
    pub fn verify_unit(&self, name: &str) {
        let unit = Path::new("/lib/systemd/system").join(name);
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", self.dir.display()))
            .arg(&unit)
            .output()
            .expect("systemd-analyze (systemd package)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains(name),
            "systemd-analyze verify {name} ({}):\n{}{stderr}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
    }

    /// The uid and gid of `user` in the root's own passwd file.
    pub fn user(&self, user: &str) -> Option<(u32, u32)> {
        let passwd = std::fs::read_to_string(self.path("etc/passwd")).expect("passwd");
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            match fields.as_slice() {
                [name, _, uid, gid, ..] if *name == user => {
                    Some((uid.parse().ok()?, gid.parse().ok()?))
                }
                _ => None,
            }
        })
    }

    /// Pids of the processes running the root's `rel` binary.
    pub fn running(&self, rel: &str) -> Vec<u32> {
        let bin = self.path(rel);
        std::fs::read_dir("/proc")
            .expect("/proc")
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == bin)
            })
            .collect()
    }
}

impl Drop for ScratchRoot {
    fn drop(&mut self) {
        harness::remove_tree(&self.dir);
    }
}
