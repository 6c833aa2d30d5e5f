use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use super::{Settings, SettingsError};
use crate::cli::Args;
use crate::config_file::ConfigFile;
use crate::listen::Timeouts;

const REQUIRED: [&str; 6] = [
    "--listen",
    "127.0.0.1:0",
    "--db",
    "c.db",
    "--admin-token-file",
    "b",
];

fn args(flags: &[&str]) -> Args {
    Args::try_parse_from(std::iter::once("auditloop-collector").chain(flags.iter().copied()))
        .unwrap()
}

fn file(text: &str) -> ConfigFile {
    ConfigFile::parse(Path::new("c.yaml"), text).unwrap()
}

#[test]
fn flags_alone_take_the_defaults() {
    let s = Settings::merge(&args(&REQUIRED), ConfigFile::default()).unwrap();
    assert_eq!(s.listen, "127.0.0.1:0");
    assert_eq!(s.db, PathBuf::from("c.db"));
    assert_eq!(s.admin_token_file, PathBuf::from("b"));
    assert_eq!(s.enroll_token_file, None);
    assert_eq!(s.max_body_bytes, 16 * 1024 * 1024);
    assert_eq!(s.silence(), Some(Duration::from_secs(300)));
    assert_eq!(s.max_connections, 1024);
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(s.max_concurrent_batches, 4 * cores);
    assert_eq!(s.lineage().window_ns, 5_000_000_000);
    assert_eq!(s.metrics_listen, None);
    let listen = s.listen_options().unwrap();
    assert!(listen.tls.is_none());
    assert_eq!(listen.timeouts, Timeouts::default());
}

#[test]
fn the_file_alone_is_enough() {
    let s = Settings::merge(
        &args(&["--config", "c.yaml"]),
        file(
            "listen: 127.0.0.1:8470\ndb: /var/c.db\nadmin_token_file: /etc/a\nsilence_secs: 0\n\
             max_concurrent_batches: 3\nlineage_window_ms: 250\nmetrics:\n  listen: 127.0.0.1:9465\n",
        ),
    )
    .unwrap();
    assert_eq!(s.listen, "127.0.0.1:8470");
    assert_eq!(s.db, PathBuf::from("/var/c.db"));
    assert_eq!(s.admin_token_file, PathBuf::from("/etc/a"));
    assert_eq!(s.silence(), None);
    assert_eq!(s.max_concurrent_batches, 3);
    assert_eq!(s.lineage().window_ns, 250_000_000);
    assert_eq!(s.metrics_listen.as_deref(), Some("127.0.0.1:9465"));
}

#[test]
fn flags_override_the_file() {
    let file = file(
        "listen: 127.0.0.1:8470\ndb: /var/c.db\nadmin_token_file: /etc/a\nenroll_token_file: /etc/e\n\
         silence_secs: 10\nmax_body_bytes: 100\nmax_connections: 5\nlineage_window_ms: 250\n\
         metrics:\n  listen: 127.0.0.1:9465\n",
    );
    let s = Settings::merge(
        &args(&[
            "--config",
            "c.yaml",
            "--listen",
            "0.0.0.0:1",
            "--db",
            "other.db",
            "--silence-secs",
            "0",
            "--max-body-bytes",
            "200",
            "--metrics-listen",
            "127.0.0.1:1",
            "--header-read-timeout",
            "2s",
        ]),
        file,
    )
    .unwrap();
    assert_eq!(s.listen, "0.0.0.0:1");
    assert_eq!(s.db, PathBuf::from("other.db"));
    assert_eq!(s.silence(), None);
    assert_eq!(s.max_body_bytes, 200);
    assert_eq!(s.metrics_listen.as_deref(), Some("127.0.0.1:1"));
    assert_eq!(s.timeouts.header_read, Duration::from_secs(2));
    // What no flag gave comes from the file.
    assert_eq!(s.admin_token_file, PathBuf::from("/etc/a"));
    assert_eq!(s.enroll_token_file, Some(PathBuf::from("/etc/e")));
    assert_eq!(s.max_connections, 5);
    assert_eq!(s.lineage_window_ms, 250);
}

#[test]
fn a_missing_required_setting_is_named() {
    let err = Settings::merge(
        &args(&["--listen", "x", "--db", "c.db"]),
        ConfigFile::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            SettingsError::Missing {
                key: "admin_token_file",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "missing setting `admin_token_file`: give --admin-token-file, or `admin_token_file` in a --config file"
    );
    let err = Settings::merge(
        &args(&["--config", "/etc/c.yaml"]),
        file("db: c.db\nadmin_token_file: a\n"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "missing setting `listen`: give --listen, or set `listen` in /etc/c.yaml"
    );
    let err = Settings::merge(&args(&["--listen", "x"]), ConfigFile::default()).unwrap_err();
    assert!(err.to_string().contains("`db`: give --db"), "{err}");
}

#[test]
fn tls_needs_both_files_wherever_they_come_from() {
    let with = |extra: &[&str], file_text: &str| {
        let mut flags = REQUIRED.to_vec();
        flags.extend_from_slice(extra);
        Settings::merge(&args(&flags), file(file_text))
    };
    let err = with(&["--tls-cert", "c.pem"], "").unwrap_err().to_string();
    assert_eq!(err, "--tls-cert needs --tls-key too");
    let err = with(&["--tls-key", "k.pem"], "").unwrap_err().to_string();
    assert_eq!(err, "--tls-key needs --tls-cert too");
    // A flag overrides one of the file's pair; the other comes from the file.
    let s = with(
        &["--tls-cert", "new.pem"],
        "tls_cert: old.pem\ntls_key: k.pem\n",
    )
    .unwrap();
    assert_eq!(
        s.tls,
        Some((PathBuf::from("new.pem"), PathBuf::from("k.pem")))
    );
    // The TLS files are read when the options are built, and a missing one is named.
    let s = with(
        &["--tls-cert", "/nonexistent/c.pem", "--tls-key", "k.pem"],
        "",
    )
    .unwrap();
    let Err(err) = s.listen_options() else {
        panic!("a missing certificate file is an error");
    };
    assert!(err.to_string().starts_with("/nonexistent/c.pem"), "{err}");
}

#[test]
fn resolve_reads_the_file_and_names_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        "listen: 127.0.0.1:0\ndb: c.db\nadmin_token_file: a\nmax_conections: 4\n",
    )
    .unwrap();
    let config = path.to_str().unwrap();
    let err = Settings::resolve(&args(&["--config", config]))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with(&format!("{config}:4:1: ")), "{err}");
    assert!(err.contains("max_conections"), "{err}");
    std::fs::write(
        &path,
        "listen: 127.0.0.1:0\ndb: c.db\nadmin_token_file: a\n",
    )
    .unwrap();
    let s = Settings::resolve(&args(&["--config", config])).unwrap();
    assert_eq!(s.listen, "127.0.0.1:0");
}
