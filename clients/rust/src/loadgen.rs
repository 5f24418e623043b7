//! `govledger loadgen`: drives a server with audit entries from `concurrency` workers for a
//! duration, closed-loop (each worker sends as soon as its last answer arrived) or open-loop at
//! an offered `rate` (entries/s; latency is measured from each request's scheduled start, so a
//! slow server cannot hide its queueing). Every receipt is verified against the log key.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ledger_format::checkpoint::SignedCheckpoint;
use ledger_format::note::VerifierKey;
use ledger_format::proof::InclusionProof;
use ledger_format::receipt::Receipt;
use ledger_format::{Hash, LeafIndex, TreeSize};
use serde::Serialize;
use serde_json::{json, Value};

/// Load settings.
#[derive(Clone, Debug)]
pub struct LoadArgs {
    pub url: String,
    pub concurrency: usize,
    pub duration: Duration,
    pub batch: usize,
    /// Offered entries per second across all workers; `None` for closed loop.
    pub rate: Option<f64>,
    pub token: Option<String>,
    pub log_key: Option<String>,
}

/// The summary printed at the end (`--json` prints this object).
#[derive(Debug, Serialize)]
pub struct Report {
    pub entries: u64,
    pub requests: u64,
    pub seconds: f64,
    pub entries_per_second: f64,
    pub latency_ms: BTreeMap<&'static str, f64>,
    pub errors: BTreeMap<String, u64>,
    pub receipts_verified: u64,
    pub receipts_invalid: u64,
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    entries: u64,
    requests: u64,
    errors: BTreeMap<String, u64>,
    verified: u64,
    invalid: u64,
}

/// Verifies receipts, checking each distinct checkpoint signature once.
struct Verifier {
    key: VerifierKey,
    seen: Mutex<HashSet<String>>,
}

impl Verifier {
    fn checkpoint(&self, note: &str) -> Option<(TreeSize, Hash)> {
        let parsed = SignedCheckpoint::parse(note.as_bytes()).ok()?;
        if !self.seen.lock().unwrap().contains(note) {
            SignedCheckpoint::open(note.as_bytes(), &self.key, &[]).ok()?;
            self.seen.lock().unwrap().insert(note.to_owned());
        }
        Some((parsed.checkpoint.size, parsed.checkpoint.root))
    }

    /// Returns true if the item (a receipt, or a batch item under a shared checkpoint) verifies.
    fn item(&self, item: &Value, note: &str) -> bool {
        let Some((size, root)) = self.checkpoint(note) else {
            return false;
        };
        let leaf = item["leaf"].as_str().and_then(|l| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(l).ok()
        });
        let path: Option<Vec<Hash>> = item["proof"].as_array().map(|a| {
            a.iter()
                .filter_map(|h| h.as_str().and_then(|s| Hash::from_base64(s).ok()))
                .collect()
        });
        let (Some(leaf), Some(path), Some(index)) = (leaf, path, item["index"].as_u64()) else {
            return false;
        };
        let hash = ledger_format::leaf_hash(&leaf);
        if item["leaf_hash"].as_str() != Some(hash.to_hex().as_str()) {
            return false;
        }
        InclusionProof {
            index: LeafIndex(index),
            size,
            path,
        }
        .verify(&hash, &root)
        .is_ok()
    }
}

fn entry(worker: usize, seq: u64) -> Value {
    json!({"kind": "audit", "body": {
        "event_type": "LOADGEN",
        "component": "loadgen",
        "action": "append",
        "details": {"worker": worker, "seq": seq, "pad": "x".repeat(64)},
        "compliance_tags": ["MIFID_II"]
    }})
}

/// Runs the load and returns the report.
pub async fn run(args: LoadArgs) -> Result<Report> {
    let http = crate::http::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let base = args.url.trim_end_matches('/').to_owned();
    let key = match &args.log_key {
        Some(k) => VerifierKey::parse(k).context("--log-key")?,
        None => {
            let info: Value = http
                .get(format!("{base}/v1/log"))
                .send()
                .await
                .with_context(|| format!("reaching {base}"))?
                .json()
                .await?;
            VerifierKey::parse(info["verifier_key"].as_str().unwrap_or_default())
                .context("the server's verifier key")?
        }
    };
    let verifier = Arc::new(Verifier {
        key,
        seen: Mutex::new(HashSet::new()),
    });
    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = Instant::now();
    let end = start + args.duration;
    let run_id: u64 = rand::random();
    // Open loop: each worker owns every concurrency-th slot of a global schedule.
    let interval = args
        .rate
        .map(|r| Duration::from_secs_f64(args.batch as f64 * args.concurrency as f64 / r));
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let http = http.clone();
        let url = format!("{base}/v1/entries");
        let tally = tally.clone();
        let verifier = verifier.clone();
        let args = args.clone();
        workers.push(tokio::spawn(async move {
            let mut seq = 0u64;
            let mut next = start
                + interval
                    .map(|i| i.mul_f64(w as f64 / args.concurrency as f64))
                    .unwrap_or_default();
            loop {
                if interval.is_some() {
                    tokio::time::sleep_until(next.into()).await;
                }
                let scheduled = if interval.is_some() {
                    next
                } else {
                    Instant::now()
                };
                if scheduled >= end {
                    break;
                }
                let body = if args.batch <= 1 {
                    seq += 1;
                    let mut e = entry(w, seq);
                    e["body"]["details"]["run"] = run_id.into();
                    e
                } else {
                    let entries: Vec<Value> = (0..args.batch)
                        .map(|_| {
                            seq += 1;
                            let mut e = entry(w, seq);
                            e["body"]["details"]["run"] = run_id.into();
                            e
                        })
                        .collect();
                    json!({ "entries": entries })
                };
                let mut req = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.to_string());
                if let Some(t) = &args.token {
                    req = req.bearer_auth(t);
                }
                let result = req.send().await;
                let latency = scheduled.elapsed();
                let (ok, verified, invalid, err) = match result {
                    Err(e) => (
                        0,
                        0,
                        0,
                        Some(if e.is_connect() {
                            "connect".to_string()
                        } else {
                            "transport".to_string()
                        }),
                    ),
                    Ok(r) if !r.status().is_success() => {
                        (0, 0, 0, Some(r.status().as_u16().to_string()))
                    }
                    Ok(r) => match r.json::<Value>().await {
                        Err(_) => (0, 0, 0, Some("bad_response".to_string())),
                        Ok(v) => {
                            let (mut good, mut bad) = (0u64, 0u64);
                            if args.batch <= 1 {
                                let ok = serde_json::from_value::<Receipt>(v.clone()).is_ok()
                                    && verifier
                                        .item(&v, v["checkpoint"].as_str().unwrap_or_default());
                                if ok {
                                    good += 1
                                } else {
                                    bad += 1
                                }
                            } else {
                                let note = v["checkpoint"].as_str().unwrap_or_default().to_owned();
                                for item in v["receipts"].as_array().into_iter().flatten() {
                                    if verifier.item(item, &note) {
                                        good += 1
                                    } else {
                                        bad += 1
                                    }
                                }
                            }
                            (args.batch as u64, good, bad, None)
                        }
                    },
                };
                {
                    let mut t = tally.lock().unwrap();
                    t.requests += 1;
                    t.entries += ok;
                    t.verified += verified;
                    t.invalid += invalid;
                    t.latencies_us.push(latency.as_micros() as u64);
                    if let Some(e) = err {
                        *t.errors.entry(e).or_default() += 1;
                    }
                }
                if let Some(i) = interval {
                    next += i;
                }
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let seconds = start
        .elapsed()
        .as_secs_f64()
        .min(args.duration.as_secs_f64().max(0.001));
    let mut t = std::mem::take(&mut *tally.lock().unwrap());
    t.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if t.latencies_us.is_empty() {
            return 0.0;
        }
        let i =
            ((t.latencies_us.len() as f64 * p).ceil() as usize).clamp(1, t.latencies_us.len()) - 1;
        t.latencies_us[i] as f64 / 1000.0
    };
    let latency_ms = BTreeMap::from([
        ("p50", pct(0.50)),
        ("p90", pct(0.90)),
        ("p99", pct(0.99)),
        ("max", pct(1.0)),
    ]);
    Ok(Report {
        entries: t.entries,
        requests: t.requests,
        seconds,
        entries_per_second: t.entries as f64 / seconds,
        latency_ms,
        errors: t.errors,
        receipts_verified: t.verified,
        receipts_invalid: t.invalid,
    })
}
