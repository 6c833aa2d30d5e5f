//! Behaviour tests of config-file watching, on files in temporary directories (never `/etc`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use proptest::collection::vec;
use proptest::prelude::{ProptestConfig, any, prop_assert_eq, proptest};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::watch::{ChangeKind, ContentStore, Limits, WatchList, normalize};

pub(super) fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A store under `<tmp>/state/content` and a directory `<tmp>/etc` for watched files.
pub(super) fn setup() -> (TempDir, ContentStore, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let store = ContentStore::open(&tmp.path().join("state/content")).unwrap();
    let etc = tmp.path().join("etc");
    fs::create_dir(&etc).unwrap();
    (tmp, store, etc)
}

#[test]
fn new_file() {
    let (_tmp, mut store, etc) = setup();
    let file = etc.join("passwd");
    fs::write(&file, "root:x:0:0\n").unwrap();
    let change = store.observe(&file).unwrap().unwrap();
    assert_eq!(change.kind(), ChangeKind::Created);
    assert_eq!(change.old_sha256, None);
    assert_eq!(
        change.new_sha256.as_deref(),
        Some(sha(b"root:x:0:0\n").as_str())
    );
    assert_eq!(change.size, 11);
    assert_eq!(change.uid, nix::unistd::getuid().as_raw());
    let diff = change.diff.unwrap();
    assert!(diff.starts_with("--- /dev/null\n"), "{diff}");
    assert!(diff.contains("\n+root:x:0:0\n"), "{diff}");
    // Observing again without a change reports nothing.
    assert_eq!(store.observe(&file).unwrap(), None);
    assert_eq!(store.last_known(&file).unwrap().unwrap(), b"root:x:0:0\n");
}

#[test]
fn edit() {
    let (_tmp, mut store, etc) = setup();
    let file = etc.join("sshd_config");
    let old = b"Port 22\nold line\nUsePAM yes\n";
    let new = b"Port 22\nnew line\nUsePAM yes\n";
    fs::write(&file, old).unwrap();
    store.observe(&file).unwrap();
    fs::write(&file, new).unwrap();
    let change = store.observe(&file).unwrap().unwrap();
    assert_eq!(change.kind(), ChangeKind::Modified);
    assert_eq!(change.old_sha256, Some(sha(old)));
    assert_eq!(change.new_sha256, Some(sha(new)));
    let diff = change.diff.unwrap();
    let name = file.to_str().unwrap().trim_start_matches('/');
    assert!(
        diff.starts_with(&format!("--- a/{name}\n+++ b/{name}\n")),
        "{diff}"
    );
    assert!(diff.contains("\n-old line\n"), "{diff}");
    assert!(diff.contains("\n+new line\n"), "{diff}");
    assert!(!change.diff_truncated);
    assert_eq!(store.last_known(&file).unwrap().unwrap(), new);
    // The old content stays reachable by its hash, for rollback.
    assert_eq!(store.blob(&sha(old)).unwrap().unwrap(), old);
}

#[test]
fn rename_over() {
    let (tmp, mut store, etc) = setup();
    let file = etc.join("sudoers");
    fs::write(&file, "root ALL=(ALL) ALL\n").unwrap();
    store.observe(&file).unwrap();
    let staged = tmp.path().join("sudoers.tmp");
    fs::write(
        &staged,
        "root ALL=(ALL) ALL\nevil ALL=(ALL) NOPASSWD: ALL\n",
    )
    .unwrap();
    fs::set_permissions(&staged, fs::Permissions::from_mode(0o440)).unwrap();
    fs::rename(&staged, &file).unwrap();
    let change = store.observe(&file).unwrap().unwrap();
    assert_eq!(change.kind(), ChangeKind::Modified);
    assert_eq!(change.mode, 0o440);
    assert!(
        change
            .diff
            .unwrap()
            .contains("\n+evil ALL=(ALL) NOPASSWD: ALL\n")
    );
}

#[test]
fn truncate_to_zero() {
    let (_tmp, mut store, etc) = setup();
    let file = etc.join("crontab");
    fs::write(&file, "* * * * * root true\n").unwrap();
    store.observe(&file).unwrap();
    fs::File::create(&file).unwrap();
    let change = store.observe(&file).unwrap().unwrap();
    assert_eq!(change.new_sha256, Some(sha(b"")));
    assert_eq!(change.size, 0);
    assert!(change.diff.unwrap().contains("\n-* * * * * root true\n"));
    assert_eq!(store.last_known(&file).unwrap().unwrap(), b"");
}

#[test]
fn delete() {
    let (_tmp, mut store, etc) = setup();
    let file = etc.join("group");
    fs::write(&file, "wheel:x:10:\n").unwrap();
    store.observe(&file).unwrap();
    fs::remove_file(&file).unwrap();
    let change = store.observe(&file).unwrap().unwrap();
    assert_eq!(change.kind(), ChangeKind::Deleted);
    assert_eq!(change.old_sha256, Some(sha(b"wheel:x:10:\n")));
    assert_eq!(change.new_sha256, None);
    assert_eq!(
        (change.size, change.mode, change.uid, change.gid),
        (0, 0, 0, 0)
    );
    assert!(change.diff.unwrap().contains("+++ /dev/null\n"));
    assert_eq!(store.last_known(&file).unwrap(), None);
    assert_eq!(store.observe(&file).unwrap(), None);
    // Recreated: a new file again.
    fs::write(&file, "wheel:x:10:\n").unwrap();
    assert_eq!(store.observe(&file).unwrap().unwrap().old_sha256, None);
}

#[test]
fn never_existed_is_no_change() {
    let (_tmp, mut store, etc) = setup();
    assert_eq!(store.observe(&etc.join("absent")).unwrap(), None);
    assert_eq!(store.observe(&etc.join("absent/below")).unwrap(), None);
}

#[test]
fn binary_file_has_no_diff() {
    let (_tmp, mut store, etc) = setup();
    let file = etc.join("blob");
    fs::write(&file, b"text\n").unwrap();
    store.observe(&file).unwrap();
    let binary = b"\x7fELF\0\x01\x02\xff";
    fs::write(&file, binary).unwrap();
    let change = store.observe(&file).unwrap().unwrap();
    assert_eq!(change.new_sha256, Some(sha(binary)));
    assert_eq!(change.diff, None);
    assert_eq!(store.last_known(&file).unwrap().unwrap(), binary);
}

#[test]
fn metadata_only_change() {
    let (_tmp, mut store, etc) = setup();
    let file = etc.join("shadow");
    fs::write(&file, "root:*:1::::::\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    store.observe(&file).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let change = store.observe(&file).unwrap().unwrap();
    assert_eq!(change.kind(), ChangeKind::MetadataChanged);
    assert_eq!(change.mode, 0o644);
    assert_eq!(change.diff, None);
}

#[test]
fn restart_persistence() {
    let (tmp, mut store, etc) = setup();
    let file = etc.join("passwd");
    fs::write(&file, "before\n").unwrap();
    store.observe(&file).unwrap();
    drop(store);
    let mut store = ContentStore::open(&tmp.path().join("state/content")).unwrap();
    assert_eq!(store.last_known(&file).unwrap().unwrap(), b"before\n");
    fs::write(&file, "after\n").unwrap();
    let change = store.observe(&file).unwrap().unwrap();
    assert_eq!(change.old_sha256, Some(sha(b"before\n")));
    assert!(change.diff.unwrap().contains("\n-before\n+after\n"));
}

#[test]
fn directory_watch() {
    let (tmp, mut store, etc) = setup();
    let dir = etc.join("sudoers.d");
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(dir.join("admins"), "%admin ALL=(ALL) ALL\n").unwrap();
    fs::write(dir.join("sub/nested"), "ignored\n").unwrap();
    let list = WatchList::new([dir.clone(), etc.join("passwd")]);
    assert!(list.is_watched(&dir.join("admins")));
    assert!(list.is_watched(&dir.join("./x/../admins")));
    assert!(list.is_watched(&etc.join("passwd")));
    assert!(!list.is_watched(&dir.join("sub/nested")));
    assert!(!list.is_watched(&etc.join("group")));

    let report = store.snapshot_all(&list);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(report.was_empty);
    assert_eq!(
        report.examined, 1,
        "passwd does not exist, sub/ is not a file"
    );
    assert_eq!(report.changes.len(), 1);
    assert!(store.last_known(&dir.join("admins")).unwrap().is_some());
    assert_eq!(store.last_known(&dir.join("sub/nested")).unwrap(), None);

    // Changes while the agent was down show at the next start.
    drop(store);
    fs::remove_file(dir.join("admins")).unwrap();
    fs::write(dir.join("backdoor"), "evil ALL=(ALL) NOPASSWD: ALL\n").unwrap();
    let mut store = ContentStore::open(&tmp.path().join("state/content")).unwrap();
    let report = store.snapshot_all(&list);
    assert!(!report.was_empty);
    let mut kinds: Vec<_> = report
        .changes
        .iter()
        .map(|c| (c.path.file_name().unwrap().to_owned(), c.kind()))
        .collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        kinds,
        [
            ("admins".into(), ChangeKind::Deleted),
            ("backdoor".into(), ChangeKind::Created)
        ]
    );
}

#[test]
fn large_file_is_hashed_not_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_blob_bytes: 1024,
        ..Limits::default()
    };
    let mut store = ContentStore::open_with_limits(&tmp.path().join("content"), limits).unwrap();
    let file = tmp.path().join("big");
    let big = vec![b'a'; 1025];
    fs::write(&file, &big).unwrap();
    let change = store.observe(&file).unwrap().unwrap();
    assert_eq!(change.new_sha256, Some(sha(&big)));
    assert_eq!(change.size, 1025);
    assert_eq!(change.diff, None);
    assert_eq!(store.last_known(&file).unwrap(), None);
    assert_eq!(store.blob(&sha(&big)).unwrap(), None);
    assert_eq!(store.observe(&file).unwrap(), None);
    // Exactly at the limit is stored.
    fs::write(&file, &big[..1024]).unwrap();
    store.observe(&file).unwrap().unwrap();
    assert_eq!(store.last_known(&file).unwrap().unwrap(), &big[..1024]);
}

#[test]
fn long_diff_is_cut_at_a_line() {
    let tmp = tempfile::tempdir().unwrap();
    let limits = Limits {
        diff_max_chars: 200,
        ..Limits::default()
    };
    let mut store = ContentStore::open_with_limits(&tmp.path().join("content"), limits).unwrap();
    let file = tmp.path().join("cron");
    fs::write(&file, "").unwrap();
    store.observe(&file).unwrap();
    let lines: String = (0..100).map(|i| format!("line {i}\n")).collect();
    fs::write(&file, lines).unwrap();
    let change = store.observe(&file).unwrap().unwrap();
    assert!(change.diff_truncated);
    let diff = change.diff.unwrap();
    assert!(diff.len() <= 200 && diff.ends_with('\n'), "{diff}");
}

#[test]
fn failed_blob_write_keeps_previous_entry() {
    let (tmp, mut store, etc) = setup();
    let file = etc.join("passwd");
    fs::write(&file, "good\n").unwrap();
    store.observe(&file).unwrap();
    let blobs = tmp.path().join("state/content/blobs");
    let parked = tmp.path().join("parked");
    fs::rename(&blobs, &parked).unwrap();
    fs::write(&blobs, "not a directory").unwrap();
    fs::write(&file, "bad\n").unwrap();
    let err = store.observe(&file).unwrap_err();
    assert!(err.to_string().contains("passwd"), "{err}");
    fs::remove_file(&blobs).unwrap();
    fs::rename(&parked, &blobs).unwrap();
    assert_eq!(store.last_known(&file).unwrap().unwrap(), b"good\n");
    // The next observation still compares against the good content.
    let change = store.observe(&file).unwrap().unwrap();
    assert_eq!(change.old_sha256, Some(sha(b"good\n")));
}

#[test]
fn corrupt_blob_is_an_error_not_wrong_bytes() {
    let (tmp, mut store, etc) = setup();
    let file = etc.join("passwd");
    fs::write(&file, "good\n").unwrap();
    store.observe(&file).unwrap();
    let blob = tmp.path().join("state/content/blobs").join(sha(b"good\n"));
    fs::write(&blob, "evil\n").unwrap();
    let err = store.last_known(&file).unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
    // Observing the unchanged file repairs the blob.
    fs::remove_file(&blob).unwrap();
    assert_eq!(store.observe(&file).unwrap(), None);
    assert_eq!(store.last_known(&file).unwrap().unwrap(), b"good\n");
}

#[test]
fn not_a_regular_file_is_an_error() {
    let (_tmp, mut store, etc) = setup();
    let fifo = etc.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let err = store.observe(&fifo).unwrap_err();
    assert!(err.to_string().contains("fifo"), "{err}");
}

#[test]
fn store_is_private() {
    let (tmp, mut store, etc) = setup();
    let file = etc.join("shadow");
    fs::write(&file, "secret\n").unwrap();
    store.observe(&file).unwrap();
    let root = tmp.path().join("state/content");
    for dir in ["", "blobs", "index"] {
        let mode = fs::metadata(root.join(dir)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{dir}");
    }
    let blob = root.join("blobs").join(sha(b"secret\n"));
    assert_eq!(
        fs::metadata(blob).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn default_paths_and_normalize() {
    let list = WatchList::new(WatchList::default_paths());
    assert!(list.is_watched(Path::new("/etc/passwd")));
    assert!(list.is_watched(Path::new("/etc/sudoers.d/90-cloud")));
    assert!(list.is_watched(Path::new("/etc//ssh/./sshd_config")));
    assert!(!list.is_watched(Path::new("/etc/ssh/ssh_config")));
    assert!(!list.is_watched(Path::new("/etc/systemd/system/multi-user.target.wants/x")));
    assert!(!list.is_watched(Path::new("/")));
    assert_eq!(normalize(Path::new("/etc/../../a/./b/")), Path::new("/a/b"));
    assert_eq!(normalize(Path::new("../a/../../b")), Path::new("../../b"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn observe_then_last_known_returns_exact_bytes(
        first in vec(any::<u8>(), 0..2048),
        second in vec(any::<u8>(), 0..2048),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = ContentStore::open(&tmp.path().join("content")).unwrap();
        let file = tmp.path().join("watched");
        for content in [&first, &second] {
            fs::write(&file, content).unwrap();
            store.observe(&file).unwrap();
            prop_assert_eq!(store.last_known(&file).unwrap(), Some(content.clone()));
        }
    }
}
