//! TLS for every connection shipd opens or accepts: the per-component
//! options ([`TlsOptions`]), the rustls client configuration built from them
//! (system roots from `/etc/ssl/certs` plus an optional private CA, client
//! certificate, a fixed server name, or no verification at all when asked
//! for explicitly), the server configuration of the OTLP receiver, and
//! [`name_failure`], which turns a handshake failure buried in an error
//! chain into a named cause an operator can act on.
//!
//! Crypto is rustls with the `ring` provider: it cross-compiles to the Pis'
//! aarch64 and armv7 with Debian's gcc cross compilers alone. This module
//! only builds configurations; it never opens a connection.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, DigitallySignedStruct, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

/// The TLS options of one outgoing connection (a sink or a scrape target).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// A CA certificate (PEM) trusted besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub key_file: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the URL's host).
    pub server_name: Option<String>,
    /// Accept any server certificate. Logged as a WARN at start.
    pub insecure_skip_verify: bool,
}

/// A TLS option cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot read the TLS {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the TLS {what} {path} holds no PEM {expected}")]
    Empty {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("tls.cert_file and tls.key_file go together (mutual TLS needs both)")]
    HalfPair,
    #[error("tls.server_name {0:?} is not a valid DNS name or IP address")]
    ServerName(String),
    #[error("the TLS {what} {path} is not usable: {source}")]
    Rejected {
        what: &'static str,
        path: PathBuf,
        source: Box<rustls::Error>,
    },
    #[error("no trusted CA certificates: the system store is empty and no tls.ca_file is given")]
    NoRoots,
}

/// The system's trust anchors, loaded once (only when a TLS connection is
/// configured), as rustls-native-certs finds them (`SSL_CERT_FILE`,
/// `SSL_CERT_DIR`, else `/etc/ssl/certs`).
static SYSTEM_ROOTS: LazyLock<Vec<CertificateDer<'static>>> = LazyLock::new(|| {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::debug!(%error, "a system CA certificate could not be loaded");
    }
    found.certs
});

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let pem = read(what, path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsConfigError::Empty {
            what,
            path: path.to_owned(),
            expected: "CERTIFICATE",
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let pem = read("key_file", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsConfigError::Empty {
        what: "key_file",
        path: path.to_owned(),
        expected: "PRIVATE KEY",
    })
}

impl TlsOptions {
    /// Whether anything differs from the defaults.
    pub fn is_default(&self) -> bool {
        *self == TlsOptions::default()
    }

    /// Checks that the files exist and parse, without building anything
    /// (for `shipctl check` and the start of the agent).
    pub fn validate(&self) -> Result<(), TlsConfigError> {
        self.client_config(&[]).map(|_| ())
    }

    /// The rustls client configuration, offering `alpn` protocols.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<rustls::ClientConfig, TlsConfigError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(SYSTEM_ROOTS.iter().cloned());
        if let Some(path) = &self.ca_file {
            for cert in certificates("ca_file", path)? {
                roots.add(cert).map_err(|source| TlsConfigError::Rejected {
                    what: "ca_file",
                    path: path.clone(),
                    source: Box::new(source),
                })?;
            }
        }
        if roots.is_empty() && !self.insecure_skip_verify {
            return Err(TlsConfigError::NoRoots);
        }
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsConfigError::Rejected {
                what: "protocol versions",
                path: PathBuf::new(),
                source: Box::new(source),
            })?;
        let server_name = self
            .server_name
            .as_deref()
            .map(|n| {
                ServerName::try_from(n.to_owned())
                    .map_err(|_| TlsConfigError::ServerName(n.to_owned()))
            })
            .transpose()?;
        let builder = if server_name.is_some() || self.insecure_skip_verify {
            let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|_| TlsConfigError::NoRoots)?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NamedVerifier {
                    inner,
                    server_name,
                    skip: self.insecure_skip_verify,
                }))
        } else {
            builder.with_root_certificates(roots)
        };
        let mut config = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let chain = certificates("cert_file", cert)?;
                builder
                    .with_client_auth_cert(chain, private_key(key)?)
                    .map_err(|source| TlsConfigError::Rejected {
                        what: "cert_file/key_file pair",
                        path: cert.clone(),
                        source: Box::new(source),
                    })?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(TlsConfigError::HalfPair),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}

/// An HTTP client builder for `url`: TLS from `opts` when the URL is
/// `https://` (system roots are loaded only then). reqwest honours
/// `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` itself.
pub fn http_client_builder(
    url: &str,
    opts: &TlsOptions,
) -> Result<reqwest::ClientBuilder, TlsConfigError> {
    let builder = reqwest::Client::builder();
    if !is_https(url) {
        return Ok(builder);
    }
    Ok(builder.use_preconfigured_tls(opts.client_config(&[b"h2", b"http/1.1"])?))
}

/// Whether `url` asks for TLS.
pub fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// The server configuration of a receiver that terminates TLS itself.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, TlsConfigError> {
    let chain = certificates("cert_file", cert_file)?;
    let key = private_key(key_file)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|source| TlsConfigError::Rejected {
            what: "cert_file/key_file pair",
            path: cert_file.to_owned(),
            source: Box::new(source),
        })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Verifies against a configured name instead of the URL's host, or not at
/// all when `skip` (the handshake signatures are still checked).
#[derive(Debug)]
struct NamedVerifier {
    inner: Arc<WebPkiServerVerifier>,
    server_name: Option<ServerName<'static>>,
    skip: bool,
}

impl ServerCertVerifier for NamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.skip {
            return Ok(ServerCertVerified::assertion());
        }
        let name = self.server_name.as_ref().unwrap_or(server_name);
        self.inner
            .verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The cause of a failed TLS handshake, named for the operator, when `err`
/// (or anything in its chain) is one; `None` for other failures.
pub fn name_failure(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut level: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut text = String::new();
    while let Some(e) = level {
        if let Some(r) = as_rustls(e) {
            return Some(name_rustls(r));
        }
        text.push_str(&e.to_string());
        text.push(' ');
        level = e.source();
    }
    name_from_text(&text)
}

/// A rustls error at this level, also when `io::Error`s wrap it (their
/// `source()` skips the wrapped error; hyper-rustls wraps tokio-rustls's
/// `io::Error` in another).
fn as_rustls<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(r) = e.downcast_ref::<rustls::Error>() {
        return Some(r);
    }
    let inner = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    as_rustls(inner)
}

fn name_rustls(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "TLS: unknown certificate authority: the server's certificate is not signed by a trusted CA (give the CA with tls.ca_file or OPENOBSERVE_CA_FILE)".into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("TLS: certificate expired: the server's certificate is no longer valid ({e})")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("TLS: certificate not yet valid (check the clock of this node): {e}")
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("TLS: wrong host name: {e} (connect by a name the certificate carries, or set tls.server_name)")
            }
            CertificateError::Revoked => "TLS: the server's certificate is revoked".into(),
            CertificateError::Other(o) if o.to_string().contains("CaUsedAsEndEntity") => {
                "TLS: unknown certificate authority: the server presents a self-signed CA certificate as its own (issue it a server certificate signed by that CA, and give the CA with tls.ca_file)".into()
            }
            _ => format!("TLS: the server's certificate was refused: {e}"),
        },
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => {
            "TLS: client certificate required by the server (set tls.cert_file and tls.key_file)".into()
        }
        rustls::Error::AlertReceived(
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateExpired
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateUnknown,
        ) => format!("TLS: the server refused the client certificate ({e})"),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            format!("TLS: the server does not speak TLS on this port, or broke the handshake ({e}); is the URL's scheme right?")
        }
        other => format!("TLS: handshake failed: {other}"),
    }
}

/// Handshake failures that reach us only as text (a peer's HTTP answer).
fn name_from_text(text: &str) -> Option<String> {
    if text.contains("No required SSL certificate was sent") {
        return Some(
            "TLS: client certificate required by the server (set tls.cert_file and tls.key_file)"
                .into(),
        );
    }
    if text.contains("The SSL certificate error") {
        return Some("TLS: the server refused the client certificate".into());
    }
    None
}

/// Names a peer's plain-text answer that reports a TLS problem (nginx
/// answers 400 with an HTML page when a required client certificate is
/// missing or refused).
pub fn name_answer(body: &str) -> Option<String> {
    name_from_text(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rustls_error_wrapped_in_io_error_is_named() {
        // As hyper-rustls hands it over: an io::Error in an io::Error.
        let io = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        ));
        let named = name_failure(&io).unwrap();
        assert!(named.contains("unknown certificate authority"), "{named}");
        let alert = std::io::Error::other(rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired,
        ));
        assert!(name_failure(&alert)
            .unwrap()
            .contains("client certificate required"));
        let plain = std::io::Error::other("connection refused");
        assert_eq!(name_failure(&plain), None);
    }

    #[test]
    fn half_a_client_certificate_pair_is_refused() {
        let opts = TlsOptions {
            cert_file: Some("/nonexistent/cert.pem".into()),
            insecure_skip_verify: true,
            ..Default::default()
        };
        assert!(matches!(opts.validate(), Err(TlsConfigError::HalfPair)));
    }

    #[test]
    fn a_missing_ca_file_names_the_path() {
        let opts = TlsOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let err = opts.validate().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
