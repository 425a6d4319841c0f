//! An HTTPS origin for the tests that tunnel through the proxy (CONNECT): the recording
//! [`Origin`] behind a rustls handshake (the `ring` provider, as the proxy crate uses), with a
//! self-signed certificate for `IP:127.0.0.1` made by the `openssl` tool in the test. The
//! certificate is its own trust anchor: curl takes it with `--cacert`, Java as the only entry of
//! a trust store, Chromium by its key's hash (`--ignore-certificate-errors-spki-list`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::Digest as _;

use super::{Origin, OriginResponse, ReceivedRequest};

/// Runs `openssl` with `args`.
///
/// # Panics
///
/// When openssl is missing (naming the Debian package) or fails (with its stderr).
pub fn openssl(args: &[&str]) {
    super::run_tool("openssl", "openssl", args);
}

/// A self-signed P-256 certificate for `CN=127.0.0.1` with `subjectAltName=IP:127.0.0.1`,
/// valid for two days, made by `openssl req -x509`; returns the `(certificate, key)` PEM paths,
/// `proxy.crt` and `proxy.key` in `dir`.
pub fn self_signed_certificate(dir: &Path) -> (String, String) {
    let cert = dir.join("proxy.crt").to_str().expect("utf-8").to_owned();
    let key = dir.join("proxy.key").to_str().expect("utf-8").to_owned();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &cert,
        "-days",
        "2",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
    ]);
    (cert, key)
}

/// The base64 SHA-256 of the certificate's SubjectPublicKeyInfo (what Chromium's
/// `--ignore-certificate-errors-spki-list` and HPKP pins name), extracted by openssl.
pub fn spki_sha256_base64(cert: &Path) -> String {
    let der = cert.with_extension("spki.der");
    let pem = cert.with_extension("pub.pem");
    let (cert, pem_s, der_s) = (
        cert.to_str().expect("utf-8"),
        pem.to_str().expect("utf-8"),
        der.to_str().expect("utf-8"),
    );
    openssl(&["x509", "-in", cert, "-pubkey", "-noout", "-out", pem_s]);
    openssl(&[
        "pkey", "-pubin", "-in", pem_s, "-outform", "der", "-out", der_s,
    ]);
    let spki = std::fs::read(&der).expect("read the SPKI");
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(spki))
}

/// An HTTPS/1.1 origin on 127.0.0.1:0 answering every request with [`OriginResponse`] and
/// recording them, like [`Origin`]; ALPN offers `http/1.1` only. Stopped on drop.
pub struct TlsOrigin {
    origin: Origin,
    cert: PathBuf,
}

impl TlsOrigin {
    /// An origin answering `200` with [`super::ORIGIN_BODY`], with a fresh certificate made in
    /// `dir` ([`self_signed_certificate`]).
    pub async fn start(dir: &Path) -> Self {
        let (cert, key) = self_signed_certificate(dir);
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
            .expect("read the certificate")
            .collect::<Result<_, _>>()
            .expect("parse the certificate");
        let key = PrivateKeyDer::from_pem_file(&key).expect("read the key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("the certificate and key match");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let origin = Origin::start_serving(OriginResponse::default(), move |stream| {
            let accept = acceptor.accept(stream);
            async move { accept.await.ok() }
        })
        .await;
        Self {
            origin,
            cert: PathBuf::from(cert),
        }
    }

    /// The origin's address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.origin.addr()
    }

    /// `https://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr())
    }

    /// The certificate (PEM), which is also its own CA.
    pub fn ca_pem(&self) -> &Path {
        &self.cert
    }

    /// Every request received so far, oldest first.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.origin.received()
    }
}
