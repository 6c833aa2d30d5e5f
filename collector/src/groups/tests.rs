use super::{GroupError, HostGroups, HostPattern};

fn groups() -> HostGroups {
    HostGroups::from_pairs([
        ("web", &["web-*", "edge-[0-9]"][..]),
        ("db", &["db-{a,b}"][..]),
    ])
    .unwrap()
}

#[test]
fn patterns_match_whole_names() {
    let p = HostPattern::new("web-*").unwrap();
    assert!(p.matches("web-1"));
    assert!(!p.matches("xweb-1"));
    assert!(!p.matches("Web-1"), "case-sensitive");
    assert!(HostPattern::new("edge-[0-9]").unwrap().matches("edge-3"));
}

#[test]
fn bad_patterns_and_names_are_refused() {
    for bad in ["", "web-[", "a/b", "x\ny"] {
        assert!(
            matches!(HostPattern::new(bad), Err(GroupError::BadPattern { .. })),
            "{bad:?}"
        );
    }
    let err = HostGroups::from_pairs([("we b", &["x"][..])]).unwrap_err();
    assert_eq!(err, GroupError::BadName("we b".into()));
    let err = HostGroups::from_pairs([("web", &[][..])]).unwrap_err();
    assert_eq!(err, GroupError::Empty("web".into()));
}

#[test]
fn a_group_chooses_its_hosts() {
    let names = ["db-a", "db-c", "edge-1", "web-1", "web-2"];
    let s = groups().selection(Some("web"), None).unwrap();
    assert_eq!(s.choose(names), ["edge-1", "web-1", "web-2"]);
    let s = groups().selection(Some("db"), None).unwrap();
    assert_eq!(s.choose(names), ["db-a"]);
    let s = groups().selection(None, Some("*-1")).unwrap();
    assert_eq!(s.choose(names), ["edge-1", "web-1"]);
}

#[test]
fn a_pattern_never_widens_a_group() {
    let names = ["db-a", "edge-1", "web-1", "web-2"];
    let s = groups().selection(Some("web"), Some("*")).unwrap();
    assert_eq!(s.choose(names), ["edge-1", "web-1", "web-2"]);
    let s = groups().selection(Some("web"), Some("db-*")).unwrap();
    assert!(s.choose(names).is_empty());
    let s = groups().selection(Some("web"), Some("web-2")).unwrap();
    assert_eq!(s.choose(names), ["web-2"]);
    assert_eq!(s.describe(), "group web, hosts=web-2");
}

#[test]
fn unknown_groups_and_empty_selections_say_what_exists() {
    let err = groups().selection(Some("dbs"), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown host group \"dbs\" (configured: db, web)"
    );
    let err = HostGroups::default()
        .selection(Some("web"), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no host groups are configured"), "{err}");
    assert_eq!(
        groups().selection(None, None).unwrap_err(),
        GroupError::NoSelection
    );
}
