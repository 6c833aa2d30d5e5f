//! Behaviour tests of config-file watching against hostile files, in temporary directories (never
//! `/etc`): symbolic links on watched paths (recorded, never followed), the previous version's recorded
//! owner and mode, and secret files whose changes carry no content.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tempfile::TempDir;

use crate::watch::tests::{setup, sha};
use crate::watch::{ChangeKind, ContentStore, Redaction, WatchList};

#[test]
fn old_version_metadata_is_recorded_per_version() {
    let (_tmp, mut store, etc) = setup();
    let file = etc.join("sudoers");
    fs::write(&file, "root ALL=(ALL) ALL\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o440)).unwrap();
    let created = store.observe(&file).unwrap().unwrap();
    assert_eq!(
        (created.old_mode, created.old_uid, created.old_gid),
        (None, None, None)
    );
    fs::remove_file(&file).unwrap();
    fs::write(&file, "evil ALL=(ALL) NOPASSWD: ALL\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
    let change = store.observe(&file).unwrap().unwrap();
    let me = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    assert_eq!(change.mode, 0o666);
    assert_eq!(
        (change.old_mode, change.old_uid, change.old_gid),
        (Some(0o440), Some(me.0), Some(me.1))
    );
    fs::remove_file(&file).unwrap();
    let gone = store.observe(&file).unwrap().unwrap();
    assert_eq!(gone.kind(), ChangeKind::Deleted);
    assert_eq!(gone.old_mode, Some(0o666));
}

#[test]
fn a_watched_file_turned_link_is_a_change_never_followed() {
    let (tmp, mut store, etc) = setup();
    let secret = tmp.path().join("root-only");
    fs::write(&secret, "do not read\n").unwrap();
    let file = etc.join("sshd_config");
    fs::write(&file, "Port 22\n").unwrap();
    store.observe(&file).unwrap();
    fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(&secret, &file).unwrap();
    let change = store.observe(&file).unwrap().unwrap();
    assert_eq!(change.kind(), ChangeKind::Link);
    assert_eq!(change.link_target.as_deref(), secret.to_str());
    assert_eq!(change.old_sha256, Some(sha(b"Port 22\n")));
    assert_eq!(change.new_sha256, None, "the link is not followed");
    assert_eq!(change.diff, None);
    // The link is known now: no change until it changes.
    assert_eq!(store.observe(&file).unwrap(), None);
    assert_eq!(store.last_known(&file).unwrap(), None);
    fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink("elsewhere", &file).unwrap();
    let retarget = store.observe(&file).unwrap().unwrap();
    assert_eq!(retarget.link_target.as_deref(), Some("elsewhere"));
    assert_eq!(retarget.old_sha256, None, "a link has no content");
    // Back to a file: created, with no content side.
    fs::remove_file(&file).unwrap();
    fs::write(&file, "Port 22\n").unwrap();
    let back = store.observe(&file).unwrap().unwrap();
    assert_eq!(back.kind(), ChangeKind::Created);
    assert!(back.diff.unwrap().starts_with("--- /dev/null\n"));
}

#[test]
fn a_directory_on_the_path_turned_link_is_not_followed() {
    let (tmp, mut store, etc) = setup();
    let conf = etc.join("ssh");
    fs::create_dir(&conf).unwrap();
    let file = conf.join("sshd_config");
    fs::write(&file, "Port 22\n").unwrap();
    store.observe(&file).unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("sshd_config"), "secret outside\n").unwrap();
    fs::rename(&conf, etc.join("ssh.old")).unwrap();
    std::os::unix::fs::symlink(&outside, &conf).unwrap();
    let change = store.observe(&file).unwrap().unwrap();
    assert_eq!(change.link_target.as_deref(), outside.to_str());
    assert_eq!(change.new_sha256, None);
    assert_eq!(change.diff, None, "nothing is read through the link");
    assert_eq!(store.observe(&file).unwrap(), None);
}

#[test]
fn snapshot_records_links_without_following_them() {
    let (tmp, mut store, etc) = setup();
    let dir = etc.join("cron.d");
    fs::create_dir(&dir).unwrap();
    let outside = tmp.path().join("outside");
    fs::write(&outside, "* * * * * root evil\n").unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("job")).unwrap();
    let report = store.snapshot_all(&WatchList::new([dir.clone()]));
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.changes.len(), 1);
    assert_eq!(report.changes[0].link_target.as_deref(), outside.to_str());
    assert_eq!(store.blob(&sha(b"* * * * * root evil\n")).unwrap(), None);
    // Known and unchanged at the next start.
    let report = store.snapshot_all(&WatchList::new([dir]));
    assert!(report.changes.is_empty(), "{:?}", report.changes);
}

fn redacting_store(tmp: &TempDir, entries: &[&str]) -> ContentStore {
    let redaction = Redaction::new(entries.iter().copied()).unwrap();
    ContentStore::open(&tmp.path().join("state/content"))
        .unwrap()
        .with_redaction(redaction)
}

#[test]
fn a_redacted_file_changes_without_content() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("shadow");
    let mut store = redacting_store(&tmp, &[file.to_str().unwrap()]);
    let old = "root:$6$salt$ROOTHASH:1::::::\nalice:$6$salt$OLDHASH:1::::::\n";
    fs::write(&file, old).unwrap();
    let created = store.observe(&file).unwrap().unwrap();
    assert!(created.redacted);
    assert_eq!(created.diff, None);
    assert_eq!(created.changed_entries, ["alice", "root"]);
    let new = "root:$6$salt$ROOTHASH:1::::::\nalice:$6$salt$NEWHASH:2::::::\n";
    fs::write(&file, new).unwrap();
    let change = store.observe(&file).unwrap().unwrap();
    assert!(change.redacted);
    assert_eq!(change.diff, None);
    assert!(!change.diff_truncated);
    assert_eq!(change.changed_entries, ["alice"]);
    assert_eq!(
        (change.old_sha256, change.new_sha256),
        (Some(sha(old.as_bytes())), Some(sha(new.as_bytes())))
    );
    let text = serde_json::to_string(&store.observe(&file).unwrap()).unwrap();
    assert!(!text.contains("HASH"), "{text}");
    // The store keeps the content (0600), for rollback.
    assert_eq!(
        store.blob(&sha(old.as_bytes())).unwrap().unwrap(),
        old.as_bytes()
    );
    let blob = tmp
        .path()
        .join("state/content/blobs")
        .join(sha(new.as_bytes()));
    assert_eq!(
        fs::metadata(blob).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Deleted: still no content.
    fs::remove_file(&file).unwrap();
    let gone = store.observe(&file).unwrap().unwrap();
    assert_eq!((gone.redacted, gone.diff), (true, None));
    assert_eq!(gone.changed_entries, ["alice", "root"]);
}

#[test]
fn a_private_key_is_redacted_wherever_it_is() {
    let (_tmp, mut store, etc) = setup();
    let file = etc.join("deploy.conf");
    fs::write(&file, "user = deploy\n").unwrap();
    assert!(!store.observe(&file).unwrap().unwrap().redacted);
    let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n";
    fs::write(&file, key).unwrap();
    let change = store.observe(&file).unwrap().unwrap();
    assert!(change.redacted);
    assert_eq!(change.diff, None);
    assert!(change.changed_entries.is_empty(), "not a name:… format");
    // The key going away is redacted too: the old side would show it.
    fs::write(&file, "user = deploy\n").unwrap();
    let change = store.observe(&file).unwrap().unwrap();
    assert_eq!((change.redacted, change.diff), (true, None));
}

#[test]
fn default_shadow_paths_are_redacted() {
    let list = Redaction::new([]).unwrap();
    assert!(list.covers(Path::new("/etc/shadow")));
    assert!(list.covers(Path::new("/etc/ssh/ssh_host_rsa_key")));
    assert!(!list.covers(Path::new("/etc/ssh/ssh_host_rsa_key.pub")));
}

#[test]
fn watch_redact_is_read_and_checked_where_written() {
    let path = Path::new("/etc/auditloop/config.yaml");
    let config = crate::config::Config::parse(path, "watch:\n  redact: [/srv/*.key]\n").unwrap();
    assert_eq!(config.watch.redact, ["/srv/*.key"]);
    assert_eq!(
        crate::config::Config::default().watch.redact,
        Redaction::default_patterns()
    );
    let err = crate::config::Config::parse(path, "watch:\n  redact: [srv/key]\n").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("/etc/auditloop/config.yaml:2:") && text.contains("srv/key"),
        "{text}"
    );
}
