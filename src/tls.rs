//! TLS with rustls: the server's certificate and key from PEM files, reloaded on SIGHUP, and
//! optional mutual TLS whose client certificates name clients by their subject.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::{bail, Context, Result};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;

use crate::config::{ClientAuth, TlsConfig};

/// A certificate subject as a set of `ATTRIBUTE=value` pairs (attribute names upper-case), so
/// that `CN=a, O=b` and `O=b,CN=a` are the same subject.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject(BTreeSet<(String, String)>);

impl Subject {
    /// Parses `CN=risk-agent,O=Desk` (RFC 4514 without escapes: values holding `,`, `+` or
    /// `=` cannot be configured).
    pub fn parse(text: &str) -> Result<Subject> {
        let mut set = BTreeSet::new();
        for part in text.split([',', '+']) {
            let Some((k, v)) = part.split_once('=') else {
                bail!("{text:?}: expected ATTRIBUTE=value pairs separated by commas");
            };
            let (k, v) = (k.trim().to_ascii_uppercase(), v.trim());
            if k.is_empty() || v.is_empty() || v.contains('=') {
                bail!("{text:?}: expected ATTRIBUTE=value pairs separated by commas");
            }
            set.insert((k, v.to_owned()));
        }
        if set.is_empty() {
            bail!("empty subject");
        }
        Ok(Subject(set))
    }

    /// Returns the subject of a DER certificate.
    pub fn of_certificate(der: &[u8]) -> Result<Subject> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| anyhow::anyhow!("client certificate: {e}"))?;
        let mut set = BTreeSet::new();
        for attr in cert.subject().iter_attributes() {
            let oid = attr.attr_type();
            let name = x509_parser::objects::oid2abbrev(oid, x509_parser::objects::oid_registry())
                .map(|s| s.to_ascii_uppercase())
                .unwrap_or_else(|_| oid.to_id_string());
            let value = attr
                .as_str()
                .map_err(|_| anyhow::anyhow!("client certificate: a subject value is not text"))?;
            set.insert((name, value.to_owned()));
        }
        Ok(Subject(set))
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        f.write_str(&parts.join(","))
    }
}

/// The verified client certificate of a TLS connection, as a request extension.
#[derive(Clone, Debug)]
pub struct PeerCertificate(pub Arc<Subject>);

/// The live TLS configuration: [`TlsState::reload`] swaps it for new connections.
pub struct TlsState {
    cfg: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsState {
    /// Loads the PEM files named in `cfg`; any problem is a startup error.
    pub fn new(cfg: &TlsConfig) -> Result<Arc<TlsState>> {
        let server = build(cfg)?;
        Ok(Arc::new(TlsState {
            cfg: cfg.clone(),
            current: RwLock::new(Arc::new(server)),
        }))
    }

    /// Re-reads the PEM files. On error the previous configuration stays in use.
    pub fn reload(&self) -> Result<()> {
        let server = build(&self.cfg)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(server);
        Ok(())
    }

    /// Returns an acceptor with the current configuration.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let cfg = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        tokio_rustls::TlsAcceptor::from(cfg)
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build(cfg: &TlsConfig) -> Result<ServerConfig> {
    let certs = read_certs(&cfg.cert)?;
    if certs.is_empty() {
        bail!("{}: no certificate", cfg.cert.display());
    }
    let key = read_key(&cfg.key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &cfg.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs(ca)? {
                roots
                    .add(c)
                    .with_context(|| format!("{}: a CA certificate", ca.display()))?;
            }
            if roots.is_empty() {
                bail!("{}: no CA certificate", ca.display());
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = match cfg.client_auth {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .with_context(|| format!("client CA {}", ca.display()))?,
            )
        }
    };
    let mut server = builder
        .with_single_cert(certs, key)
        .with_context(|| format!("{} and {}", cfg.cert.display(), cfg.key.display()))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(server)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("{}: {e:?}", path.display()))
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| anyhow::anyhow!("{}: no usable private key ({e:?})", path.display()))
}

#[cfg(test)]
mod tests {
    use super::Subject;

    #[test]
    fn subjects_compare_as_sets() {
        let a = Subject::parse("CN=risk-agent,O=Desk").unwrap();
        let b = Subject::parse("o=Desk, CN=risk-agent").unwrap();
        assert_eq!(a, b);
        assert_ne!(a, Subject::parse("CN=risk-agent").unwrap());
        assert!(Subject::parse("risk-agent").is_err());
        assert!(Subject::parse("CN=").is_err());
        assert_eq!(a.to_string(), "CN=risk-agent,O=Desk");
    }
}
