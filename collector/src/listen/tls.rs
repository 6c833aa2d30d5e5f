//! The collector's TLS configuration: a PEM certificate chain and its private key, read once at start and
//! served with rustls (TLS 1.2 and 1.3, HTTP/1.1). Every error names the file and what is wrong with it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why the certificate or key cannot be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("{}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The certificate file holds no PEM certificate, or a garbled one.
    #[error("{}: not a PEM certificate chain: {why}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The key file holds no PEM private key (PKCS#8, PKCS#1 or SEC1), or a garbled one.
    #[error("{}: not a PEM private key: {why}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The key does not belong to the certificate, or rustls cannot use the pair.
    #[error("{} with {}: {why}", cert.display(), key.display())]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        why: String,
    },
}

/// The TLS acceptor serving the chain in `cert` (leaf first) with the private key in `key`.
pub fn load_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let chain = read_chain(cert)?;
    let private_key = read_key(key)?;
    let pair = |why: String| TlsError::Pair {
        cert: cert.to_owned(),
        key: key.to_owned(),
        why,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| pair(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                pair("the private key is not the certificate's (their public keys differ)".into())
            }
            e => pair(e.to_string()),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        path: path.to_owned(),
        error,
    })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |why: String| TlsError::Certificate {
        path: path.to_owned(),
        why,
    };
    let chain = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if chain.is_empty() {
        return Err(bad("no CERTIFICATE block".into()));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|e| TlsError::Key {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::TlsError;

    fn load_acceptor(cert: &Path, key: &Path) -> Result<(), TlsError> {
        super::load_acceptor(cert, key).map(drop)
    }

    fn write_pair(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert_file = dir.join(format!("{name}.crt"));
        let key_file = dir.join(format!("{name}.key"));
        std::fs::write(&cert_file, cert.cert.pem()).unwrap();
        std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }

    #[test]
    fn a_matching_pair_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "a");
        load_acceptor(&cert, &key).unwrap();
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "a");
        let (_, other_key) = write_pair(dir.path(), "b");
        let missing = dir.path().join("missing.pem");
        let text = |e: TlsError| e.to_string();

        let err = text(load_acceptor(&missing, &key).unwrap_err());
        assert!(err.starts_with(&missing.display().to_string()), "{err}");
        let err = text(load_acceptor(&cert, &missing).unwrap_err());
        assert!(err.starts_with(&missing.display().to_string()), "{err}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not pem at all\n").unwrap();
        let err = load_acceptor(&garbage, &key).unwrap_err();
        assert!(matches!(err, TlsError::Certificate { .. }), "{err}");
        assert!(text(err).starts_with(&garbage.display().to_string()));
        let err = load_acceptor(&cert, &garbage).unwrap_err();
        assert!(matches!(err, TlsError::Key { .. }), "{err}");
        assert!(text(err).starts_with(&garbage.display().to_string()));

        // A key given as the certificate, and a certificate given as the key.
        let err = load_acceptor(&key, &key).unwrap_err();
        assert!(matches!(err, TlsError::Certificate { .. }), "{err}");
        let err = load_acceptor(&cert, &cert).unwrap_err();
        assert!(matches!(err, TlsError::Key { .. }), "{err}");

        let err = load_acceptor(&cert, &other_key).unwrap_err();
        let TlsError::Pair { why, .. } = &err else {
            panic!("expected a mismatch: {err}");
        };
        assert_eq!(
            why,
            "the private key is not the certificate's (their public keys differ)"
        );
        let err = text(err);
        assert!(
            err.contains(&cert.display().to_string())
                && err.contains(&other_key.display().to_string()),
            "{err}"
        );
    }
}
