//! The load benchmark: govledgerd (release binary) driven by the load generator on the same
//! machine, each figure beside its baseline measured in the same run: raw sled in this process,
//! the same entries, batches of the same size, one flush per batch.
//!
//! `cargo bench --bench load` (env: GOVLEDGER_BENCH_SECONDS per scenario, default 10;
//! GOVLEDGER_BENCH_BIG entries for the large-log phase, default 5000000, 0 to skip).
//! Results are printed as a Markdown table for benches/README.md.

use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::{env_u64, spawn, stop, tree_size};
use govledger_client::loadgen::{self, LoadArgs, Report};
use rand::Rng;
use serde_json::json;

fn rss_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            dir_bytes(&e.path())
        } else {
            m.len()
        };
    }
    total
}

/// An audit entry's leaf-sized bytes, as the server would store them (same body as loadgen).
fn sample_leaf(i: u64) -> Vec<u8> {
    let body = json!({
        "event_type": "LOADGEN", "component": "loadgen", "action": "append",
        "details": {"worker": 0, "seq": i, "pad": "x".repeat(64), "run": 1u64},
        "compliance_tags": ["MIFID_II"]
    });
    ledger_format::leaf::Leaf {
        kind: ledger_format::entry::EntryKind::Audit,
        logged_at_ms: 1_764_000_000_000 + i,
        submitter: "anonymous".into(),
        entry_id: String::new(),
        body: body.to_string().into_bytes(),
    }
    .encode()
    .unwrap()
}

/// Raw sled in process: the same entries, `batch` per sled batch, one flush per batch.
fn sled_baseline(batch: usize, seconds: f64) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(64 << 20)
        .open()
        .unwrap();
    let tree = db.open_tree("log").unwrap();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        let mut b = sled::Batch::default();
        for _ in 0..batch {
            b.insert(&n.to_be_bytes(), sample_leaf(n));
            n += 1;
        }
        tree.apply_batch(b).unwrap();
        db.flush().unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

async fn load(
    url: &str,
    concurrency: usize,
    batch: usize,
    rate: Option<f64>,
    seconds: f64,
) -> Report {
    let r = loadgen::run(LoadArgs {
        url: url.into(),
        concurrency,
        duration: Duration::from_secs_f64(seconds),
        batch,
        rate,
        token: None,
        log_key: None,
    })
    .await
    .unwrap();
    assert_eq!(r.receipts_invalid, 0, "receipts failed to verify");
    r
}

async fn metrics(http: &reqwest::Client, url: &str) -> (f64, f64) {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let get = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        get("govledger_appended_total "),
        get("govledger_commit_groups_total "),
    )
}

async fn proofs_per_second(http: &reqwest::Client, url: &str, size: u64, seconds: f64) -> f64 {
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let http = http.clone();
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0u64;
            while Instant::now() < end {
                let i = rand::thread_rng().gen_range(0..size);
                let r = http
                    .get(format!("{url}/v1/proofs/inclusion?index={i}&size={size}"))
                    .send()
                    .await;
                if let Ok(r) = r {
                    if r.status() == 200 && r.bytes().await.is_ok() {
                        ok += 1;
                    }
                }
            }
            ok
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / seconds
}

async fn fill(url: &str, target: u64, http: &reqwest::Client) {
    let start = Instant::now();
    let mut last = 0;
    loop {
        let size = tree_size(http, url).await;
        if size >= target {
            break;
        }
        if size / 500_000 != last {
            last = size / 500_000;
            eprintln!(
                "  fill: {size}/{target} entries, {:.0} s",
                start.elapsed().as_secs_f64()
            );
        }
        let batches = ((target - size) / 256).clamp(1, 400);
        load(url, 8, 256, None, (batches as f64 / 160.0).clamp(1.0, 10.0)).await;
    }
}

#[tokio::main]
async fn main() {
    let secs = env_u64("GOVLEDGER_BENCH_SECONDS", 10) as f64;
    let big = env_u64("GOVLEDGER_BENCH_BIG", 5_000_000);
    let http = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = spawn(dir.path());
    let pid = child.id();

    eprintln!("single submissions, concurrency 256 ...");
    let (a0, g0) = metrics(&http, &url).await;
    let single = load(&url, 256, 1, None, secs).await;
    let (a1, g1) = metrics(&http, &url).await;
    let group_single = (a1 - a0) / (g1 - g0).max(1.0);
    eprintln!("batches of 256, concurrency 8 ...");
    let batch = load(&url, 8, 256, None, secs).await;
    let (a2, g2) = metrics(&http, &url).await;
    let group_batch = (a2 - a1) / (g2 - g1).max(1.0);
    eprintln!("offered 1,000 entries/s ...");
    let paced = load(&url, 64, 1, Some(1000.0), secs).await;
    let size = tree_size(&http, &url).await;
    eprintln!("inclusion proofs at size {size} ...");
    let proofs = proofs_per_second(&http, &url, size, secs).await;
    let bytes = dir_bytes(&dir.path().join("db"));

    eprintln!("baselines: raw sled ...");
    let base1 = sled_baseline(1, secs);
    let base_g1 = sled_baseline(group_single.round().max(1.0) as usize, secs);
    let base256 = sled_baseline(256, secs);
    let base_g256 = sled_baseline(group_batch.round().max(1.0) as usize, secs);

    println!("| scenario | govledgerd | raw sled baseline (same run) | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| single entries, concurrency 256, fsync-backed receipts | {:.0} entries/s (p50 {:.1} ms, p99 {:.1} ms) | {:.0}/s at batch 1; {:.0}/s at the server's mean group of {:.0} | {:.2}x; {:.2}x |",
        single.entries_per_second, single.latency_ms["p50"], single.latency_ms["p99"], base1, base_g1, group_single,
        single.entries_per_second / base1, single.entries_per_second / base_g1
    );
    println!(
        "| batches of 256, concurrency 8 | {:.0} entries/s (p50 {:.1} ms, p99 {:.1} ms) | {:.0}/s at batch 256; {:.0}/s at the mean group of {:.0} | {:.2}x; {:.2}x |",
        batch.entries_per_second, batch.latency_ms["p50"], batch.latency_ms["p99"], base256, base_g256, group_batch,
        batch.entries_per_second / base256, batch.entries_per_second / base_g256
    );
    println!(
        "| offered 1,000 entries/s | p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms | | |",
        paced.latency_ms["p50"],
        paced.latency_ms["p90"],
        paced.latency_ms["p99"],
        paced.latency_ms["max"]
    );
    println!(
        "| inclusion proofs served (64 clients, random index, size {size}) | {proofs:.0}/s | | |"
    );
    println!(
        "| bytes on disk per entry (sled dir / entries, {size} entries) | {:.0} B | | |",
        bytes as f64 / size as f64
    );

    if big > 0 {
        eprintln!("large log: filling to {big} entries ...");
        fill(&url, big, &http).await;
        let (rss, hwm) = rss_mb(pid);
        let size = tree_size(&http, &url).await;
        let proofs_big = proofs_per_second(&http, &url, size, secs).await;
        let (rss2, hwm2) = rss_mb(pid);
        stop(child);
        let bytes = dir_bytes(&dir.path().join("db"));
        let t = Instant::now();
        let (child, url) = spawn(dir.path());
        let _ = http
            .get(format!("{url}/checkpoint"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let restart = t.elapsed().as_secs_f64();
        let (rss3, _) = rss_mb(child.id());
        println!(
            "| RSS with {size} entries | {rss:.0} MB after the fill (peak {hwm:.0} MB); {rss2:.0} MB after proof load (peak {hwm2:.0} MB); {rss3:.0} MB after restart | | |"
        );
        println!("| restart to serving, {size} entries | {restart:.2} s (spawn to first /checkpoint answer) | | |");
        println!("| inclusion proofs served at size {size} | {proofs_big:.0}/s | | |");
        println!(
            "| bytes on disk per entry at {size} entries | {:.0} B | | |",
            bytes as f64 / size as f64
        );
        stop(child);
    } else {
        stop(child);
    }
}
