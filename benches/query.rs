//! Secondary-index queries over a large log: `cargo bench --bench query`
//! (env GOVLEDGER_BENCH_QUERY_SIZE, default 1,000,000 entries).
//!
//! The log is filled through the API in batches of 256: 255 audit events and one lineage
//! entry; every 64th lineage entry is for the model `needle`, the others cycle over 1,000
//! models. Each query runs 200 times in sequence; its latency (whole HTTP answer, receipts
//! with inclusion proofs included) is reported beside the baseline measured in the same run:
//! one receipt, `GET /v1/entries/{random index}`.

mod common;

use std::time::Instant;

use common::{env_u64, spawn, stop, tree_size};
use rand::Rng;
use serde_json::{json, Value};

const BATCH: u64 = 256;

fn batch(n: u64) -> Value {
    let mut entries: Vec<Value> = (1..BATCH)
        .map(|i| {
            json!({"kind": "audit", "body": {"event_type": "RISK_DECISION", "component": "risk-agent",
                "action": "reduce", "details": {"batch": n, "i": i}, "compliance_tags": ["MIFID_II"]}})
        })
        .collect();
    let model = if n.is_multiple_of(64) {
        "needle".to_owned()
    } else {
        format!("m-{}", n % 1000)
    };
    entries.push(json!({"kind": "lineage", "body": {"model_id": model, "model_version": n.to_string(),
        "created_by": "bench", "validation_metrics": {"accuracy": 0.93},
        "datasets": [{"name": "md", "type": "training", "sha256": format!("sha256:{}", "ab".repeat(32)), "size_bytes": 1}],
        "artifact": {"path": "policy.pt", "sha256": format!("sha256:{}", "cd".repeat(32)), "size_bytes": 1}}}));
    json!({"entries": entries})
}

async fn fill(url: &str, target: u64) {
    let start = Instant::now();
    let batches = target.div_ceil(BATCH);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (url, next) = (url.to_owned(), next.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= batches {
                        return;
                    }
                    let r = http
                        .post(format!("{url}/v1/entries"))
                        .json(&batch(n))
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
                    if n.is_multiple_of(400) {
                        eprintln!(
                            "  fill: {}/{target} entries, {:.0} s",
                            n * BATCH,
                            start.elapsed().as_secs_f64()
                        );
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Returns (first, p50, p99) in ms and the number of entries on the first answer.
async fn time(
    http: &reqwest::Client,
    url: &str,
    path: impl Fn(u64) -> String,
) -> (f64, f64, f64, usize) {
    let mut ms = Vec::new();
    let mut count = 0;
    for i in 0..200 {
        let t = Instant::now();
        let v: Value = http
            .get(format!("{url}{}", path(i)))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        if i == 0 {
            count = v["entries"].as_array().map_or(1, Vec::len);
        }
    }
    let first = ms[0];
    ms.sort_by(f64::total_cmp);
    (first, ms[100], ms[197], count)
}

#[tokio::main]
async fn main() {
    let target = env_u64("GOVLEDGER_BENCH_QUERY_SIZE", 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = spawn(dir.path());
    eprintln!("filling to {target} entries ...");
    fill(&url, target).await;
    let http = reqwest::Client::new();
    let size = tree_size(&http, &url).await;
    let mut rng = rand::thread_rng();
    let random: Vec<u64> = (0..200).map(|_| rng.gen_range(0..size)).collect();
    let base = time(&http, &url, |i| {
        format!("/v1/entries/{}", random[i as usize])
    })
    .await;
    println!(
        "| query over {size} entries | entries answered | first | p50 | p99 | p50 / one receipt |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| baseline: one receipt, GET /v1/entries/{{random}} | 1 | {:.2} ms | {:.2} ms | {:.2} ms | 1.0x |",
        base.0, base.1, base.2
    );
    for (name, q) in [
        ("model_id=needle", "/v1/entries?model_id=needle"),
        ("model_id=m-7 (4 entries)", "/v1/entries?model_id=m-7"),
        (
            "kind=lineage&model_id=needle",
            "/v1/entries?kind=lineage&model_id=needle",
        ),
        ("model_id=absent (no match)", "/v1/entries?model_id=absent"),
        (
            "kind=lineage (first page of 100)",
            "/v1/entries?kind=lineage",
        ),
        (
            "tag=MIFID_II (first page of 100)",
            "/v1/entries?tag=MIFID_II",
        ),
    ] {
        let r = time(&http, &url, |_| q.to_owned()).await;
        println!(
            "| {name} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.1}x |",
            r.3,
            r.0,
            r.1,
            r.2,
            r.1 / base.1
        );
    }
    stop(child);
}
