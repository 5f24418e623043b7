//! The one place HTTP clients are built, so that every command talks TLS the same way: a
//! private CA (`--ca-cert`) and a client certificate for mutual TLS (`--client-cert`,
//! `--client-key`), each also from the environment.

use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::{Context, Result};

/// TLS settings shared by every command.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsArgs {
    /// PEM CA certificate(s) to trust besides the public roots (a private CA's server
    /// certificates).
    #[arg(long, global = true, env = "GOVLEDGER_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with --client-key).
    #[arg(
        long,
        global = true,
        env = "GOVLEDGER_CLIENT_CERT",
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(
        long,
        global = true,
        env = "GOVLEDGER_CLIENT_KEY",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,
}

struct Tls {
    roots: Vec<reqwest::Certificate>,
    identity: Option<reqwest::Identity>,
}

static TLS: OnceLock<Tls> = OnceLock::new();

/// Reads the certificate files once; later clients use them.
pub fn configure(args: &TlsArgs) -> Result<()> {
    let mut roots = Vec::new();
    if let Some(path) = &args.ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        roots = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{}: CA certificates", path.display()))?;
        anyhow::ensure!(!roots.is_empty(), "{}: no certificate", path.display());
    }
    let identity = match (&args.client_cert, &args.client_key) {
        (Some(cert), Some(key)) => {
            let mut pem =
                std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
            pem.push(b'\n');
            pem.extend(std::fs::read(key).with_context(|| format!("reading {}", key.display()))?);
            Some(reqwest::Identity::from_pem(&pem).context("client certificate and key")?)
        }
        _ => None,
    };
    let _ = TLS.set(Tls { roots, identity });
    Ok(())
}

/// Returns a blocking client builder with the TLS settings.
pub fn blocking_builder() -> reqwest::blocking::ClientBuilder {
    let mut b = reqwest::blocking::Client::builder();
    if let Some(tls) = TLS.get() {
        for c in &tls.roots {
            b = b.add_root_certificate(c.clone());
        }
        if let Some(id) = &tls.identity {
            b = b.identity(id.clone());
        }
    }
    b
}

/// Returns a blocking client with the TLS settings.
pub fn blocking() -> reqwest::blocking::Client {
    blocking_builder()
        .build()
        .expect("the HTTP client's TLS settings were checked by configure")
}

/// Returns an async client builder with the TLS settings.
pub fn builder() -> reqwest::ClientBuilder {
    let mut b = reqwest::Client::builder();
    if let Some(tls) = TLS.get() {
        for c in &tls.roots {
            b = b.add_root_certificate(c.clone());
        }
        if let Some(id) = &tls.identity {
            b = b.identity(id.clone());
        }
    }
    b
}

/// GETs `url` and returns its JSON body; an error status is an error.
pub fn get_json(url: &str) -> Result<serde_json::Value> {
    blocking()
        .get(url)
        .send()
        .with_context(|| format!("reaching {url}"))?
        .error_for_status()
        .with_context(|| format!("GET {url}"))?
        .json()
        .with_context(|| format!("GET {url}: not JSON"))
}
