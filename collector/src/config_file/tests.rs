use std::path::{Path, PathBuf};

use super::{ConfigFile, ConfigFileError, MetricsFileConfig};

const PATH: &str = "/etc/auditloop-collector/config.yaml";

fn parse(text: &str) -> Result<ConfigFile, ConfigFileError> {
    ConfigFile::parse(Path::new(PATH), text)
}

fn message(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn a_good_file_sets_every_key() {
    let file = parse(
        "listen: 0.0.0.0:8470\n\
         db: /var/lib/c.db\n\
         admin_token_file: /etc/a.token\n\
         enroll_token_file: /etc/e.token\n\
         tls_cert: /etc/c.crt\n\
         tls_key: /etc/c.key\n\
         silence_secs: 0\n\
         max_body_bytes: 1024\n\
         max_connections: 8\n\
         max_concurrent_batches: 2\n\
         lineage_window_ms: 250\n\
         metrics:\n  listen: 127.0.0.1:9465\n",
    )
    .unwrap();
    assert_eq!(file.listen.as_deref(), Some("0.0.0.0:8470"));
    assert_eq!(file.db, Some(PathBuf::from("/var/lib/c.db")));
    assert_eq!(file.admin_token_file, Some(PathBuf::from("/etc/a.token")));
    assert_eq!(file.enroll_token_file, Some(PathBuf::from("/etc/e.token")));
    assert_eq!(file.tls_cert, Some(PathBuf::from("/etc/c.crt")));
    assert_eq!(file.tls_key, Some(PathBuf::from("/etc/c.key")));
    assert_eq!(file.silence_secs, Some(0));
    assert_eq!(file.max_body_bytes, Some(1024));
    assert_eq!(file.max_connections, Some(8));
    assert_eq!(file.max_concurrent_batches, Some(2));
    assert_eq!(file.lineage_window_ms, Some(250));
    assert_eq!(
        file.metrics,
        MetricsFileConfig {
            listen: Some("127.0.0.1:9465".into())
        }
    );
}

#[test]
fn empty_and_comment_only_files_set_nothing() {
    assert_eq!(parse("").unwrap(), ConfigFile::default());
    assert_eq!(parse("# listen: x\n\n").unwrap(), ConfigFile::default());
    assert_eq!(parse("metrics:\n").unwrap(), ConfigFile::default());
}

#[test]
fn the_packaged_default_parses() {
    let text = include_str!("../../../packaging/auditloop-collector/config.yaml");
    let file = parse(text).unwrap();
    assert_eq!(file.listen.as_deref(), Some("127.0.0.1:8470"));
    assert_eq!(
        file.db,
        Some(PathBuf::from("/var/lib/auditloop-collector/collector.db"))
    );
    assert_eq!(
        file.admin_token_file,
        Some(PathBuf::from("/etc/auditloop-collector/admin.token"))
    );
    assert_eq!(
        file.enroll_token_file,
        Some(PathBuf::from("/etc/auditloop-collector/enroll.token"))
    );
    assert_eq!((file.tls_cert, file.tls_key), (None, None));
    assert_eq!(file.metrics.listen, None, "metrics are off by default");
    // The commented blocks parse when uncommented.
    let uncommented = text
        .replace("# tls_cert:", "tls_cert:")
        .replace("# tls_key:", "tls_key:")
        .replace("# metrics:", "metrics:")
        .replace("#   listen:", "  listen:")
        .replace("# groups:", "groups:")
        .replace("#   web:", "  web:")
        .replace("#   db:", "  db:")
        .replace("#     - ", "    - ");
    let file = parse(&uncommented).unwrap();
    assert!(file.tls_cert.is_some() && file.tls_key.is_some());
    assert_eq!(file.metrics.listen.as_deref(), Some("127.0.0.1:9465"));
    assert_eq!(file.groups.names(), ["db", "web"]);
}

#[test]
fn an_unknown_key_is_named_with_its_line_and_column() {
    let err = message("listen: 127.0.0.1:8470\ndb: c.db\nsilence_sec: 5\n");
    assert!(err.starts_with(&format!("{PATH}:3:1: ")), "{err}");
    assert!(err.contains("silence_sec"), "{err}");
    let err = message("metrics:\n  listen: 127.0.0.1:9465\n  lisen: x\n");
    assert!(err.starts_with(&format!("{PATH}:3:3: ")), "{err}");
    assert!(err.contains("lisen"), "{err}");
}

#[test]
fn a_wrong_type_or_range_names_the_field() {
    let err = message("db: c.db\nmax_connections: many\n");
    assert!(err.starts_with(&format!("{PATH}:2:")), "{err}");
    assert!(err.contains("max_connections"), "{err}");
    let err = message("silence_secs: -1\n");
    assert!(err.starts_with(&format!("{PATH}:1:")), "{err}");
    assert!(err.contains("silence_secs"), "{err}");
    let err = message("listen: x\nmax_body_bytes: 0\n");
    assert!(err.starts_with(&format!("{PATH}:2:")), "{err}");
    assert!(
        err.contains("max_body_bytes") && err.contains("at least 1"),
        "{err}"
    );
    let err = message("lineage_window_ms: 3600001\n");
    assert!(err.contains("lineage_window_ms"), "{err}");
    assert!(err.contains("outside 1..=3600000"), "{err}");
    let err = message("listen: x\nretention_days: 0\n");
    assert!(err.starts_with(&format!("{PATH}:2:")), "{err}");
    assert!(
        err.contains("retention_days") && err.contains("outside 1..=36500"),
        "{err}"
    );
    let err = message("metrics: 9465\n");
    assert!(err.contains("metrics"), "{err}");
}

#[test]
fn tls_needs_both_files() {
    assert_eq!(
        message("tls_cert: c.pem\n"),
        format!("{PATH}: field `tls_cert`: needs `tls_key` too")
    );
    assert_eq!(
        message("tls_key: k.pem\n"),
        format!("{PATH}: field `tls_key`: needs `tls_cert` too")
    );
}

#[test]
fn per_host_tokens_name_the_migration() {
    let err = message("hosts:\n  web-1:\n    token: abc\n");
    assert!(err.starts_with(&format!("{PATH}:")), "{err}");
    assert!(err.contains("hosts"), "{err}");
    assert!(err.contains("issue-host-tokens"), "{err}");
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.yaml");
    let err = ConfigFile::load(&missing).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: cannot read config", missing.display())),
        "{err}"
    );
}

#[test]
fn host_groups_are_read() {
    let file = parse(
        "listen: x\n\
         groups:\n  web:\n    - \"web-*\"\n    - edge-[0-9]\n  db: [db-1, db-2]\n",
    )
    .unwrap();
    assert_eq!(file.groups.names(), ["db", "web"]);
    let s = file.groups.selection(Some("web"), None).unwrap();
    assert_eq!(
        s.choose(["db-1", "edge-4", "web-9", "x"]),
        ["edge-4", "web-9"]
    );
    assert!(parse("listen: x\n").unwrap().groups.is_empty());
}

#[test]
fn bad_host_groups_name_the_line_and_column() {
    let err = message("listen: x\ngroups:\n  web:\n    - web-1\n    - \"web-[\"\n");
    assert!(err.starts_with(&format!("{PATH}:5:7:")), "{err}");
    assert!(err.contains("invalid host pattern \"web-[\""), "{err}");
    let err = message("groups:\n  web:\n    - web-1\n  \"bad name\":\n    - x\n");
    assert!(err.starts_with(&format!("{PATH}:4:3:")), "{err}");
    assert!(
        err.contains("invalid host group name \"bad name\""),
        "{err}"
    );
    let err = message("groups:\n  web: [a, \"b[\"]\n");
    assert!(err.starts_with(&format!("{PATH}:2:12:")), "{err}");
    let err = message("groups:\n  web: []\n");
    assert!(err.starts_with(&format!("{PATH}:2:")), "{err}");
    assert!(err.contains("at least one host-name pattern"), "{err}");
    let err = message("groups:\n  web: web-*\n");
    assert!(err.starts_with(&format!("{PATH}:2:")), "{err}");
    let err = message("groups:\n  web:\n    - a/b\n");
    assert!(err.starts_with(&format!("{PATH}:3:7:")), "{err}");
}
