//! `govledger audit`: the regulator's full replay. Downloads every entry and every level-0 hash
//! tile through the C2SP tiles, checks each leaf against the tree, recomputes the root at every
//! stored and anchored checkpoint and at the latest one, re-checks every approval and
//! deployment against the policy, and writes `report.json` and a self-contained `report.html`
//! for a date range. With an auditor key, `report.json.sig` is a signed note over the report's
//! SHA-256 (text: `govledger/audit-report/v1`, origin, tree size, root, report digest).

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use ledger_format::approval::{evaluate, gather, Case, Logged, Status};
use ledger_format::checkpoint::SignedCheckpoint;
use ledger_format::entry::EntryKind;
use ledger_format::key_event::KeyEvent;
use ledger_format::leaf::Leaf;
use ledger_format::note::{Note, SignerKey, VerifierKey};
use ledger_format::policy::Policy;
use ledger_format::tile::{BundleId, TileId};
use ledger_format::tree::CompactRange;
use ledger_format::{Hash, TreeSize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::anchors::{Anchored, KafkaSource, S3Source};
use crate::cli::Outcome;
use crate::tiles::TileSource;

/// What to audit.
pub struct AuditArgs {
    /// The server, when `tiles` is not given.
    pub url: String,
    /// Read the log from static tlog-tiles (a URL or the WORM bucket) instead of a server.
    pub tiles: Option<TileSource>,
    pub log_key: VerifierKey,
    /// Report range, Unix ms (inclusive start, exclusive end).
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
    pub policy: Option<Policy>,
    pub anchor_dir: Option<PathBuf>,
    pub s3: Option<S3Source>,
    pub kafka: Option<KafkaSource>,
    pub auditor_key: Option<SignerKey>,
    pub out: PathBuf,
    /// Parallel downloads.
    pub jobs: usize,
}

/// Bundles per download window (each window is fetched in parallel, then checked in order).
const WINDOW: u64 = 64;

use ledger_format::summary::Tally;

struct Progress {
    total: u64,
    start: Instant,
    last: Instant,
    tty: bool,
    last_pct: u64,
}

impl Progress {
    fn show(&mut self, done: u64) {
        let rate = done as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
        let eta = (self.total.saturating_sub(done)) as f64 / rate.max(1.0);
        if self.tty {
            if self.last.elapsed().as_millis() >= 200 || done == self.total {
                self.last = Instant::now();
                let width = 30;
                let filled = (done * width / self.total.max(1)) as usize;
                eprint!(
                    "\raudit [{}{}] {done}/{} entries  {:.0}/s  ETA {:.0} s   ",
                    "#".repeat(filled),
                    " ".repeat(width as usize - filled),
                    self.total,
                    rate,
                    eta
                );
            }
        } else {
            let pct = done * 10 / self.total.max(1);
            if pct > self.last_pct {
                self.last_pct = pct;
                eprintln!(
                    "audit: {done}/{} entries ({}%), {:.0}/s, ETA {:.0} s",
                    self.total,
                    pct * 10,
                    rate,
                    eta
                );
            }
        }
    }
}

/// Everything the replay learns.
#[derive(Default)]
struct Facts {
    /// The entries of the range, counted as the server's summary counts them.
    tally: Tally,
    requests: BTreeMap<String, Logged>,
    lineages: BTreeMap<String, Logged>,
    decisions: BTreeMap<String, Vec<Logged>>,
    anomalies: Vec<Value>,
    bytes: u64,
    /// The newest anchored size, and when its last entry was logged.
    anchored_size: Option<u64>,
    anchored_until_ms: Option<u64>,
}

/// The log's checkpoint as read at the start of the audit, and where it was read from.
struct Head {
    /// The source's description (a URL or the WORM bucket).
    source: String,
    /// The checkpoint note, as served.
    note: String,
    origin: String,
    size: u64,
    root: Hash,
}

/// The log keys in force over the tree: the given key, then each rotation's new key after
/// the size it hands over at.
struct LogKeys<'k> {
    first: &'k VerifierKey,
    rotations: &'k [KeyEvent],
}

impl LogKeys<'_> {
    /// Returns the key in force at tree size `size`.
    fn at(&self, size: u64) -> &VerifierKey {
        self.rotations
            .iter()
            .take_while(|ev| ev.after_size < size)
            .last()
            .map_or(self.first, |ev| &ev.new_key)
    }

    /// Opens a checkpoint note with the key in force at its claimed size.
    fn open(&self, text: &[u8]) -> Result<SignedCheckpoint, String> {
        let claimed = SignedCheckpoint::parse(text).map_err(|e| e.to_string())?;
        SignedCheckpoint::open(text, self.at(claimed.checkpoint.size.0), &[])
            .map(|(s, _)| s)
            .map_err(|e| {
                format!(
                    "{e} (the key in force at size {} is {})",
                    claimed.checkpoint.size,
                    self.at(claimed.checkpoint.size.0)
                )
            })
    }
}

/// Returns the log's key rotations, followed from the given key, that explain the signature
/// of the checkpoint `note`: each checkpoint must be signed by the key in force at its size
/// (the hand-over checkpoint by both). Static tiles carry no rotations: there the given key
/// must be the one in force.
fn follow_rotations(a: &AuditArgs, http: &TileSource, note: &str) -> Result<Vec<KeyEvent>> {
    Ok(match SignedCheckpoint::open(note.as_bytes(), &a.log_key, &[]) {
        Ok(_) => Vec::new(),
        Err(e) if a.tiles.is_some() => bail!(
            "the checkpoint of {} does not verify with the log key: {e} (reading static tiles, key rotations are not followed: give the key in force)",
            http.describe()
        ),
        Err(e) => match crate::keys::follow_note(&a.url, note, &a.log_key) {
            Ok(Some((_, events, _))) => events,
            Ok(None) => bail!("the log's checkpoint does not verify with the log key: {e}"),
            Err(f) => bail!(
                "the log's checkpoint does not verify with the log key ({e}) and no key rotation explains it: {f:#}"
            ),
        },
    })
}

/// The checkpoints the replay must reproduce, and where they came from.
struct Expected {
    /// By tree size, each place that claims a root there.
    roots: BTreeMap<u64, Vec<(String, Hash)>>,
    /// How many of the server's stored checkpoints verified.
    stored: u64,
    /// How many anchored checkpoints verified, per backend.
    verified_by_backend: BTreeMap<&'static str, u64>,
    /// The sizes of the anchored checkpoints that verified.
    anchored_sizes: BTreeSet<u64>,
}

impl Expected {
    /// Starts with the log's latest checkpoint.
    fn new(head: &Head) -> Expected {
        let mut roots: BTreeMap<u64, Vec<(String, Hash)>> = BTreeMap::new();
        roots
            .entry(head.size)
            .or_default()
            .push(("latest checkpoint".into(), head.root));
        Expected {
            roots,
            stored: 0,
            verified_by_backend: BTreeMap::new(),
            anchored_sizes: BTreeSet::new(),
        }
    }

    /// Adds the checkpoints a server stored (its anchoring choices), page by page; one that
    /// does not verify is an anomaly.
    fn add_stored(&mut self, http: &TileSource, keys: &LogKeys, f: &mut Facts) -> Result<()> {
        let json =
            |path: &str| -> Result<Value> { Ok(serde_json::from_slice(&http.bytes(path)?)?) };
        let mut from = 0u64;
        loop {
            let page = json(&format!("v1/checkpoints?from={from}&limit=1000"))?;
            for c in page["checkpoints"].as_array().into_iter().flatten() {
                let text = c["checkpoint"].as_str().unwrap_or_default();
                match keys.open(text.as_bytes()) {
                    Ok(s) => {
                        self.stored += 1;
                        self.roots
                            .entry(s.checkpoint.size.0)
                            .or_default()
                            .push((format!("stored checkpoint {}", s.checkpoint.size), s.checkpoint.root));
                    }
                    Err(e) => f.anomalies.push(json!({"kind": "bad_checkpoint", "message": format!("stored checkpoint {}: {e}", c["size"])})),
                }
            }
            match page["next"].as_u64() {
                Some(n) => from = n,
                None => return Ok(()),
            }
        }
    }

    /// Adds the anchored checkpoints of every configured backend (directory, S3, Kafka); an
    /// anchor with a problem or that does not verify is an anomaly.
    fn add_anchors(
        &mut self,
        a: &AuditArgs,
        origin: &str,
        keys: &LogKeys,
        f: &mut Facts,
    ) -> Result<()> {
        let mut sources = Vec::new();
        if let Some(d) = &a.anchor_dir {
            sources.push(("dir", crate::anchors::read_dir(d), Vec::new()));
        }
        if let Some(s) = &a.s3 {
            sources.push(crate::anchors::s3_source(s, origin));
        }
        if let Some(k) = &a.kafka {
            sources.push(crate::anchors::kafka_source(k, origin));
        }
        for (name, read, _) in sources {
            let anchored: Vec<Anchored> =
                read.with_context(|| format!("reading the {name} anchors"))?;
            let mut ok = 0u64;
            for x in anchored {
                if let Some(p) = &x.problem {
                    f.anomalies
                        .push(json!({"kind": "anchor", "message": format!("{}: {p}", x.place)}));
                    continue;
                }
                match keys.open(&x.note) {
                    Ok(s) => {
                        ok += 1;
                        let n = s.checkpoint.size.0;
                        self.anchored_sizes.insert(n);
                        self.roots
                            .entry(n)
                            .or_default()
                            .push((x.place.clone(), s.checkpoint.root));
                    }
                    Err(e) => f
                        .anomalies
                        .push(json!({"kind": "anchor", "message": format!("{}: {e}", x.place)})),
                }
            }
            self.verified_by_backend.insert(name, ok);
        }
        Ok(())
    }

    /// Returns the size of the newest anchored checkpoint that verified.
    fn newest_anchored(&self) -> Option<u64> {
        self.anchored_sizes.last().copied()
    }

    /// Returns how many sizes of stored checkpoints have a verified anchor.
    fn stored_anchored(&self) -> usize {
        let stored_sizes: BTreeSet<u64> = self
            .roots
            .iter()
            .filter(|(_, v)| v.iter().any(|(p, _)| p.starts_with("stored checkpoint")))
            .map(|(n, _)| *n)
            .collect();
        stored_sizes.intersection(&self.anchored_sizes).count()
    }

    /// Records as anomalies the expected checkpoints beyond the log's size: a fork or a
    /// rollback of the served log.
    fn note_beyond_log(&self, size: u64, f: &mut Facts) {
        for (n, places) in self.roots.range(size + 1..) {
            for (place, _) in places {
                f.anomalies.push(json!({"kind": "beyond_log", "message": format!("{place} is at size {n}, beyond the log's {size}: the log was rolled back or forked")}));
            }
        }
    }
}

/// The tree being rebuilt, entry by entry, and the expected roots it is compared with.
struct Replay<'e> {
    /// The tree size of the checkpoint under audit.
    size: u64,
    expected: &'e Expected,
    range: CompactRange,
    /// How many expected roots were compared.
    checked_points: u64,
}

impl Replay<'_> {
    /// Compares the root at the current size with every expected root there; a difference
    /// is an anomaly.
    fn check_point(&mut self, f: &mut Facts) {
        if let Some(places) = self.expected.roots.get(&self.range.size().0) {
            let r = self.range.root();
            for (place, want) in places {
                self.checked_points += 1;
                if *want != r {
                    f.anomalies.push(json!({"kind": "root_mismatch", "size": self.range.size().0,
                        "message": format!("{place}: root {want} at size {}, the entries give {r}", self.range.size())}));
                }
            }
        }
    }

    /// Replays entry bundle `b` with its level-0 tile: checks their widths against the
    /// checkpoint, each leaf against the tile, appends and accounts every entry.
    fn bundle(
        &mut self,
        a: &AuditArgs,
        b: u64,
        bundle: &[u8],
        tile: &[u8],
        f: &mut Facts,
    ) -> Result<()> {
        let size = self.size;
        let leaves = ledger_format::tile::decode_bundle(bundle)
            .map_err(|e| anyhow!("entry bundle {b}: {e}"))?;
        let hashes =
            ledger_format::tile::decode_tile(tile).map_err(|e| anyhow!("tile 0/{b}: {e}"))?;
        // The checkpoint's size fixes every bundle's and tile's width: a source that hides
        // or adds entries (with a tile to match) is caught here, not only at a root.
        let want = BundleId::for_size(b, TreeSize(size)).map_or(0, |x| x.width as usize);
        if leaves.len() != want || hashes.len() != want {
            bail!(
                "entry bundle {b} holds {} entries and its level-0 tile {} hashes, but the checkpoint of size {size} makes it {want} wide: the source hides or adds entries",
                leaves.len(),
                hashes.len()
            );
        }
        for (i, leaf) in leaves.iter().enumerate() {
            let index = b * 256 + i as u64;
            let h = ledger_format::leaf_hash(leaf);
            if hashes.get(i) != Some(&h) {
                f.anomalies.push(json!({"kind": "tampered_entry", "index": index,
                    "message": format!("entry {index} hashes to {}, the tree records {}", h.to_hex(), hashes.get(i).map_or("nothing".into(), |x| x.to_hex()))}));
            }
            self.range.append(h);
            account(f, a, index, leaf, h);
            self.check_point(f);
        }
        Ok(())
    }
}

/// Downloads the entry bundles `ids` and their level-0 tiles of the tree of `size` on `jobs`
/// threads; returns them in the order of `ids`.
fn download_window(
    http: &TileSource,
    ids: &[u64],
    size: u64,
    jobs: usize,
) -> Vec<Result<(Vec<u8>, Vec<u8>)>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..jobs)
            .map(|j| {
                s.spawn(move || {
                    ids.iter()
                        .skip(j)
                        .step_by(jobs)
                        .map(|&b| {
                            let bundle = BundleId::for_size(b, TreeSize(size))
                                .ok_or_else(|| anyhow!("no bundle {b}"))?;
                            let tile = TileId::for_size(0, b, TreeSize(size))
                                .ok_or_else(|| anyhow!("no tile 0/{b}"))?;
                            Ok((http.bytes(&bundle.path())?, http.bytes(&tile.path())?))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut per: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("download thread").into_iter())
            .collect();
        (0..ids.len())
            .map(|k| {
                per[k % jobs]
                    .next()
                    .unwrap_or_else(|| Err(anyhow!("missing download")))
            })
            .collect()
    })
}

/// Downloads and replays every entry of the tree of `size`, window by window, showing
/// progress; returns how many expected checkpoint roots were compared.
fn replay(
    a: &AuditArgs,
    http: &TileSource,
    size: u64,
    expected: &Expected,
    f: &mut Facts,
) -> Result<u64> {
    let mut tree = Replay {
        size,
        expected,
        range: CompactRange::new(),
        checked_points: 0,
    };
    let mut progress = Progress {
        total: size,
        start: Instant::now(),
        last: Instant::now(),
        tty: std::io::stderr().is_terminal(),
        last_pct: 0,
    };
    let bundles = size.div_ceil(256);
    let mut w = 0;
    while w < bundles {
        let end = (w + WINDOW).min(bundles);
        let ids: Vec<u64> = (w..end).collect();
        let fetched = download_window(http, &ids, size, a.jobs.max(1));
        for (k, r) in fetched.into_iter().enumerate() {
            let (bundle, tile) = r?;
            f.bytes += bundle.len() as u64;
            tree.bundle(a, w + k as u64, &bundle, &tile, f)?;
            progress.show(tree.range.size().0);
        }
        w = end;
    }
    if progress.tty {
        eprintln!();
    }
    // Every entry of the checkpoint was replayed, so its root was compared (check_point at
    // `size`, an anomaly when it differs).
    anyhow::ensure!(
        tree.range.size().0 == size,
        "the replay ended at {} entries, but the checkpoint is of size {size}",
        tree.range.size()
    );
    Ok(tree.checked_points)
}

/// The governance findings: every request's status and every deployment's quorum.
struct Governance {
    /// Requests per status (`pending`, `approved`, `rejected`).
    statuses: BTreeMap<&'static str, u64>,
    request_items: Vec<Value>,
    with_quorum: u64,
    without_quorum: u64,
    deployment_items: Vec<Value>,
}

/// Evaluates every logged request against the policy now; returns the count per status and
/// one item per request (none without a policy).
fn evaluate_requests(
    policy: Option<&Policy>,
    f: &Facts,
) -> (BTreeMap<&'static str, u64>, Vec<Value>) {
    let mut statuses = BTreeMap::from([("pending", 0u64), ("approved", 0), ("rejected", 0)]);
    let mut request_items = Vec::new();
    let Some(p) = policy else {
        return (statuses, request_items);
    };
    for (hash, req) in &f.requests {
        let Some(st) = req.request().map(|r| &r.statement) else {
            continue;
        };
        let lineage = f.lineages.get(&st.lineage.to_hex());
        let (related, decisions) = gather(req, f.requests.values(), |h| {
            f.decisions.get(&h.to_hex()).cloned().unwrap_or_default()
        });
        let case = Case {
            request: req,
            lineage,
            related: &related,
            decisions: &decisions,
        };
        let ev = evaluate(p, &case, crate::time::now_ms());
        let s = match ev.status {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
        };
        *statuses.entry(s).or_default() += 1;
        request_items.push(
            json!({"request": hash, "index": req.index, "model_id": st.model_id,
            "requested_by": st.requested_by, "status": s, "approvers": ev.approvers}),
        );
    }
    (statuses, request_items)
}

/// Decides whether deployment `d` had a valid quorum at its time, from the entries logged
/// before it: returns true, false or null (no policy) and why not (the failed rules).
fn deployment_quorum(policy: Option<&Policy>, f: &Facts, d: &Value) -> (Value, String) {
    let req = d["request"].as_str().unwrap_or_default();
    match (policy, f.requests.get(req)) {
        (None, _) => (Value::Null, "no policy given".to_owned()),
        (Some(_), None) => (json!(false), format!("request {req} is not in the log")),
        (Some(p), Some(r)) => {
            let at = d["logged_at_ms"].as_u64().unwrap_or(0);
            let index = d["index"].as_u64().unwrap_or(0);
            let lineage = r
                .request()
                .and_then(|x| f.lineages.get(&x.statement.lineage.to_hex()));
            let earlier = |h: &Hash| -> Vec<Logged> {
                f.decisions
                    .get(&h.to_hex())
                    .into_iter()
                    .flatten()
                    .filter(|x| x.index < index)
                    .cloned()
                    .collect()
            };
            let requests = f.requests.values().filter(|x| x.index < index);
            let (related, before) = gather(r, requests, earlier);
            let case = Case {
                request: r,
                lineage,
                related: &related,
                decisions: &before,
            };
            let ev = evaluate(p, &case, at);
            (json!(ev.approved()), ev.failures().join("; "))
        }
    }
}

/// Re-evaluates every request and deployment against the policy; a deployment without a
/// valid quorum is an anomaly.
fn evaluate_governance(policy: Option<&Policy>, f: &mut Facts) -> Governance {
    let (statuses, request_items) = evaluate_requests(policy, f);
    let mut with_quorum = 0;
    let mut without_quorum = 0;
    let mut deployment_items = Vec::new();
    for d in &f.tally.deployments {
        let req = d["request"].as_str().unwrap_or_default();
        let (quorum, why) = deployment_quorum(policy, f, d);
        match quorum.as_bool() {
            Some(true) => with_quorum += 1,
            Some(false) => {
                without_quorum += 1;
                f.anomalies.push(json!({"kind": "deployment_without_quorum", "index": d["index"],
                    "message": format!("deployment at entry {} of request {req}: {why}", d["index"])}));
            }
            None => {}
        }
        let mut item = d.clone();
        item["valid_quorum"] = quorum;
        if !why.is_empty() {
            item["why"] = why.into();
        }
        deployment_items.push(item);
    }
    Governance {
        statuses,
        request_items,
        with_quorum,
        without_quorum,
        deployment_items,
    }
}

/// How the replay went.
struct Replayed {
    seconds: f64,
    /// How many expected checkpoint roots were compared.
    checked_points: u64,
}

/// Builds `report.json`'s document.
fn build_report(
    a: &AuditArgs,
    head: &Head,
    rotations: &[KeyEvent],
    expected: &Expected,
    f: &Facts,
    replayed: &Replayed,
    gov: &Governance,
) -> Value {
    let (size, stored, replay_secs) = (head.size, expected.stored, replayed.seconds);
    let newest_anchored = expected.newest_anchored();
    let statuses = &gov.statuses;
    let now_s = crate::time::now_ms() / 1000;
    json!({
        "format": "govledger-audit-report/v1",
        "origin": head.origin,
        "source": head.source,
        "tree_size": size,
        "root": head.root.to_base64(),
        "checkpoint": head.note,
        "generated_at": crate::time::rfc3339_ms(crate::time::now_ms()),
        "range": {"from": a.from_ms.map(crate::time::rfc3339_ms), "to": a.to_ms.map(crate::time::rfc3339_ms)},
        "replay": {"entries": size, "bytes": f.bytes, "seconds": replay_secs,
                   "entries_per_second": size as f64 / replay_secs.max(1e-9),
                   "checkpoints_checked": replayed.checked_points, "stored_checkpoints": stored},
        "entries": f.tally.entries_json(),
        "audit_events_by_tag": f.tally.tags,
        "models": f.tally.models,
        "approvals": {"policy": a.policy.as_ref().map(|p| p.name.clone().unwrap_or_else(|| "unnamed".into())),
                      "pending": statuses["pending"], "approved": statuses["approved"], "rejected": statuses["rejected"],
                      "requests": gov.request_items},
        "deployments": {"with_quorum": gov.with_quorum, "without_quorum": gov.without_quorum, "items": gov.deployment_items},
        "anchors": {"verified_by_backend": expected.verified_by_backend, "newest_anchored_size": newest_anchored,
                    "newest_anchored_lag_entries": newest_anchored.map(|n| size - n.min(size)),
                    "newest_anchored_covers_until": f.anchored_until_ms.map(crate::time::rfc3339_ms),
                    "newest_anchored_age_seconds": f.anchored_until_ms.map(|t| now_s.saturating_sub(t / 1000)),
                    "stored_checkpoints_anchored": expected.stored_anchored(), "stored_checkpoints": stored},
        "anomalies": f.anomalies,
        "key_rotations": rotations.iter().map(|ev| json!({"index": ev.after_size,
            "old_key": ev.old_key.to_string(), "new_key": ev.new_key.to_string(), "reason": ev.reason})).collect::<Vec<_>>(),
    })
}

/// Writes `report.json` and `report.html` to the output directory, and with an auditor key
/// `report.json.sig`; returns report.json's SHA-256 (hex).
fn write_report(a: &AuditArgs, head: &Head, report: &Value) -> Result<String> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let json_bytes = serde_json::to_vec_pretty(report)?;
    std::fs::write(a.out.join("report.json"), &json_bytes)?;
    std::fs::write(
        a.out.join("report.html"),
        crate::report_html::render(report),
    )?;
    let digest = hex::encode(Sha256::digest(&json_bytes));
    if let Some(k) = &a.auditor_key {
        let text = format!(
            "govledger/audit-report/v1\n{}\n{}\n{}\n{digest}\n",
            head.origin,
            head.size,
            head.root.to_base64()
        );
        let signed = Note::sign(&text, &[k]).map_err(|e| anyhow!("signing the report: {e}"))?;
        std::fs::write(a.out.join("report.json.sig"), signed.to_text())?;
    }
    Ok(digest)
}

/// Returns the audit's outcome: valid with the summary, or (after printing the summary and
/// every anomaly) invalid with the count of anomalies.
fn outcome(
    a: &AuditArgs,
    head: &Head,
    replayed: &Replayed,
    report: &Value,
    digest: &str,
) -> Outcome {
    let (origin, size, replay_secs) = (&head.origin, head.size, replayed.seconds);
    let checked_points = replayed.checked_points;
    let anomalies = report["anomalies"].as_array().map_or(0, Vec::len);
    let summary = format!(
        "audit of {origin} at size {size}: {} entries replayed in {replay_secs:.2} s ({:.0}/s), {checked_points} checkpoint roots recomputed, {anomalies} anomalies; report in {} (report.json sha256 {digest})",
        size, size as f64 / replay_secs.max(1e-9), a.out.display()
    );
    if anomalies == 0 {
        Outcome::Valid(summary)
    } else {
        println!("{summary}");
        for x in report["anomalies"].as_array().into_iter().flatten() {
            println!(
                "ANOMALY {}: {}",
                x["kind"].as_str().unwrap_or(""),
                x["message"].as_str().unwrap_or("")
            );
        }
        Outcome::Invalid(format!("{anomalies} anomalies"))
    }
}

/// Runs the audit.
pub fn run(a: &AuditArgs) -> Result<Outcome> {
    let started = Instant::now();
    let own;
    let http: &TileSource = match &a.tiles {
        Some(t) => t,
        None => {
            own = TileSource::url(&a.url)?;
            &own
        }
    };
    let note = String::from_utf8(http.bytes("checkpoint")?)?;
    let rotations = follow_rotations(a, http, &note)?;
    let keys = LogKeys {
        first: &a.log_key,
        rotations: &rotations,
    };
    let latest = keys
        .open(note.as_bytes())
        .map_err(|e| anyhow!("the log's checkpoint does not verify: {e}"))?;
    let head = Head {
        source: http.describe(),
        origin: latest.checkpoint.origin.clone(),
        size: latest.checkpoint.size.0,
        root: latest.checkpoint.root,
        note,
    };
    let mut f = Facts::default();

    // Checkpoints to check against the replay: stored (anchoring choices) and anchored. A
    // server also lists the checkpoints it chose for anchoring; static tiles have only
    // `checkpoint`.
    let mut expected = Expected::new(&head);
    if a.tiles.is_none() {
        expected.add_stored(http, &keys, &mut f)?;
    }
    expected.add_anchors(a, &head.origin, &keys, &mut f)?;
    f.anchored_size = expected.newest_anchored();
    expected.note_beyond_log(head.size, &mut f);

    let checked_points = replay(a, http, head.size, &expected, &mut f)?;
    let replayed = Replayed {
        seconds: started.elapsed().as_secs_f64(),
        checked_points,
    };
    for n in http.take_notes() {
        f.anomalies
            .push(json!({"kind": "overwritten_object", "message": n}));
    }

    // Governance: every request's status, every deployment's quorum (at its time).
    let gov = evaluate_governance(a.policy.as_ref(), &mut f);
    let report = build_report(a, &head, &rotations, &expected, &f, &replayed, &gov);
    let digest = write_report(a, &head, &report)?;
    Ok(outcome(a, &head, &replayed, &report, &digest))
}

/// Accounts one entry.
fn account(f: &mut Facts, a: &AuditArgs, index: u64, leaf: &[u8], h: Hash) {
    let Ok(l) = Leaf::parse(leaf) else {
        f.anomalies.push(json!({"kind": "malformed_entry", "index": index, "message": format!("entry {index} is not a valid leaf envelope")}));
        return;
    };
    let in_range =
        a.from_ms.is_none_or(|t| l.logged_at_ms >= t) && a.to_ms.is_none_or(|t| l.logged_at_ms < t);
    let needs_body = in_range || !matches!(l.kind, EntryKind::Audit);
    let body: Value = if needs_body {
        match serde_json::from_slice(&l.body) {
            Ok(v) => v,
            Err(_) => {
                f.anomalies.push(json!({"kind": "malformed_entry", "index": index, "message": format!("entry {index}: the body is not JSON")}));
                return;
            }
        }
    } else {
        Value::Null
    };
    if in_range {
        f.tally.account(index, &h, &l, &body);
    }
    let hex = h.to_hex();
    let logged = || match std::str::from_utf8(&l.body)
        .ok()
        .and_then(|t| ledger_format::entry::Body::parse(l.kind, t).ok())
    {
        Some(parsed) => Some(Logged {
            index,
            leaf_hash: h,
            logged_at_ms: l.logged_at_ms,
            body: parsed,
        }),
        None => None,
    };
    match l.kind {
        EntryKind::Lineage => {
            f.lineages.extend(logged().map(|e| (hex, e)));
        }
        EntryKind::ApprovalRequest => {
            f.requests.extend(logged().map(|e| (hex, e)));
        }
        EntryKind::Approval => {
            let req = body["statement"]["request"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            f.decisions.entry(req).or_default().extend(logged());
        }
        _ => {}
    }
    if f.anchored_size == Some(index + 1) {
        f.anchored_until_ms = Some(l.logged_at_ms);
    }
}

/// `govledger audit`: exit 0 without anomalies, 1 with (0 with `--exit-zero-on-anomalies`
/// once the report is written), 2 when no report could be made.
pub fn command(c: crate::args::AuditCmd) -> Result<Outcome> {
    let exit_zero = c.exit_zero_on_anomalies;
    let outcome = run_command(c)?;
    Ok(match outcome {
        // The anomalies were printed beside the summary; the report was written.
        Outcome::Invalid(why) if exit_zero => {
            Outcome::Valid(format!("{why}; report written (--exit-zero-on-anomalies)"))
        }
        other => other,
    })
}

/// Runs the audit the command line describes: exit 0 without anomalies, 1 with.
fn run_command(c: crate::args::AuditCmd) -> Result<Outcome> {
    let log_key = VerifierKey::parse(&c.log_key).map_err(|e| anyhow!("--log-key: {e}"))?;
    let tiles = c.tiles.source(
        (
            c.remote.s3_endpoint.clone(),
            c.remote.s3_region.clone(),
            c.remote.s3_path_style,
        ),
        log_key.name(),
    )?;
    let (s3, kafka) = c.remote.sources()?;
    let policy = c.policy.map(|p| crate::gate::read_policy(&p)).transpose()?;
    let date = crate::arg_groups::parse_date;
    run(&AuditArgs {
        url: c.url,
        tiles,
        log_key,
        from_ms: c.from.map(|d| date("from", &d)).transpose()?,
        to_ms: c.to.map(|d| date("to", &d)).transpose()?,
        policy,
        anchor_dir: c.anchor_dir,
        s3,
        kafka,
        auditor_key: c
            .auditor_key
            .map(|k| crate::keyfile::read(&k))
            .transpose()?,
        out: c.out,
        jobs: c.jobs,
    })
}
