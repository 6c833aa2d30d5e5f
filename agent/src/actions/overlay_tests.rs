//! Drill overlays: confinement of the staged file, the rules' narrowing, staging and expiry.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::actions::overlay::{OverlayError, OverlayRequest, Overlays, compile, confine};
use crate::watch::{ContentStore, StagedPaths};
use auditloop_model::EventBody;

fn drill_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("auditloop-drill-t")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let file = dir.path().join("sshd_config");
    std::fs::write(&file, b"x\n").unwrap();
    (dir, file)
}

#[test]
fn only_files_in_a_private_drill_directory_are_confined() {
    let (dir, file) = drill_dir();
    assert_eq!(confine(&file).unwrap(), file);
    let refused = |p: &Path| matches!(confine(p), Err(OverlayError::NotConfined { .. }));
    assert!(refused(Path::new("/etc/ssh/sshd_config")));
    assert!(refused(&dir.path().join("../etc/passwd")));
    assert!(refused(&dir.path().join("./sshd_config")));
    assert!(refused(Path::new("sshd_config")));
    let link = dir.path().join("link");
    std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
    assert!(refused(&link));
    let hard = dir.path().join("hard");
    std::fs::hard_link(&file, &hard).unwrap();
    assert!(refused(&hard), "a second link is refused");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(refused(&file), "a directory others can read is refused");
}

#[test]
fn rules_are_renamed_narrowed_and_may_only_alert_and_roll_back() {
    let file = Path::new("/tmp/auditloop-drill-t/sshd_config");
    let text = "- rule: r\n  desc: d\n  condition: evt.kind = config_change\n  output: o\n  actions: [alert, rollback]\n";
    let set = compile(text, file).unwrap();
    let rule = &set.rules()[0];
    assert_eq!(rule.name(), "drill:r");
    let kill = text.replace("rollback", "kill");
    assert!(matches!(compile(&kill, file), Err(OverlayError::Rules(_))));
    let seq = format!("{text}  sequence: {{}}\n");
    assert!(matches!(compile(&seq, file), Err(OverlayError::Rules(_))));
    assert!(matches!(compile("[]", file), Err(OverlayError::Rules(_))));
}

#[test]
fn a_condition_cannot_escape_its_narrowing() {
    let file = Path::new("/tmp/auditloop-drill-t/sshd_config");
    // Parenthesis games that would turn `(C) and narrowing` into `A or (B and narrowing)`.
    for condition in [
        "evt.kind = exec) or (evt.kind = exec",
        "evt.kind = exec) or evt.kind = exec or (evt.kind = exec",
    ] {
        let text = format!("- rule: r\n  condition: \"{condition}\"\n  output: o\n");
        assert!(
            matches!(compile(&text, file), Err(OverlayError::Rules(_))),
            "{condition}"
        );
    }
    // A condition that holds for every event still only matches changes of the staged file.
    let text = "- rule: r\n  condition: evt.kind = exec or evt.kind != exec\n  output: o\n";
    let set = compile(text, file).unwrap();
    let mut ev = auditloop_model::Event {
        seq: 1,
        time: auditloop_model::WallTime(1),
        mono_ns: 1,
        process: auditloop_model::Process::default(),
        event: EventBody::Exec(auditloop_model::Exec::default()),
    };
    assert_eq!(
        set.matches(&ev).count(),
        0,
        "an exec is no change of the file"
    );
    ev.event = EventBody::ConfigChange(auditloop_model::ConfigChange {
        path: "/etc/ssh/sshd_config".into(),
        ..auditloop_model::ConfigChange::default()
    });
    assert_eq!(set.matches(&ev).count(), 0, "another file's change");
    ev.event = EventBody::ConfigChange(auditloop_model::ConfigChange {
        path: file.display().to_string(),
        ..auditloop_model::ConfigChange::default()
    });
    assert_eq!(set.matches(&ev).count(), 1, "the staged file's change");
}

#[test]
fn an_overlay_watches_its_file_until_removed_or_its_time_passes() {
    let (_dir, file) = drill_dir();
    let store_dir = tempfile::tempdir().unwrap();
    let mut store = ContentStore::open(store_dir.path()).unwrap();
    let paths = StagedPaths::default();
    let mut overlays = Overlays::new(paths.clone());
    let request = OverlayRequest {
        file: file.clone(),
        rules: "- rule: r\n  desc: d\n  condition: evt.kind = config_change\n  output: o\n  actions: [alert, rollback]\n".into(),
        ttl_secs: 5,
    };
    let now = std::time::Instant::now();
    let (staged, body) = overlays.stage(&request, Some(&mut store), now).unwrap();
    assert_eq!(staged.rules, ["drill:r"]);
    let EventBody::ConfigLoaded(loaded) = body else {
        panic!("a config_loaded record");
    };
    assert!(
        loaded.reason.starts_with("drill_overlay_staged"),
        "{}",
        loaded.reason
    );
    assert!(paths.contains(&file));
    assert_eq!(
        store.last_known(&file).unwrap().unwrap(),
        b"x\n",
        "known-good recorded"
    );
    assert!(matches!(
        overlays.stage(&request, Some(&mut store), now),
        Err(OverlayError::Limit(_))
    ));
    let long = OverlayRequest {
        ttl_secs: 601,
        ..request.clone()
    };
    assert!(matches!(
        overlays.stage(&long, Some(&mut store), now),
        Err(OverlayError::Limit(_))
    ));
    assert!(
        overlays
            .expire(now + std::time::Duration::from_secs(4))
            .is_empty()
    );
    let ended = overlays.expire(now + std::time::Duration::from_secs(5));
    let [EventBody::ConfigLoaded(removed)] = ended.as_slice() else {
        panic!("one removal record: {ended:?}");
    };
    assert!(
        removed.reason.contains("time to live passed"),
        "{}",
        removed.reason
    );
    assert!(!paths.contains(&file));
    assert!(matches!(
        overlays.remove(staged.id),
        Err(OverlayError::Unknown(_))
    ));
}
