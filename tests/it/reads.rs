//! Reads are bounded: list pages in bytes, one response budget (503 `overloaded`), per-client
//! read rates when configured.

use std::process::Child;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::start_with;

const BUDGET_MB: u64 = 16;

struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_with_budget() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("govledger.toml");
    std::fs::write(
        &config,
        format!("[reads]\nresponse_budget_mb = {BUDGET_MB}\nmax_response_bytes = 4194304\n"),
    )
    .unwrap();
    let data = dir.path().join("data");
    let (child, url, _) = crate::crash::spawn_serve(&[
        "--config".as_ref(),
        config.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
    ]);
    Server {
        child,
        url,
        _dir: dir,
    }
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

/// A reader that asks for a page of large entries, reads the status line and then nothing: the
/// answer stays in flight for as long as the connection is open. Its receive buffer is small,
/// so the answer cannot hide in the kernel.
async fn slow_reader(addr: &str, path: &str) -> (tokio::net::TcpStream, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr.parse().unwrap()).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = vec![0u8; 512];
    let n = stream.read(&mut head).await.unwrap();
    (stream, String::from_utf8_lossy(&head[..n]).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_cannot_hold_more_than_the_response_budget() {
    let s = spawn_with_budget();
    let http = reqwest::Client::new();
    // 400 entries of ~60 KB: 24 MB of leaves, a 1000-entry page would be ~32 MB of JSON.
    let blob = "x".repeat(60_000);
    for batch in 0..20 {
        let entries: Vec<Value> = (0..20)
            .map(|i| {
                json!({"kind": "audit", "body": {"event_type": "BULK", "component": "c", "action": "a",
                    "details": {"n": batch * 20 + i, "blob": blob}, "compliance_tags": []}})
            })
            .collect();
        let r = http
            .post(format!("{}/v1/entries", s.url))
            .json(&json!({ "entries": entries }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    // Pages are bounded in bytes: the cursor walks the whole log, every entry once.
    let mut cursor = 0u64;
    let mut seen = 0;
    let mut pages = 0;
    loop {
        let r = http
            .get(format!("{}/v1/entries?limit=1000&cursor={cursor}", s.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body = r.bytes().await.unwrap();
        assert!(body.len() <= 4 << 20, "a page of {} bytes", body.len());
        let v: Value = serde_json::from_slice(&body).unwrap();
        let entries = v["entries"].as_array().unwrap();
        assert_eq!(entries[0]["index"], json!(cursor));
        seen += entries.len();
        pages += 1;
        match v["next_cursor"].as_u64() {
            Some(next) => cursor = next,
            None => break,
        }
    }
    assert_eq!(seen, 400);
    assert!(pages >= 6, "{pages} pages");

    let pid = s.child.id();
    let before = rss_mb(pid);
    let addr = s.url.strip_prefix("http://").unwrap().to_owned();
    let mut held = Vec::new();
    let (mut served, mut refused) = (0, 0);
    for _ in 0..32 {
        let (stream, head) = slow_reader(&addr, "/v1/entries?limit=1000").await;
        if head.starts_with("HTTP/1.1 200") {
            served += 1;
        } else {
            assert!(head.starts_with("HTTP/1.1 503"), "{head}");
            assert!(
                head.to_ascii_lowercase().contains("retry-after: 1"),
                "{head}"
            );
            assert!(head.contains("overloaded"), "{head}");
            refused += 1;
        }
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = rss_mb(pid);
    // Unbounded, 32 pages of ~4 MB each would be held (and 32 MB each before pages had a byte
    // bound); the budget holds 16 MB of answers, plus allocator slack.
    assert!(
        during - before < (BUDGET_MB as f64) + 40.0,
        "RSS grew from {before:.0} MB to {during:.0} MB with 32 slow readers"
    );
    assert!(served >= 1, "a reader within the budget is served");
    assert!(refused >= 16, "{refused} of 32 refused");
    let metrics = http
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!("govledger_reads_overloaded_total {refused}")),
        "{metrics}"
    );
    // The budget comes back when the readers leave.
    drop(held);
    let mut ok = false;
    for _ in 0..50 {
        let r = http
            .get(format!("{}/v1/entries?limit=1000", s.url))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "reads are served again once the slow readers are gone");
}

#[tokio::test]
async fn read_rates_are_limited_per_client_when_configured() {
    let s = start_with(|c| {
        c.reads.rate_per_s = 1.0;
        c.reads.burst = 3.0;
    })
    .await;
    for _ in 0..3 {
        assert_eq!(s.get("/v1/log").await.status(), 200);
    }
    let r = s.get("/checkpoint").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "rate_limited", "{v}");
    // Health and metrics stay readable, and submissions are not reads.
    assert_eq!(s.get("/healthz").await.status(), 200);
    assert_eq!(s.get("/metrics").await.status(), 200);
    let (st, v) = s
        .post(&json!({"kind": "audit", "body": crate::harness::audit(1)}).to_string())
        .await;
    assert_eq!(st, 200, "{v}");
    s.stop().await;
}

#[tokio::test]
async fn reads_are_unlimited_by_default() {
    let s = start_with(|_| {}).await;
    for _ in 0..300 {
        assert_eq!(s.get("/checkpoint").await.status(), 200);
    }
    s.stop().await;
}
