//! TLS and mutual TLS: certificates made here with rcgen (a server CA, a client CA and a
//! stranger CA), served by the real app; the reload on SIGHUP runs the real binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use govledger::config::{CertificateClientConfig, ClientAuth, TlsConfig, TokenConfig};
use ledger_format::leaf::Leaf;
use ledger_format::receipt::Receipt;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use serde_json::{json, Value};

use crate::harness::{self, audit, TestServer};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// Writes `<name>.pem` and `<name>.key` signed by `ca`: a server certificate for localhost and
/// 127.0.0.1 when `subject` is empty, else a client certificate with that CN and O.
fn issue(dir: &Path, name: &str, ca: &Ca, subject: &[(DnType, &str)]) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let mut p = if subject.is_empty() {
        let mut p =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p
    } else {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p
    };
    p.distinguished_name = DistinguishedName::new();
    for (t, v) in subject {
        p.distinguished_name.push(t.clone(), *v);
    }
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    let (c, k) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

struct Pki {
    dir: tempfile::TempDir,
    server_ca: PathBuf,
    client_ca: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (server_ca, client_ca, stranger_ca) =
            (ca("server CA"), ca("client CA"), ca("stranger CA"));
        issue(d, "server", &server_ca, &[]);
        let desk = [
            (DnType::CommonName, "risk-agent"),
            (DnType::OrganizationName, "Desk"),
        ];
        issue(d, "client", &client_ca, &desk);
        issue(d, "stranger", &stranger_ca, &desk);
        issue(
            d,
            "intruder",
            &client_ca,
            &[
                (DnType::CommonName, "intruder"),
                (DnType::OrganizationName, "Desk"),
            ],
        );
        std::fs::write(d.join("server-ca.pem"), server_ca.cert.pem()).unwrap();
        std::fs::write(d.join("client-ca.pem"), client_ca.cert.pem()).unwrap();
        Pki {
            server_ca: d.join("server-ca.pem"),
            client_ca: d.join("client-ca.pem"),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn tls(&self, auth: ClientAuth) -> TlsConfig {
        TlsConfig {
            cert: self.path("server.pem"),
            key: self.path("server.key"),
            client_ca: Some(self.client_ca.clone()),
            client_auth: auth,
        }
    }

    /// A client trusting the server CA, presenting `identity` (a name written by [`issue`]).
    fn client(&self, identity: Option<&str>) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_secs(10))
            .add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(&self.server_ca).unwrap()).unwrap(),
            );
        if let Some(name) = identity {
            let mut pem = std::fs::read(self.path(&format!("{name}.pem"))).unwrap();
            pem.extend(std::fs::read(self.path(&format!("{name}.key"))).unwrap());
            b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        b.build().unwrap()
    }
}

async fn start(pki: &Pki, auth: ClientAuth, tokens: Vec<TokenConfig>) -> TestServer {
    let tls = pki.tls(auth);
    let mut s = harness::start_with(|c| {
        c.tls = Some(tls);
        c.tokens = tokens;
        c.certificates = vec![
            CertificateClientConfig {
                subject: "CN=risk-agent, O=Desk".into(),
                name: "risk-agent".into(),
                kinds: vec!["audit".into()],
                ..Default::default()
            },
            CertificateClientConfig {
                subject: "O=Desk,CN=intruder".into(),
                name: "trainer".into(),
                kinds: vec!["lineage".into()],
                ..Default::default()
            },
        ];
    })
    .await;
    s.url = s.url.replace("http://127.0.0.1", "https://localhost");
    s
}

async fn post(http: &reqwest::Client, url: &str, n: u64) -> reqwest::Result<(u16, Value)> {
    let r = http
        .post(format!("{url}/v1/entries"))
        .body(json!({"kind": "audit", "body": audit(n)}).to_string())
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

fn submitter(v: &Value) -> String {
    use base64::Engine;
    let r: Receipt = serde_json::from_value(v.clone()).unwrap();
    let leaf = base64::engine::general_purpose::STANDARD
        .decode(&r.leaf)
        .unwrap();
    Leaf::parse(&leaf).unwrap().submitter
}

#[tokio::test]
async fn mutual_tls_names_the_client_and_refuses_strangers() {
    let pki = Pki::new();
    let s = start(&pki, ClientAuth::Required, vec![]).await;
    let good = pki.client(Some("client"));
    let (status, v) = post(&good, &s.url, 1).await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(submitter(&v), "risk-agent");

    // A mapped certificate may submit only its kinds.
    let (status, v) = post(&pki.client(Some("intruder")), &s.url, 2)
        .await
        .unwrap();
    assert_eq!(
        (status, v["error"].as_str()),
        (403, Some("kind_not_allowed"))
    );

    // No certificate, a certificate from another CA, plain HTTP, a client that does not trust
    // the server's CA: no connection at all.
    assert!(post(&pki.client(None), &s.url, 3).await.is_err());
    assert!(post(&pki.client(Some("stranger")), &s.url, 4)
        .await
        .is_err());
    let plain = s.url.replace("https://localhost", "http://127.0.0.1");
    assert!(post(&reqwest::Client::new(), &plain, 5).await.is_err());
    let untrusting = reqwest::Client::builder().use_rustls_tls().build().unwrap();
    assert!(post(&untrusting, &s.url, 6).await.is_err());

    // Nothing of that reached the log; the server still answers.
    let log: Value = good
        .get(format!("{}/v1/log", s.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log["tree_size"], 1);
    s.stop().await;
}

#[tokio::test]
async fn optional_client_certificates_sit_beside_bearer_tokens() {
    let pki = Pki::new();
    let token = "s3cret-ops";
    let s = start(
        &pki,
        ClientAuth::Optional,
        vec![TokenConfig {
            name: "ops".into(),
            sha256: hex::encode(ledger_format::hash::sha256(token.as_bytes())),
            ..Default::default()
        }],
    )
    .await;
    let anonymous = pki.client(None);
    // Reads need no identity.
    let r = anonymous
        .get(format!("{}/v1/log", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Submissions need a token or a certificate.
    let (status, v) = post(&anonymous, &s.url, 1).await.unwrap();
    assert_eq!(status, 401, "{v}");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("bearer token or client certificate"));
    let r = anonymous
        .post(format!("{}/v1/entries", s.url))
        .bearer_auth(token)
        .body(json!({"kind": "audit", "body": audit(2)}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(submitter(&r.json().await.unwrap()), "ops");
    let (status, v) = post(&pki.client(Some("client")), &s.url, 3).await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(submitter(&v), "risk-agent");
    // A certificate from another CA is refused even when certificates are optional.
    assert!(post(&pki.client(Some("stranger")), &s.url, 4)
        .await
        .is_err());
    s.stop().await;
}

/// The CLI next to `govledgerd` (built by `cargo test --workspace`, README's test command).
pub fn govledger_cli() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_govledgerd")).with_file_name("govledger");
    assert!(
        p.exists(),
        "{} is missing: run the workspace's tests (`cargo test --workspace`), which build it",
        p.display()
    );
    p
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_a_bad_one_is_not_taken() {
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("govledger.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\n[tls]\ncert = {:?}\nkey = {:?}\n",
            data.path().join("d"),
            pki.path("server.pem"),
            pki.path("server.key")
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_govledgerd"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Keep stdout open: the server prints a second line (its key), and more on shutdown.
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = stdout.next().unwrap().unwrap();
    let port = first.rsplit(':').next().unwrap().to_owned();
    let url = format!("https://localhost:{port}");
    let old = pki.client(None);
    assert_eq!(post(&old, &url, 1).await.unwrap().0, 200);

    // A new CA, a new certificate in the same files, SIGHUP.
    let new_ca = ca("next server CA");
    let staged = tempfile::tempdir().unwrap();
    let (c, k) = issue(staged.path(), "server", &new_ca, &[]);
    std::fs::write(staged.path().join("ca.pem"), new_ca.cert.pem()).unwrap();
    std::fs::copy(&c, pki.path("server.pem")).unwrap();
    std::fs::copy(&k, pki.path("server.key")).unwrap();
    let new = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(new_ca.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    // Until the signal the old certificate is served.
    assert!(post(&new, &url, 2).await.is_err());
    hup(child.id());
    let mut reloaded = false;
    for _ in 0..100 {
        if post(&new, &url, 3).await.is_ok() {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reloaded, "the new certificate was not served after SIGHUP");
    assert!(post(&pki.client(None), &url, 4).await.is_err());

    // The CLI talks TLS with --ca-cert.
    let entry = staged.path().join("entry.json");
    std::fs::write(&entry, audit(5).to_string()).unwrap();
    let out = Command::new(govledger_cli())
        .args(["submit", "--kind", "audit", "--url", &url, "--ca-cert"])
        .arg(staged.path().join("ca.pem"))
        .arg(&entry)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A broken key in the files: the reload fails and the working certificate stays.
    std::fs::write(pki.path("server.key"), "not a key").unwrap();
    hup(child.id());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(post(&new, &url, 6).await.unwrap().0, 200);
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdout);
}

fn hup(pid: u32) {
    let ok = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}
