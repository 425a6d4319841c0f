//! TLS between clients and the proxy (`--tls-cert`, `--tls-key`): rustls with the `ring`
//! provider, HTTP/1.1 offered by ALPN.
//!
//! Basic sends passwords in clear text; with TLS to the proxy (curl's `--proxy https://`,
//! Chromium's `HTTPS` proxy scheme) nobody between the client and the proxy reads them. A
//! CONNECT tunnel inside such a connection is TLS inside TLS when the target is `https`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why the TLS set-up failed; Display names the file.
#[derive(Debug)]
pub enum TlsError {
    /// The certificate file cannot be read, or holds no PEM certificate.
    Certificate { path: PathBuf, reason: String },
    /// The key file cannot be read, or holds no PEM private key.
    Key { path: PathBuf, reason: String },
    /// rustls refused the pair (a key that does not match the certificate, an unsupported key).
    Config {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Certificate { path, reason } => {
                write!(f, "--tls-cert {}: {reason}", path.display())
            }
            Self::Key { path, reason } => write!(f, "--tls-key {}: {reason}", path.display()),
            Self::Config { cert, key, reason } => write!(
                f,
                "--tls-cert {} with --tls-key {}: {reason}",
                cert.display(),
                key.display()
            ),
        }
    }
}

impl std::error::Error for TlsError {}

/// The acceptor for a certificate chain and its key, both PEM files.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let certificate_error = |reason: String| TlsError::Certificate {
        path: cert.to_owned(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| certificate_error(pem_reason(e)))?
        .collect::<Result<_, _>>()
        .map_err(|e| certificate_error(pem_reason(e)))?;
    if chain.is_empty() {
        return Err(certificate_error(
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in the file".to_owned(),
        ));
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_owned(),
        reason: pem_reason(e),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_no_client_auth()
                .with_single_cert(chain, private_key)
        })
        .map_err(|e| TlsError::Config {
            cert: cert.to_owned(),
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn pem_reason(error: rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    match error {
        Error::Io(e) => format!("cannot read: {e}"),
        Error::NoItemsFound => "no PEM item of the expected kind in the file".to_owned(),
        other => format!("not a usable PEM file: {other}"),
    }
}
