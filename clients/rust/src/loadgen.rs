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
use ledger_format::{Hash, LeafIndex, TreeSize};
use serde::Serialize;
use serde_json::Value;

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

/// Verified checkpoints remembered (their signature is checked once).
const SEEN_CHECKPOINTS: usize = 1024;

/// One receipt of a batch answer, borrowed from the response bytes (hex and base64 never need
/// JSON escapes).
#[derive(serde::Deserialize)]
struct Item<'a> {
    index: u64,
    leaf_hash: &'a str,
    leaf: &'a str,
    #[serde(borrow)]
    proof: Vec<&'a str>,
}

/// A batch answer.
#[derive(serde::Deserialize)]
struct BatchAnswer<'a> {
    checkpoint: String,
    #[serde(borrow)]
    receipts: Vec<Item<'a>>,
}

/// A single-entry answer (a full receipt).
#[derive(serde::Deserialize)]
struct SingleAnswer<'a> {
    checkpoint: String,
    #[serde(flatten, borrow)]
    item: Item<'a>,
}

impl Verifier {
    /// Returns the size and root of a checkpoint signed by the log key.
    fn checkpoint(&self, note: &str) -> Option<(TreeSize, Hash)> {
        if !self.seen.lock().expect("lock poisoned").contains(note) {
            SignedCheckpoint::open(note.as_bytes(), &self.key, &[]).ok()?;
            let mut seen = self.seen.lock().expect("lock poisoned");
            // Answers carry recent checkpoints only: forget old ones, so that a long run does
            // not keep every checkpoint it ever saw (a thousand a second at batch 1).
            if seen.len() >= SEEN_CHECKPOINTS {
                seen.clear();
            }
            seen.insert(note.to_owned());
        }
        let parsed = SignedCheckpoint::parse(note.as_bytes()).ok()?;
        Some((parsed.checkpoint.size, parsed.checkpoint.root))
    }

    /// Returns true if the item verifies against the (already verified) tree head.
    fn item(item: &Item, size: TreeSize, root: &Hash) -> bool {
        use base64::Engine;
        let Ok(leaf) = base64::engine::general_purpose::STANDARD.decode(item.leaf) else {
            return false;
        };
        let Ok(path) = item
            .proof
            .iter()
            .map(|h| Hash::from_base64(h))
            .collect::<Result<Vec<_>, _>>()
        else {
            return false;
        };
        let hash = ledger_format::leaf_hash(&leaf);
        if Hash::from_hex(item.leaf_hash).ok() != Some(hash) {
            return false;
        }
        InclusionProof {
            index: LeafIndex(item.index),
            size,
            path,
        }
        .verify(&hash, root)
        .is_ok()
    }

    /// Returns (valid, invalid) receipt counts of one answer.
    fn answer(&self, bytes: &[u8], batch: bool) -> (u64, u64) {
        let (note, items) = if batch {
            match serde_json::from_slice::<BatchAnswer>(bytes) {
                Ok(a) => (a.checkpoint, a.receipts),
                Err(_) => return (0, 1),
            }
        } else {
            match serde_json::from_slice::<SingleAnswer>(bytes) {
                Ok(a) => (a.checkpoint, vec![a.item]),
                Err(_) => return (0, 1),
            }
        };
        let Some((size, root)) = self.checkpoint(&note) else {
            return (0, items.len().max(1) as u64);
        };
        let good = items
            .iter()
            .filter(|i| Verifier::item(i, size, &root))
            .count() as u64;
        (good, items.len() as u64 - good)
    }
}

/// Appends one loadgen entry (JSON) to `out`.
fn entry(out: &mut String, worker: usize, seq: u64, run: u64) {
    use std::fmt::Write;
    let _ = write!(
        out,
        r#"{{"kind":"audit","body":{{"event_type":"LOADGEN","component":"loadgen","action":"append","details":{{"worker":{worker},"seq":{seq},"pad":"{}","run":{run}}},"compliance_tags":["MIFID_II"]}}}}"#,
        "x".repeat(64)
    );
}

/// Returns the log key receipts are verified with: `--log-key`, else the server's.
async fn log_key(args: &LoadArgs, http: &reqwest::Client, base: &str) -> Result<VerifierKey> {
    Ok(match &args.log_key {
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
    })
}

/// What every worker shares: the client, the target, the schedule and the tally.
#[derive(Clone)]
struct Shared {
    http: reqwest::Client,
    /// The server's `/v1/entries`.
    url: String,
    args: LoadArgs,
    tally: Arc<Mutex<Tally>>,
    verifier: Arc<Verifier>,
    start: Instant,
    end: Instant,
    /// Open loop: the time between one worker's requests; `None` for closed loop.
    interval: Option<Duration>,
    run_id: u64,
}

/// The outcome of one request.
struct Answer {
    /// Entries appended.
    entries: u64,
    verified: u64,
    invalid: u64,
    /// The error's class (`connect`, `transport`, an HTTP status, `bad_response`).
    error: Option<String>,
}

impl Tally {
    /// Counts one request, its latency and its answer.
    fn record(&mut self, latency: Duration, answer: Answer) {
        self.requests += 1;
        self.entries += answer.entries;
        self.verified += answer.verified;
        self.invalid += answer.invalid;
        self.latencies_us.push(latency.as_micros() as u64);
        if let Some(e) = answer.error {
            *self.errors.entry(e).or_default() += 1;
        }
    }
}

/// Returns the body of worker `w`'s next request: one entry, or a batch of them (numbered on
/// from `seq`).
fn request_body(batch: usize, w: usize, seq: &mut u64, run_id: u64) -> String {
    let mut body = String::with_capacity(256 * batch.max(1) + 16);
    if batch <= 1 {
        *seq += 1;
        entry(&mut body, w, *seq, run_id);
    } else {
        body.push_str(r#"{"entries":["#);
        for i in 0..batch {
            if i > 0 {
                body.push(',');
            }
            *seq += 1;
            entry(&mut body, w, *seq, run_id);
        }
        body.push_str("]}");
    }
    body
}

impl Shared {
    /// Classifies the server's answer to one request, verifying its receipts.
    async fn answer(&self, result: reqwest::Result<reqwest::Response>) -> Answer {
        let failed = |e: String| Answer {
            entries: 0,
            verified: 0,
            invalid: 0,
            error: Some(e),
        };
        match result {
            Err(e) => failed(if e.is_connect() {
                "connect".to_string()
            } else {
                "transport".to_string()
            }),
            Ok(r) if !r.status().is_success() => failed(r.status().as_u16().to_string()),
            Ok(r) => match r.bytes().await {
                Err(_) => failed("bad_response".to_string()),
                Ok(bytes) => {
                    let (good, bad) = self.verifier.answer(&bytes, self.args.batch > 1);
                    Answer {
                        entries: self.args.batch.max(1) as u64,
                        verified: good,
                        invalid: bad,
                        error: None,
                    }
                }
            },
        }
    }

    /// Worker `w`: sends requests until the end, at its slots of the schedule (open loop) or
    /// as soon as the last answer arrived (closed loop), and tallies each.
    async fn worker(self, w: usize) {
        let args = &self.args;
        let mut seq = 0u64;
        // Open loop: this worker's first slot of the global schedule.
        let mut next = self.start
            + self
                .interval
                .map(|i| i.mul_f64(w as f64 / args.concurrency as f64))
                .unwrap_or_default();
        loop {
            if self.interval.is_some() {
                tokio::time::sleep_until(next.into()).await;
            }
            let scheduled = if self.interval.is_some() {
                next
            } else {
                Instant::now()
            };
            if scheduled >= self.end {
                break;
            }
            let body = request_body(args.batch, w, &mut seq, self.run_id);
            let mut req = self
                .http
                .post(&self.url)
                .header("content-type", "application/json")
                .body(body);
            if let Some(t) = &args.token {
                req = req.bearer_auth(t);
            }
            let result = req.send().await;
            let latency = scheduled.elapsed();
            let answer = self.answer(result).await;
            self.tally
                .lock()
                .expect("lock poisoned")
                .record(latency, answer);
            if let Some(i) = self.interval {
                next += i;
            }
        }
    }
}

/// Aggregates the tally of a run of `seconds` into the report: totals, throughput and the
/// latency percentiles.
fn report(mut t: Tally, seconds: f64) -> Report {
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
    Report {
        entries: t.entries,
        requests: t.requests,
        seconds,
        entries_per_second: t.entries as f64 / seconds,
        latency_ms,
        errors: t.errors,
        receipts_verified: t.verified,
        receipts_invalid: t.invalid,
    }
}

/// Runs the load and returns the report.
pub async fn run(args: LoadArgs) -> Result<Report> {
    let http = crate::http::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let base = args.url.trim_end_matches('/').to_owned();
    let key = log_key(&args, &http, &base).await?;
    let verifier = Arc::new(Verifier {
        key,
        seen: Mutex::new(HashSet::new()),
    });
    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = Instant::now();
    let shared = Shared {
        http,
        url: format!("{base}/v1/entries"),
        tally: tally.clone(),
        verifier,
        start,
        end: start + args.duration,
        // Open loop: each worker owns every concurrency-th slot of a global schedule.
        interval: args
            .rate
            .map(|r| Duration::from_secs_f64(args.batch as f64 * args.concurrency as f64 / r)),
        run_id: rand::random(),
        args: args.clone(),
    };
    let workers: Vec<_> = (0..args.concurrency)
        .map(|w| tokio::spawn(shared.clone().worker(w)))
        .collect();
    for w in workers {
        w.await?;
    }
    let seconds = start
        .elapsed()
        .as_secs_f64()
        .min(args.duration.as_secs_f64().max(0.001));
    let t = std::mem::take(&mut *tally.lock().expect("lock poisoned"));
    Ok(report(t, seconds))
}

/// `govledger loadgen`: exit 1 when a receipt did not verify.
pub fn command(c: crate::args::LoadgenCmd) -> Result<crate::cli::Outcome> {
    use crate::cli::Outcome;
    let args = LoadArgs {
        url: c.server.url,
        concurrency: c.concurrency.max(1),
        duration: Duration::from_secs_f64(c.duration),
        batch: c.batch.max(1),
        rate: c.rate,
        token: c.server.token,
        log_key: c.log_key,
    };
    let rt = tokio::runtime::Runtime::new()?;
    let report = rt.block_on(run(args))?;
    let text = if c.json {
        serde_json::to_string_pretty(&report)?
    } else {
        let l = &report.latency_ms;
        format!(
            "entries: {} in {:.1} s = {:.0} entries/s ({} requests)\nlatency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\nerrors: {:?}\nreceipts verified: {}  invalid: {}",
            report.entries, report.seconds, report.entries_per_second, report.requests,
            l["p50"], l["p90"], l["p99"], l["max"], report.errors, report.receipts_verified, report.receipts_invalid
        )
    };
    if report.receipts_invalid > 0 {
        println!("{text}");
        return Ok(Outcome::Invalid(format!(
            "{} receipts did not verify",
            report.receipts_invalid
        )));
    }
    Ok(Outcome::Valid(text))
}
