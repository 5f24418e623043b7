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

fn day_of(ms: u64) -> String {
    crate::time::rfc3339_ms(ms)[..10].to_owned()
}

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
    by_day: BTreeMap<String, BTreeMap<&'static str, u64>>,
    by_kind: BTreeMap<&'static str, u64>,
    tags: BTreeMap<String, u64>,
    in_range: u64,
    models: Vec<Value>,
    requests: BTreeMap<String, Logged>,
    lineages: BTreeMap<String, Logged>,
    decisions: BTreeMap<String, Vec<Logged>>,
    deployments: Vec<Value>,
    anomalies: Vec<Value>,
    bytes: u64,
    /// The newest anchored size, and when its last entry was logged.
    anchored_size: Option<u64>,
    anchored_until_ms: Option<u64>,
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
    let json = |path: &str| -> Result<Value> { Ok(serde_json::from_slice(&http.bytes(path)?)?) };
    let note = String::from_utf8(http.bytes("checkpoint")?)?;
    // The log's key rotations, followed from the given key: each checkpoint must be signed by
    // the key in force at its size (the hand-over checkpoint by both).
    let rotations = match SignedCheckpoint::open(note.as_bytes(), &a.log_key, &[]) {
        Ok(_) => Vec::new(),
        Err(e) if a.tiles.is_some() => bail!(
            "the checkpoint of {} does not verify with the log key: {e} (reading static tiles, key rotations are not followed: give the key in force)",
            http.describe()
        ),
        Err(e) => match crate::keys::follow_note(&a.url, &note, &a.log_key) {
            Ok(Some((_, events, _))) => events,
            Ok(None) => bail!("the log's checkpoint does not verify with the log key: {e}"),
            Err(f) => bail!(
                "the log's checkpoint does not verify with the log key ({e}) and no key rotation explains it: {f:#}"
            ),
        },
    };
    let key_at = |size: u64| -> &VerifierKey {
        rotations
            .iter()
            .take_while(|ev| ev.after_size < size)
            .last()
            .map_or(&a.log_key, |ev| &ev.new_key)
    };
    let open = |text: &[u8]| -> Result<SignedCheckpoint, String> {
        let claimed = SignedCheckpoint::parse(text).map_err(|e| e.to_string())?;
        SignedCheckpoint::open(text, key_at(claimed.checkpoint.size.0), &[])
            .map(|(s, _)| s)
            .map_err(|e| {
                format!(
                    "{e} (the key in force at size {} is {})",
                    claimed.checkpoint.size,
                    key_at(claimed.checkpoint.size.0)
                )
            })
    };
    let latest =
        open(note.as_bytes()).map_err(|e| anyhow!("the log's checkpoint does not verify: {e}"))?;
    let (size, root) = (latest.checkpoint.size.0, latest.checkpoint.root);
    let origin = latest.checkpoint.origin.clone();
    let mut f = Facts::default();

    // Checkpoints to check against the replay: stored (anchoring choices) and anchored.
    let mut expected: BTreeMap<u64, Vec<(String, Hash)>> = BTreeMap::new();
    expected
        .entry(size)
        .or_default()
        .push(("latest checkpoint".into(), root));
    let mut stored = 0u64;
    let mut from = 0u64;
    // A server also lists the checkpoints it chose for anchoring; static tiles have only
    // `checkpoint`.
    while a.tiles.is_none() {
        let page = json(&format!("v1/checkpoints?from={from}&limit=1000"))?;
        for c in page["checkpoints"].as_array().into_iter().flatten() {
            let text = c["checkpoint"].as_str().unwrap_or_default();
            match open(text.as_bytes()) {
                Ok(s) => {
                    stored += 1;
                    expected
                        .entry(s.checkpoint.size.0)
                        .or_default()
                        .push((format!("stored checkpoint {}", s.checkpoint.size), s.checkpoint.root));
                }
                Err(e) => f.anomalies.push(json!({"kind": "bad_checkpoint", "message": format!("stored checkpoint {}: {e}", c["size"])})),
            }
        }
        match page["next"].as_u64() {
            Some(n) => from = n,
            None => break,
        }
    }
    let mut anchor_report = BTreeMap::new();
    let mut anchored_sizes = BTreeSet::new();
    let mut newest_anchored: Option<u64> = None;
    let mut sources = Vec::new();
    if let Some(d) = &a.anchor_dir {
        sources.push(("dir", crate::anchors::read_dir(d), Vec::new()));
    }
    if let Some(s) = &a.s3 {
        sources.push(crate::anchors::s3_source(s, &origin));
    }
    if let Some(k) = &a.kafka {
        sources.push(crate::anchors::kafka_source(k, &origin));
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
            match open(&x.note) {
                Ok(s) => {
                    ok += 1;
                    let n = s.checkpoint.size.0;
                    newest_anchored = newest_anchored.max(Some(n));
                    anchored_sizes.insert(n);
                    expected
                        .entry(n)
                        .or_default()
                        .push((x.place.clone(), s.checkpoint.root));
                }
                Err(e) => f
                    .anomalies
                    .push(json!({"kind": "anchor", "message": format!("{}: {e}", x.place)})),
            }
        }
        anchor_report.insert(name, ok);
    }
    f.anchored_size = newest_anchored;
    let stored_sizes: BTreeSet<u64> = expected
        .iter()
        .filter(|(_, v)| v.iter().any(|(p, _)| p.starts_with("stored checkpoint")))
        .map(|(n, _)| *n)
        .collect();
    let stored_anchored = stored_sizes.intersection(&anchored_sizes).count();
    // Expected sizes beyond the latest checkpoint: a fork or a rollback of the served log.
    for (n, places) in expected.range(size + 1..) {
        for (place, _) in places {
            f.anomalies.push(json!({"kind": "beyond_log", "message": format!("{place} is at size {n}, beyond the log's {size}: the log was rolled back or forked")}));
        }
    }

    // The replay.
    let mut range = CompactRange::new();
    let mut checked_points = 0u64;
    let mut progress = Progress {
        total: size,
        start: Instant::now(),
        last: Instant::now(),
        tty: std::io::stderr().is_terminal(),
        last_pct: 0,
    };
    let mut check_point = |range: &CompactRange, f: &mut Facts| {
        if let Some(places) = expected.get(&range.size().0) {
            let r = range.root();
            for (place, want) in places {
                checked_points += 1;
                if *want != r {
                    f.anomalies.push(json!({"kind": "root_mismatch", "size": range.size().0,
                        "message": format!("{place}: root {want} at size {}, the entries give {r}", range.size())}));
                }
            }
        }
    };
    let bundles = size.div_ceil(256);
    let mut w = 0;
    while w < bundles {
        let end = (w + WINDOW).min(bundles);
        let ids: Vec<u64> = (w..end).collect();
        let jobs = a.jobs.max(1);
        let fetched: Vec<Result<(Vec<u8>, Vec<u8>)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..jobs)
                .map(|j| {
                    let ids = &ids;
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
        });
        for (k, r) in fetched.into_iter().enumerate() {
            let (bundle, tile) = r?;
            f.bytes += bundle.len() as u64;
            let b = w + k as u64;
            let leaves = ledger_format::tile::decode_bundle(&bundle)
                .map_err(|e| anyhow!("entry bundle {b}: {e}"))?;
            let hashes =
                ledger_format::tile::decode_tile(&tile).map_err(|e| anyhow!("tile 0/{b}: {e}"))?;
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
                range.append(h);
                account(&mut f, a, index, leaf, h);
                check_point(&range, &mut f);
            }
            progress.show(range.size().0);
        }
        w = end;
    }
    if progress.tty {
        eprintln!();
    }
    // Every entry of the checkpoint was replayed, so its root was compared (check_point at
    // `size`, an anomaly when it differs).
    anyhow::ensure!(
        range.size().0 == size,
        "the replay ended at {} entries, but the checkpoint is of size {size}",
        range.size()
    );
    let replay_secs = started.elapsed().as_secs_f64();
    for n in http.take_notes() {
        f.anomalies
            .push(json!({"kind": "overwritten_object", "message": n}));
    }

    // Governance: every request's status, every deployment's quorum (at its time).
    let mut statuses = BTreeMap::from([("pending", 0u64), ("approved", 0), ("rejected", 0)]);
    let mut request_items = Vec::new();
    if let Some(p) = &a.policy {
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
    }
    let mut with_quorum = 0;
    let mut without_quorum = 0;
    let mut deployment_items = Vec::new();
    for d in &f.deployments {
        let req = d["request"].as_str().unwrap_or_default();
        let (quorum, why) = match (&a.policy, f.requests.get(req)) {
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
                let failed: Vec<String> = ev
                    .checks
                    .iter()
                    .chain(&ev.rules)
                    .filter(|c| !c.ok)
                    .map(|c| format!("{}: {}", c.rule, c.detail))
                    .collect();
                (json!(ev.approved()), failed.join("; "))
            }
        };
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

    let now_s = crate::time::now_ms() / 1000;
    let report = json!({
        "format": "govledger-audit-report/v1",
        "origin": origin,
        "source": http.describe(),
        "tree_size": size,
        "root": root.to_base64(),
        "checkpoint": note,
        "generated_at": crate::time::rfc3339_ms(crate::time::now_ms()),
        "range": {"from": a.from_ms.map(crate::time::rfc3339_ms), "to": a.to_ms.map(crate::time::rfc3339_ms)},
        "replay": {"entries": size, "bytes": f.bytes, "seconds": replay_secs,
                   "entries_per_second": size as f64 / replay_secs.max(1e-9),
                   "checkpoints_checked": checked_points, "stored_checkpoints": stored},
        "entries": {"in_range": f.in_range, "by_kind": f.by_kind, "by_day": f.by_day},
        "audit_events_by_tag": f.tags,
        "models": f.models,
        "approvals": {"policy": a.policy.as_ref().map(|p| p.name.clone().unwrap_or_else(|| "unnamed".into())),
                      "pending": statuses["pending"], "approved": statuses["approved"], "rejected": statuses["rejected"],
                      "requests": request_items},
        "deployments": {"with_quorum": with_quorum, "without_quorum": without_quorum, "items": deployment_items},
        "anchors": {"verified_by_backend": anchor_report, "newest_anchored_size": newest_anchored,
                    "newest_anchored_lag_entries": newest_anchored.map(|n| size - n.min(size)),
                    "newest_anchored_covers_until": f.anchored_until_ms.map(crate::time::rfc3339_ms),
                    "newest_anchored_age_seconds": f.anchored_until_ms.map(|t| now_s.saturating_sub(t / 1000)),
                    "stored_checkpoints_anchored": stored_anchored, "stored_checkpoints": stored},
        "anomalies": f.anomalies,
        "key_rotations": rotations.iter().map(|ev| json!({"index": ev.after_size,
            "old_key": ev.old_key.to_string(), "new_key": ev.new_key.to_string(), "reason": ev.reason})).collect::<Vec<_>>(),
    });
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let json_bytes = serde_json::to_vec_pretty(&report)?;
    std::fs::write(a.out.join("report.json"), &json_bytes)?;
    std::fs::write(
        a.out.join("report.html"),
        crate::report_html::render(&report),
    )?;
    let digest = hex::encode(Sha256::digest(&json_bytes));
    if let Some(k) = &a.auditor_key {
        let text = format!(
            "govledger/audit-report/v1\n{origin}\n{size}\n{}\n{digest}\n",
            root.to_base64()
        );
        let signed = Note::sign(&text, &[k]).map_err(|e| anyhow!("signing the report: {e}"))?;
        std::fs::write(a.out.join("report.json.sig"), signed.to_text())?;
    }
    let anomalies = report["anomalies"].as_array().map_or(0, Vec::len);
    let summary = format!(
        "audit of {origin} at size {size}: {} entries replayed in {replay_secs:.2} s ({:.0}/s), {checked_points} checkpoint roots recomputed, {anomalies} anomalies; report in {} (report.json sha256 {digest})",
        size, size as f64 / replay_secs.max(1e-9), a.out.display()
    );
    if anomalies == 0 {
        Ok(Outcome::Valid(summary))
    } else {
        println!("{summary}");
        for x in report["anomalies"].as_array().into_iter().flatten() {
            println!(
                "ANOMALY {}: {}",
                x["kind"].as_str().unwrap_or(""),
                x["message"].as_str().unwrap_or("")
            );
        }
        Ok(Outcome::Invalid(format!("{anomalies} anomalies")))
    }
}

/// Accounts one entry.
fn account(f: &mut Facts, a: &AuditArgs, index: u64, leaf: &[u8], h: Hash) {
    let Ok(l) = Leaf::parse(leaf) else {
        f.anomalies.push(json!({"kind": "malformed_entry", "index": index, "message": format!("entry {index} is not a valid leaf envelope")}));
        return;
    };
    let in_range =
        a.from_ms.is_none_or(|t| l.logged_at_ms >= t) && a.to_ms.is_none_or(|t| l.logged_at_ms < t);
    let kind = l.kind.name();
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
        f.in_range += 1;
        *f.by_kind.entry(kind).or_default() += 1;
        *f.by_day
            .entry(day_of(l.logged_at_ms))
            .or_default()
            .entry(kind)
            .or_default() += 1;
        if l.kind == EntryKind::Audit {
            for t in body["compliance_tags"].as_array().into_iter().flatten() {
                if let Some(t) = t.as_str() {
                    *f.tags.entry(t.to_owned()).or_default() += 1;
                }
            }
        }
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
            if in_range {
                let datasets: Vec<Value> = body["datasets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| json!({"name": d["name"], "type": d["type"], "sha256": d["sha256"]}))
                    .collect();
                f.models.push(json!({"model_id": body["model_id"], "model_version": body["model_version"], "index": index,
                    "leaf_hash": hex, "logged_at": crate::time::rfc3339_ms(l.logged_at_ms), "datasets": datasets,
                    "artifact_sha256": body["artifact"]["sha256"]}));
            }
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
        EntryKind::Deployment if in_range => {
            f.deployments.push(json!({"index": index, "leaf_hash": hex, "request": body["request"], "model_id": body["model_id"],
                "status": body["status"], "environment": body["environment"], "executed_by": body["executed_by"],
                "logged_at": crate::time::rfc3339_ms(l.logged_at_ms), "logged_at_ms": l.logged_at_ms}));
        }
        _ => {}
    }
    if f.anchored_size == Some(index + 1) {
        f.anchored_until_ms = Some(l.logged_at_ms);
    }
}

/// `govledger audit`.
pub fn command(c: crate::args::AuditCmd) -> Result<Outcome> {
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
