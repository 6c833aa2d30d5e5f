//! `auditloop enroll`: registers this host's journal key with a collector and stores the host token.
//!
//! The token file is created before the request (`O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600), so a path that
//! cannot be written, or is a planted symlink, fails before the collector issues a token that would then be
//! lost; with `--force` the token goes to a fresh temporary file in the same directory that is renamed over
//! the old one.
//!
//! Given several collector URLs (the replicas of one collector), it tries them in order by the shipper's
//! failover rule ([`crate::ship::failover`]): a network error, 429 or 5xx moves to the next; any other answer
//! is final.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use auditloop_journal::keys::EpochKey;
use auditloop_protocol::api::{ENROLL, EnrollRequest, EnrollResponse, ErrorBody};

use crate::cli::EnrollArgs;
use crate::config::Config;
use crate::ship::failover::status_fails_over;
use crate::ship::{self, client::ClientTls};

/// Token file used when neither `--token-out` nor `ship.token_file` says otherwise.
pub const DEFAULT_TOKEN_FILE: &str = "/etc/auditloop/token";
/// How long the enrollment request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `auditloop enroll`.
pub fn run(args: &EnrollArgs) -> anyhow::Result<()> {
    let mut config = Config::load(&args.config)?;
    if !args.collector.is_empty() {
        config.ship.collector = Some(args.collector.clone());
    }
    config.ship.insecure_http |= args.insecure_http;
    if config.ship.collectors().is_empty() {
        bail!("no collector: pass --collector URL or set ship.collector");
    }
    // The same checks as `auditloop run` (each URL, duplicates, plain HTTP), naming the bad entry.
    config.ship.check(&args.config)?;
    let collectors = config.ship.collectors();
    let insecure_http = config.ship.insecure_http;
    let host_id = match args.host_id.clone().or_else(|| config.ship.host_id.clone()) {
        Some(id) => id,
        None => ship::default_host_id()?,
    };
    ship::check_host_id(&host_id)?;
    let state_dir = args.state_dir.clone().unwrap_or(config.state_dir.clone());
    let token_out = args
        .token_out
        .clone()
        .or_else(|| config.ship.token_file.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_TOKEN_FILE));
    let enroll_token = ship::read_token(&args.enroll_token_file)?;
    let genesis = genesis_key(&state_dir)?;
    let mut out = TokenFile::create(&token_out, args.force)?;
    let tls = ClientTls {
        ca_file: args.ca_file.as_deref().or(config.ship.ca_file.as_deref()),
        client_cert: config.ship.client_cert.as_deref(),
        insecure_http,
    };
    let request = EnrollRequest {
        host_id: host_id.clone(),
        genesis_public_key: hex::encode(genesis),
    };
    let (collector, answer) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(post_any(collectors, &tls, &enroll_token, &request))?;
    if answer.host_id != host_id {
        bail!(
            "the collector enrolled host `{}`, not `{host_id}`; not storing its token",
            answer.host_id
        );
    }
    out.write(&answer.token)?;
    println!(
        "enrolled host {host_id} at {collector} with journal key {}; host token written to {}",
        hex::encode(genesis),
        token_out.display()
    );
    Ok(())
}

/// The journal's genesis public key; creates the key (as the first `auditloop run` would) when there is none.
fn genesis_key(state_dir: &Path) -> anyhow::Result<[u8; 32]> {
    let path = state_dir.join("keys").join("journal.key");
    if let Some(key) = EpochKey::load(&path)? {
        return Ok(key.genesis_public());
    }
    let key = EpochKey::generate()?;
    key.store(&path)?;
    eprintln!("auditloop: created journal key {}", path.display());
    Ok(key.genesis_public())
}

/// What one collector made of the enrollment.
enum Attempt {
    /// It enrolled the host.
    Enrolled(EnrollResponse),
    /// It could not be reached, or was busy or broken: another replica may do.
    Elsewhere(String),
}

/// POSTs the enrollment to each of `collectors` in turn until one answers; returns the one that enrolled
/// the host and its answer.
async fn post_any<'c>(
    collectors: &'c [String],
    tls: &ClientTls<'_>,
    token: &str,
    request: &EnrollRequest,
) -> anyhow::Result<(&'c str, EnrollResponse)> {
    let mut failed: Vec<String> = Vec::new();
    for collector in collectors {
        match post(collector, tls, token, request, &failed).await? {
            Attempt::Enrolled(answer) => return Ok((collector.as_str(), answer)),
            Attempt::Elsewhere(why) => {
                if collectors.len() > 1 {
                    eprintln!("auditloop: {why}; trying the next collector");
                }
                failed.push(why);
            }
        }
    }
    bail!("no collector enrolled the host: {}", failed.join("; "))
}

/// POSTs the enrollment to `collector` and reads the answer. `failed` are the attempts at other collectors
/// before this one (a 409 may be an earlier attempt's doing).
async fn post(
    collector: &str,
    tls: &ClientTls<'_>,
    token: &str,
    request: &EnrollRequest,
    failed: &[String],
) -> anyhow::Result<Attempt> {
    let http = ship::client::http_client(collector, tls, TIMEOUT)?;
    let url = format!("{}{ENROLL}", collector.trim_end_matches('/'));
    let response = match http
        .post(&url)
        .bearer_auth(token)
        .json(request)
        .send()
        .await
    {
        Ok(response) => response,
        Err(e) => {
            return Ok(Attempt::Elsewhere(format!(
                "{url}: {}",
                ship::error_chain(&e)
            )));
        }
    };
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let why = || {
        serde_json::from_str::<ErrorBody>(&text)
            .map_or_else(|_| text.chars().take(300).collect(), |b| b.error)
    };
    if status_fails_over(status) {
        return Ok(Attempt::Elsewhere(format!(
            "{url}: HTTP {status}: {}",
            why()
        )));
    }
    match status {
        200 | 201 => serde_json::from_str(&text)
            .map(Attempt::Enrolled)
            .with_context(|| format!("{url}: HTTP {status} without an enrollment answer")),
        409 if !failed.is_empty() => bail!(
            "host `{}` is already enrolled at {collector}; an earlier attempt may have enrolled it \
             before failing ({}): its token is lost, so re-enrolling needs the collector's admin \
             (POST /v1/hosts with replace: true)",
            request.host_id,
            failed.join("; ")
        ),
        409 => bail!(
            "host `{}` is already enrolled at {collector}: re-enrolling an existing host needs the \
             collector's admin (POST /v1/hosts with replace: true)",
            request.host_id
        ),
        401 | 403 => bail!(
            "{url}: the collector refused the enrollment token (HTTP {status}: {})",
            why()
        ),
        _ => bail!("{url}: HTTP {status}: {}", why()),
    }
}

/// The token file being written: created empty (exclusively) before the request, filled after it.
struct TokenFile {
    path: PathBuf,
    /// Where the token is written first: `path` itself, or a temporary file renamed over it (`--force`).
    staging: PathBuf,
    file: Option<std::fs::File>,
}

impl TokenFile {
    fn create(path: &Path, force: bool) -> anyhow::Result<TokenFile> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .with_context(|| format!("{}: not a file name", path.display()))?;
        if !force && std::fs::symlink_metadata(path).is_ok() {
            bail!(
                "{} exists; pass --force to replace it (the host's current token stops working once \
                 the collector re-enrolls it)",
                path.display()
            );
        }
        let staging = if force {
            let mut tmp = name.to_os_string();
            tmp.push(format!(".enroll-{}", std::process::id()));
            dir.join(tmp)
        } else {
            path.to_owned()
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&staging)
            .with_context(|| format!("creating token file {}", staging.display()))?;
        Ok(TokenFile {
            path: path.to_owned(),
            staging,
            file: Some(file),
        })
    }

    fn write(&mut self, token: &str) -> anyhow::Result<()> {
        let mut file = self.file.take().context("token file already written")?;
        let written = (|| {
            writeln!(file, "{token}")?;
            file.sync_all()?;
            if self.staging != self.path {
                std::fs::rename(&self.staging, &self.path)?;
            }
            Ok::<(), std::io::Error>(())
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&self.staging);
        }
        written.with_context(|| format!("writing token file {}", self.path.display()))?;
        self.staging = self.path.clone();
        Ok(())
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        // Not written (the request failed): remove the empty file created for it.
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.staging);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read};
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A one-request-at-a-time HTTP server on loopback answering every request with `status` and `body`;
    /// returns its URL.
    fn answering(status: u16, body: &'static str) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let mut request = vec![0; length];
                let _ = reader.read_exact(&mut request);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        format!("http://127.0.0.1:{port}")
    }

    fn dead() -> String {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        format!("http://127.0.0.1:{port}")
    }

    fn enroll_at(collectors: &[String]) -> anyhow::Result<(String, EnrollResponse)> {
        let request = EnrollRequest {
            host_id: "h1".into(),
            genesis_public_key: "00".into(),
        };
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(post_any(collectors, &ClientTls::default(), "t", &request))
            .map(|(url, answer)| (url.to_owned(), answer))
    }

    #[test]
    fn enrollment_moves_past_dead_and_busy_collectors_but_not_past_a_refusal() {
        let enrolled = answering(201, r#"{"host_id":"h1","token":"host-token"}"#);
        let urls = [
            dead(),
            answering(503, r#"{"error":"db down"}"#),
            enrolled.clone(),
        ];
        let (url, answer) = enroll_at(&urls).unwrap();
        assert_eq!((url, answer.token.as_str()), (enrolled, "host-token"));

        let refused = answering(401, r#"{"error":"bad enrollment token"}"#);
        let never = answering(201, r#"{"host_id":"h1","token":"wrong"}"#);
        let err = enroll_at(&[refused, never]).unwrap_err().to_string();
        assert!(err.contains("refused the enrollment token"), "{err}");

        let conflict = answering(409, r#"{"error":"exists"}"#);
        let err = enroll_at(&[dead(), conflict]).unwrap_err().to_string();
        assert!(
            err.contains("an earlier attempt may have enrolled it"),
            "{err}"
        );

        let err = enroll_at(&[dead(), dead()]).unwrap_err().to_string();
        assert!(
            err.starts_with("no collector enrolled the host: http://127.0.0.1:"),
            "{err}"
        );
    }

    #[test]
    fn the_token_file_is_new_private_and_never_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let mut out = TokenFile::create(&path, false).unwrap();
        out.write("t0k3n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "t0k3n\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = TokenFile::create(&path, false).err().unwrap().to_string();
        assert!(err.contains("--force"), "{err}");
        let mut again = TokenFile::create(&path, true).unwrap();
        again.write("n3w").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "n3w\n");

        // A link planted at the token path: refused, and the file it points to is untouched.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "root-only").unwrap();
        let link = dir.path().join("link-token");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(TokenFile::create(&link, false).is_err());
        // A dangling link too (O_NOFOLLOW with O_EXCL would otherwise create the target).
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("made-by-link"), &dangling).unwrap();
        assert!(TokenFile::create(&dangling, false).is_err());
        assert!(!dir.path().join("made-by-link").exists());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root-only");

        // A request that fails leaves no empty token file behind.
        let unused = dir.path().join("unused");
        drop(TokenFile::create(&unused, false).unwrap());
        assert!(!unused.exists());
    }
}
