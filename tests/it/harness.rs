//! Starts the real app in-process on 127.0.0.1:0 with a fresh data dir.

use std::net::SocketAddr;

use govledger::config::Config;
use ledger_format::note::VerifierKey;
use ledger_format::receipt::Receipt;
use serde_json::Value;
use tokio::sync::oneshot;

/// Tests that use the shared S3 and Kafka servers hold this for reading; the outage test, which
/// pauses those servers, holds it for writing.
#[cfg_attr(not(any(feature = "s3", feature = "kafka")), allow(dead_code))]
pub static SERVICES: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Sends `sig` (`STOP`, `CONT`) to the process whose PID is in the environment variable `var`
/// (`GOVLEDGER_WEED_PID`, `GOVLEDGER_TANSU_PID`, set by scripts/services.sh).
#[cfg_attr(not(any(feature = "s3", feature = "kafka")), allow(dead_code))]
pub fn signal(var: &str, sig: &str) {
    let pid = std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is not set: run the tests with scripts/test.sh"));
    let ok = std::process::Command::new("kill")
        .args([format!("-{sig}"), pid])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {var}");
}

pub struct TestServer {
    pub url: String,
    pub vkey: VerifierKey,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Waits (up to 5 s) until no one holds the lock of the sled store in `dir`.
pub async fn wait_unlocked(dir: &std::path::Path) {
    use fs2::FileExt;
    for _ in 0..100 {
        match std::fs::File::open(dir.join("db")) {
            Ok(f) if f.try_lock_exclusive().is_ok() => {
                let _ = FileExt::unlock(&f);
                return;
            }
            Err(_) => return, // no store
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    panic!("the store in {} stayed locked", dir.display());
}

pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

pub async fn start_with(edit: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    start_in(dir, edit).await
}

pub async fn start_in(dir: tempfile::TempDir, edit: impl FnOnce(&mut Config)) -> TestServer {
    let mut cfg = Config {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    edit(&mut cfg);
    let (tx, rx) = oneshot::channel::<(SocketAddr, String)>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        govledger::server::run(
            cfg,
            async {
                let _ = stop_rx.await;
            },
            move |addr, vkey| {
                let _ = tx.send((addr, vkey.to_owned()));
            },
        )
        .await
    });
    let (addr, vkey) = match rx.await {
        Ok(x) => x,
        Err(_) => panic!("server failed to start: {:?}", task.await),
    };
    TestServer {
        url: format!("http://{addr}"),
        vkey: VerifierKey::parse(&vkey).unwrap(),
        http: reqwest::Client::new(),
        dir,
        shutdown: Some(stop_tx),
        task: Some(task),
    }
}

pub fn audit(n: u64) -> Value {
    serde_json::json!({
        "event_type": "RISK_DECISION",
        "component": "risk-agent",
        "action": "reduce_position",
        "details": {"n": n},
        "compliance_tags": ["MIFID_II", "RISK_MANAGEMENT"]
    })
}

impl TestServer {
    /// Stops the server (drain and commit) and returns its data dir.
    /// Stops the server and returns its data dir once the store's lock is released (sled's
    /// threads let go of it a moment after the store is closed), so that another process may
    /// open it at once.
    pub async fn stop(mut self) -> tempfile::TempDir {
        let _ = self.shutdown.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
        wait_unlocked(&self.dir.path().join("db")).await;
        self.dir
    }

    pub async fn post(&self, body: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/v1/entries", self.url))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn submit(&self, body: Value, entry_id: Option<&str>) -> Receipt {
        let mut sub = serde_json::json!({"kind": "audit", "body": body});
        if let Some(id) = entry_id {
            sub["entry_id"] = id.into();
        }
        let (status, v) = self.post(&sub.to_string()).await;
        assert_eq!(status, 200, "{v}");
        serde_json::from_value(v).unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self.get(path).await;
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn tree_size(&self) -> u64 {
        self.get_json("/v1/log").await.1["tree_size"]
            .as_u64()
            .unwrap()
    }
}

/// Returns the time now as RFC 3339 with milliseconds, strictly later than the previous call's
/// (so a person's successive statements in a test are ordered), for `signed_at`: the server
/// refuses statements dated outside its skew.
pub fn signed_now() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = govledger_client::time::now_ms();
    let ms = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(now.max(last + 1))
        })
        .map_or(now, |last| now.max(last + 1));
    govledger_client::time::rfc3339_ms(ms)
}
