//! Rollback against a hostile directory owner: the user `nobody` owns the directory of a watched file,
//! plants symbolic links at the names a rollback might use (all pointing to a root-only file outside),
//! changes the file, or swaps a directory on the watched path for a link. The rollback rule must restore
//! the watched file with its recorded owner and mode and never write through a link; where the path itself
//! leads through a link it must refuse and say so.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use harness::{Agent, temp_dir};
use serde_json::Value;

/// The numeric id `id <flag> nobody` prints (`-u` uid, `-g` its primary group).
fn nobody_id(flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, "nobody"])
        .output()
        .expect("id");
    assert!(out.status.success(), "no user nobody on this machine");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("numeric id")
}

/// Runs `script` with `sh -c` as `nobody` (no supplementary groups); fails the test if it fails.
fn as_nobody(script: &str) {
    let out = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "sh",
            "-c",
            script,
        ])
        .output()
        .expect("setpriv (util-linux)");
    assert!(
        out.status.success(),
        "as nobody: {script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Content, owner, group and permission bits of the file at `path` (not following a link there).
fn snapshot(path: &Path) -> (Vec<u8>, u32, u32, u32) {
    let meta = std::fs::symlink_metadata(path).expect("stat");
    assert!(
        meta.file_type().is_file(),
        "{} is not a regular file",
        path.display()
    );
    let bytes = std::fs::read(path).expect("read");
    (bytes, meta.uid(), meta.gid(), meta.mode() & 0o7777)
}

/// A root-only file (0600 root:root) with known content, in a root-only directory of its own.
fn root_only_file(name: &str) -> (PathBuf, (Vec<u8>, u32, u32, u32)) {
    let dir = temp_dir(name);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let file = dir.join("secret");
    std::fs::write(&file, b"root-only: do not touch\n").expect("secret");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::os::unix::fs::chown(&file, Some(0), Some(0)).expect("chown");
    let before = snapshot(&file);
    (file, before)
}

/// A rules file with one rule rolling back changes of `file`.
fn rollback_rules(file: &Path) -> PathBuf {
    let rules = temp_dir("rules").join("rollback.yaml");
    std::fs::write(
        &rules,
        format!(
            "- rule: restore_watched\n  desc: t\n  condition: evt.kind = config_change and change.path = {}\n  output: \"restoring %change.path\"\n  severity: critical\n  actions: [alert, rollback]\n",
            file.display()
        ),
    )
    .expect("rules");
    rules
}

fn rollback_of(agent: &mut Agent, file: &Path) -> Value {
    let path = file.to_str().expect("utf-8").to_owned();
    let ev = agent.wait_for("action", |_, a| {
        a["action"] == "rollback" && a["path"] == path.as_str()
    });
    ev["event"]["action"].clone()
}

#[test]
fn rollback_never_writes_through_links_planted_by_the_directory_owner() {
    let (uid, gid) = (nobody_id("-u"), nobody_id("-g"));
    let (secret, secret_before) = root_only_file("rootonly");
    let base = temp_dir("hostile");
    let dir = base.join("conf");
    std::fs::create_dir(&dir).expect("dir");
    std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown dir to nobody");
    let file = dir.join("sshd_config");
    let good = b"Port 22\nPermitRootLogin no\n".to_vec();
    std::fs::write(&file, &good).expect("good content");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    std::os::unix::fs::chown(&file, Some(0), Some(0)).expect("chown");
    let rules = rollback_rules(&file);
    let config = format!("watch:\n  paths: [{}]\n", file.display());
    let mut agent = Agent::start_with_config(&config, &["--rules", rules.to_str().expect("utf-8")]);

    // Links at the old fixed temp name, at other likely names, and at a few hundred more.
    let mut names: Vec<String> = [
        ".sshd_config.auditloop-rollback",
        ".auditloop-rollback",
        ".sshd_config.tmp",
        "sshd_config.tmp",
        "sshd_config.new",
        "sshd_config~",
        ".tmp-0",
    ]
    .map(String::from)
    .to_vec();
    names.extend((0..300).map(|i| format!(".auditloop-rollback-{i:032x}")));
    names.extend((0..100).map(|i| format!(".sshd_config.{i}")));
    let links: String = names
        .iter()
        .map(|n| format!("ln -s {} {}/{n}\n", secret.display(), dir.display()))
        .collect();
    as_nobody(&links);
    // The change, as nobody: a new file renamed over the watched one (now owned by nobody, 0644).
    as_nobody(&format!(
        "printf 'Port 22\\nPermitRootLogin yes\\n' > {d}/.edit && chmod 644 {d}/.edit && mv -f {d}/.edit {f}",
        d = dir.display(),
        f = file.display()
    ));
    let action = rollback_of(&mut agent, &file);
    assert_eq!(
        snapshot(&secret),
        secret_before,
        "the root-only file behind the planted links was written, chmodded or chowned: {action}"
    );
    assert_eq!(action["ok"], true, "{action}");
    assert_eq!(
        snapshot(&file),
        (good, 0, 0, 0o640),
        "restored byte for byte with the recorded owner root:root and mode 0640: {action}"
    );
    for name in &names {
        let link = std::fs::read_link(dir.join(name)).expect("planted link still there");
        assert_eq!(link, secret, "{name}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("list")
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()) && e.path() != file)
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    harness::remove_tree(&base);
    harness::remove_tree(secret.parent().expect("dir"));
}

#[test]
fn rollback_refuses_when_a_directory_on_the_path_became_a_link() {
    let (uid, gid) = (nobody_id("-u"), nobody_id("-g"));
    let (secret, secret_before) = root_only_file("rootonly");
    let outside = secret.parent().expect("dir").to_owned();
    // The watched file is `<base>/conf/app.conf`, and nobody owns `<base>`.
    let base = temp_dir("hostile");
    std::os::unix::fs::chown(&base, Some(uid), Some(gid)).expect("chown base to nobody");
    let dir = base.join("conf");
    std::fs::create_dir(&dir).expect("dir");
    let file = dir.join("secret");
    let good = b"known good\n".to_vec();
    std::fs::write(&file, &good).expect("good content");
    let rules = rollback_rules(&file);
    let rules_arg = rules.to_str().expect("utf-8");
    let state = temp_dir("state");
    let state_arg = state.to_str().expect("utf-8");
    let config = format!("watch:\n  paths: [{}]\n", file.display());
    // First run: the store learns the good content.
    let agent =
        Agent::start_with_config(&config, &["--rules", rules_arg, "--state-dir", state_arg]);
    let (status, _) = agent.stop_with(libc::SIGTERM);
    assert!(status.success(), "{status:?}");

    // While the agent is down, nobody swaps the directory for a link to the root-only directory.
    as_nobody(&format!(
        "mv {d} {d}.old && ln -s {o} {d}",
        d = dir.display(),
        o = outside.display()
    ));
    let mut agent =
        Agent::start_with_config(&config, &["--rules", rules_arg, "--state-dir", state_arg]);
    let action = rollback_of(&mut agent, &file);
    assert_eq!(
        snapshot(&secret),
        secret_before,
        "the file behind the directory link was overwritten: {action}"
    );
    assert_eq!(action["ok"], false, "the rollback must refuse: {action}");
    let detail = action["detail"].as_str().expect("detail");
    assert!(
        detail.contains("symbolic link") && detail.contains(dir.to_str().expect("utf-8")),
        "the failure names the link: {detail}"
    );
    let change = agent.wait_for("config_change", |_, c| {
        c["path"] == file.to_str().expect("utf-8")
    });
    let change = &change["event"]["config_change"];
    assert_eq!(
        change["link_target"],
        outside.to_str().expect("utf-8"),
        "{change}"
    );
    assert_eq!(
        change["new_sha256"],
        Value::Null,
        "never read through the link: {change}"
    );
    assert!(
        std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()),
        "the link is left as it is"
    );
    harness::remove_tree(&base);
    harness::remove_tree(&outside);
    harness::remove_tree(&state);
}
