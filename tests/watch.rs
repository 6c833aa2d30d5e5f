//! Config watch: an edit, an editor-style rename-over and a truncate of a watched file each give a
//! `config_change` with the exact old and new SHA-256 and, for text, a diff.

use std::io::Write;

use harness::{Agent, temp_dir};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn change(agent: &mut Agent, path: &str, new: &[u8]) -> Value {
    let want = sha(new);
    let ev = agent.wait_for("config_change", |_, c| {
        c["path"] == path && c["new_sha256"] == want.as_str()
    });
    ev["event"]["config_change"].clone()
}

#[test]
fn edit_rename_over_and_truncate_of_a_watched_file() {
    let watched = temp_dir("watched");
    let file = watched.join("app.conf");
    let path = file.to_string_lossy().into_owned();
    let v1 = b"port 22\nlog info\n".to_vec();
    std::fs::write(&file, &v1).expect("initial content");
    let config = format!("watch:\n  paths: [{}]\n", watched.display());
    let mut agent = Agent::start_with_config(&config, &[]);

    // In-place edit: open for write, write, close.
    let v2 = b"port 2222\nlog info\n".to_vec();
    let mut f = std::fs::File::create(&file).expect("open for write");
    f.write_all(&v2).expect("write");
    drop(f);
    let c = change(&mut agent, &path, &v2);
    assert_eq!(c["old_sha256"], sha(&v1), "{c}");
    assert_eq!(c["trigger"], "close_write", "{c}");
    let diff = c["diff"].as_str().expect("text diff");
    assert!(
        diff.contains("-port 22\n") && diff.contains("+port 2222\n"),
        "{diff}"
    );

    // Editor style: write a temp file next to it, rename it over the watched file.
    let v3 = b"port 2222\nlog debug\n".to_vec();
    let tmp = watched.join(".app.conf.swp");
    std::fs::write(&tmp, &v3).expect("temp file");
    std::fs::rename(&tmp, &file).expect("rename over");
    let c = change(&mut agent, &path, &v3);
    assert_eq!(c["old_sha256"], sha(&v2), "{c}");
    assert_eq!(c["trigger"], "rename", "{c}");

    // Truncate to zero by path.
    let cpath = std::ffi::CString::new(path.clone()).expect("path");
    // SAFETY: truncate(2) on a valid NUL-terminated path.
    assert_eq!(unsafe { libc::truncate(cpath.as_ptr(), 0) }, 0);
    let c = change(&mut agent, &path, b"");
    assert_eq!(c["old_sha256"], sha(&v3), "{c}");
    assert_eq!(c["size"], 0, "{c}");
    assert_eq!(c["process"], Value::Null);

    // The content store keeps the last known content on disk.
    let blob = agent.dir.join("state/content/blobs").join(sha(&v3));
    assert_eq!(std::fs::read(&blob).expect("blob of v3"), v3);
    harness::remove_tree(&watched);
}
