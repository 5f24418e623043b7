//! `govledger monitor`: follows a log and never lets a fork, a rollback, a split view or a
//! governance violation pass unnoticed.
//!
//! The first poll pins the log: it replays every entry through the tiles and checks that they
//! hash to the signed root. Every later poll verifies the new checkpoint's signature, its
//! consistency with the last verified one (the server's proof, verified here), downloads the new
//! entries through the tiles and recomputes the root from the persisted compact range, so every
//! entry is checked against the tree. The state (checkpoint, compact range, governance facts) is
//! written atomically after each poll, so a restart resumes where it stopped.
//!
//! Alerts are JSON lines on stdout: `{"time", "alert", "severity", "origin", "tree_size",
//! "message", "details"}` with `alert` one of `bad_signature`, `rollback`, `fork`,
//! `entries_mismatch`, `split_view`, `stale_witness`, `deployment_without_quorum`,
//! `approval_unknown_key`, `request_unknown_key`, `unrecorded_dataset`; each is also POSTed to
//! the webhook when one is given.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ledger_format::approval::{evaluate, gather, verify_statement, Case, Logged};
use ledger_format::entry::{Attestation, Body, DeploymentStatus};
use ledger_format::key_event::KeyChain;
use ledger_format::note::VerifierKey;
use ledger_format::policy::Policy;
use ledger_format::proof::ConsistencyProof;
use ledger_format::tile::BundleId;
use ledger_format::tree::CompactRange;
use ledger_format::{Hash, TreeSize};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Monitor settings.
pub struct MonitorArgs {
    /// The server, when `tiles` is not given.
    pub url: String,
    /// Read the log from static tlog-tiles (a URL or the WORM bucket) instead of a server:
    /// the replay through the tiles from the saved compact range is the consistency proof;
    /// key rotations are not followed and no witnessed checkpoint is asked for.
    pub tiles: Option<crate::tiles::TileSource>,
    pub log_key: VerifierKey,
    pub state: PathBuf,
    pub policy: Option<Policy>,
    /// Witness cosigner keys (type 0x04).
    pub witness_keys: Vec<VerifierKey>,
    /// Alert when the newest witness cosignature is older than this many seconds.
    pub max_witness_age: Option<u64>,
    /// A local anchor directory to compare with.
    pub anchor_dir: Option<PathBuf>,
    /// Witnesses' monitoring URLs, asked directly for the latest checkpoint they cosigned
    /// (`GET <url>/<hex sha256(origin)>/checkpoint`), so the log cannot hide a split view.
    pub witness_urls: Vec<String>,
    pub webhook: Option<String>,
}

/// One alert.
#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    pub time: String,
    pub alert: &'static str,
    pub severity: &'static str,
    pub origin: String,
    pub tree_size: u64,
    pub message: String,
    pub details: Value,
}

/// What the monitor remembers between polls.
#[derive(Default, Serialize, Deserialize)]
struct State {
    version: u32,
    checkpoint: String,
    size: u64,
    /// The compact range of the verified tree at `size` (base64 hashes).
    compact: Vec<String>,
    /// Governance entries by leaf hash (hex): index and leaf (base64).
    requests: BTreeMap<String, (u64, String)>,
    lineages: BTreeMap<String, (u64, String)>,
    /// Decisions per request hash.
    decisions: BTreeMap<String, Vec<(u64, String)>>,
    /// Every dataset digest recorded by a lineage entry so far.
    datasets: BTreeSet<String>,
    /// The log keys followed from `--log-key` through key_event entries, oldest first; the last
    /// one signs the log's checkpoints now. Empty: only `--log-key`.
    #[serde(default)]
    keys: Vec<String>,
    /// For each key after the first, the size of the head its rotation followed
    /// (`after.size`): the spans of tree sizes each key signs.
    #[serde(default)]
    rotated_after: Vec<u64>,
}

use crate::time::now_ms;

fn read_state(path: &Path) -> Result<Option<State>> {
    match std::fs::read(path) {
        Ok(b) => {
            Ok(Some(serde_json::from_slice(&b).with_context(|| {
                format!("monitor state {}", path.display())
            })?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn logged(index: u64, leaf_b64: &str) -> Option<Logged> {
    Logged::from_leaf(index, &STANDARD.decode(leaf_b64).ok()?).ok()
}

/// The monitor.
pub struct Monitor {
    a: MonitorArgs,
    http: reqwest::blocking::Client,
}

impl Monitor {
    pub fn new(a: MonitorArgs) -> Result<Monitor> {
        std::fs::create_dir_all(&a.state)
            .with_context(|| format!("creating {}", a.state.display()))?;
        Ok(Monitor {
            a,
            http: crate::http::blocking_builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()?,
        })
    }

    fn state_path(&self) -> PathBuf {
        self.a.state.join("monitor.json")
    }

    fn get(&self, path: &str) -> Result<reqwest::blocking::Response> {
        let url = format!("{}{path}", self.a.url.trim_end_matches('/'));
        self.http
            .get(&url)
            .send()
            .with_context(|| format!("reaching {url}"))
    }

    /// Returns the tlog-tiles object at `path` (`checkpoint`, `tile/...`).
    fn object(&self, path: &str) -> Result<Vec<u8>> {
        match &self.a.tiles {
            Some(t) => t.bytes(path),
            None => Ok(self
                .get(&format!("/{path}"))?
                .error_for_status()?
                .bytes()?
                .to_vec()),
        }
    }

    fn alert(
        &self,
        out: &mut Vec<Alert>,
        size: u64,
        alert: &'static str,
        severity: &'static str,
        message: String,
        details: Value,
    ) {
        out.push(Alert {
            time: crate::time::rfc3339_ms(now_ms()),
            alert,
            severity,
            origin: self.a.log_key.name().to_owned(),
            tree_size: size,
            message,
            details,
        });
    }

    /// Returns a consistency proof old → new from the server, verified.
    fn prove(&self, old: u64, old_root: &Hash, new: u64, new_root: &Hash) -> Result<(), String> {
        if old == 0 {
            return Ok(());
        }
        if old == new {
            return if old_root == new_root {
                Ok(())
            } else {
                Err(format!("two roots for size {new}"))
            };
        }
        if self.a.tiles.is_some() {
            // Static tiles serve no proofs: the replay from the saved compact range to the
            // new root (poll) proves the same, and more.
            return Ok(());
        }
        let v: Value = self
            .get(&format!("/v1/proofs/consistency?old={old}&new={new}"))
            .and_then(|r| Ok(r.error_for_status()?.json()?))
            .map_err(|e| format!("no consistency proof {old} -> {new}: {e:#}"))?;
        let path = v["proof"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| Hash::from_base64(h.as_str().unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        ConsistencyProof {
            old: TreeSize(old),
            new: TreeSize(new),
            path,
        }
        .verify(old_root, new_root)
        .map_err(|e| format!("size {old} is not consistent with size {new}: {e}"))
    }

    /// Downloads entries `[from, to)` through the tiles of the tree of `size`.
    fn entries(&self, from: u64, to: u64, size: u64) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::with_capacity((to - from) as usize);
        let mut i = from;
        while i < to {
            let b = BundleId::for_size(i / 256, TreeSize(size))
                .ok_or_else(|| anyhow!("no entry bundle for index {i} at size {size}"))?;
            let bytes = self.object(&b.path())?;
            let leaves = ledger_format::tile::decode_bundle(&bytes)
                .map_err(|e| anyhow!("{}: {e}", b.path()))?;
            let (start, end) = b.leaf_range();
            if leaves.len() as u64 != end - start {
                bail!(
                    "{} holds {} entries, not {}",
                    b.path(),
                    leaves.len(),
                    end - start
                );
            }
            for (j, leaf) in leaves.iter().enumerate() {
                let idx = start + j as u64;
                if idx >= i && idx < to {
                    out.push(leaf.to_vec());
                }
            }
            i = end.min(to).max(i + 1);
        }
        Ok(out)
    }

    /// One poll: returns the alerts it raised. An error means it could not check (exit 2).
    pub fn poll(&self) -> Result<Vec<Alert>> {
        let mut alerts = Vec::new();
        let note = String::from_utf8(self.object("checkpoint")?)
            .map_err(|_| anyhow!("the checkpoint is not UTF-8"))?;
        let mut state = read_state(&self.state_path())?.unwrap_or_default();
        let mut chain = self.chain(&state)?;
        let current = chain.current().clone();
        let opened = crate::keys::open_in_chain(&note, &chain, &[])
            .map(|(s, _)| s.checkpoint)
            .or_else(|e| match if self.a.tiles.is_none() {
                crate::keys::follow_note(&self.a.url, &note, &current)
            } else {
                Ok(None)
            } {
                // The key changed: the log records the hand-over, which checks out.
                Ok(Some((key, events, cp))) => {
                    for ev in events {
                        self.alert(
                            &mut alerts,
                            cp.size.0,
                            "key_rotation",
                            "info",
                            format!(
                                "the log key rotated from {} to {} after size {} ({})",
                                ev.old_key, ev.new_key, ev.after_size, ev.reason
                            ),
                            json!({"old_key": ev.old_key.to_string(), "new_key": ev.new_key.to_string(),
                                   "index": ev.after_size}),
                        );
                        chain.push(ev.after_size, ev.new_key);
                    }
                    debug_assert_eq!(chain.current(), &key);
                    Ok(cp)
                }
                Ok(None) => Err(e.to_string()),
                Err(why) => Err(format!("{e}; {why:#}")),
            });
        let latest = match opened {
            Ok(cp) => cp,
            Err(e) => {
                self.alert(
                    &mut alerts,
                    0,
                    "bad_signature",
                    "critical",
                    format!("the server's checkpoint does not verify with the log key: {e}"),
                    json!({"checkpoint": note}),
                );
                return self.finish(alerts);
            }
        };
        let (size, root) = (latest.size.0, latest.root);
        let (old_size, old_root) = if state.checkpoint.is_empty() {
            (0, Hash::EMPTY)
        } else {
            let (s, _) = crate::keys::open_in_chain(&state.checkpoint, &chain, &[])
                .map_err(|e| anyhow!("the saved checkpoint does not verify: {e}"))?;
            (s.checkpoint.size.0, s.checkpoint.root)
        };
        if size < old_size {
            self.alert(
                &mut alerts,
                size,
                "rollback",
                "critical",
                format!(
                    "the server's checkpoint is at size {size}, below the verified size {old_size}"
                ),
                json!({"verified_size": old_size, "served_size": size, "served": note}),
            );
            return self.finish(alerts);
        }
        if let Err(why) = self.prove(old_size, &old_root, size, &root) {
            self.alert(
                &mut alerts,
                size,
                "fork",
                "critical",
                why,
                json!({"verified": state.checkpoint, "served": note}),
            );
            return self.finish(alerts);
        }
        if size > old_size {
            let stack = state
                .compact
                .iter()
                .map(|h| Hash::from_base64(h))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow!("monitor state: {e}"))?;
            let mut range = CompactRange::from_parts(TreeSize(old_size), stack)
                .ok_or_else(|| anyhow!("monitor state: a malformed compact range"))?;
            let mut next = old_size;
            while next < size {
                let end = (next + 256 * 64).min(size);
                let leaves = self.entries(next, end, size)?;
                for (k, leaf) in leaves.iter().enumerate() {
                    range.append(ledger_format::leaf_hash(leaf));
                    self.governance(&mut state, &mut alerts, next + k as u64, leaf, size);
                }
                next = end;
            }
            if range.root() != root {
                self.alert(&mut alerts, size, "entries_mismatch", "critical",
                    format!("the entries {old_size}..{size} served through the tiles do not hash to the signed root"),
                    json!({"served": note}));
                return self.finish(alerts);
            }
            state.compact = range.hashes().iter().map(Hash::to_base64).collect();
        }
        for n in self.a.tiles.iter().flat_map(|t| t.take_notes()) {
            self.alert(
                &mut alerts,
                size,
                "overwritten_object",
                "warning",
                n,
                json!({}),
            );
        }
        self.split_view(&mut alerts, size, &root, &chain);
        state.keys = chain.keys().map(|k| k.to_string()).collect();
        state.rotated_after = chain.rotated_after().collect();
        state.version = 1;
        state.size = size;
        state.checkpoint = note;
        crate::witness::write_atomic(&self.state_path(), &serde_json::to_vec(&state)?)
            .with_context(|| format!("writing {}", self.state_path().display()))?;
        self.finish(alerts)
    }

    /// Compares the served checkpoint with the witnessed one and the local anchors.
    /// The log's keys as the state records them, from `--log-key`.
    fn chain(&self, state: &State) -> Result<KeyChain> {
        let mut chain = KeyChain::new(self.a.log_key.clone());
        let later = state.keys.iter().skip(1);
        if later.len() != state.rotated_after.len() {
            bail!("monitor state {}: it lists {} rotated keys but {} rotation sizes; start from a fresh state directory to re-follow the rotations", self.state_path().display(), later.len(), state.rotated_after.len());
        }
        for (k, after) in later.zip(&state.rotated_after) {
            let key = VerifierKey::parse(k).map_err(|e| anyhow!("monitor state: key {k}: {e}"))?;
            chain.push(*after, key);
        }
        Ok(chain)
    }

    fn split_view(&self, alerts: &mut Vec<Alert>, size: u64, root: &Hash, keys: &KeyChain) {
        let mut observed: Vec<(String, String)> = Vec::new();
        let witnessed = self
            .a
            .tiles
            .is_none()
            .then(|| self.get("/v1/checkpoints/witnessed"));
        if let Some(Ok(r)) = witnessed {
            if r.status().is_success() {
                if let Ok(t) = r.text() {
                    observed.push(("witnessed".into(), t));
                }
            } else if self.a.max_witness_age.is_some() {
                self.alert(
                    alerts,
                    size,
                    "stale_witness",
                    "warning",
                    "the log serves no witnessed checkpoint".into(),
                    json!({}),
                );
            }
        }
        for w in &self.a.witness_urls {
            let url = format!(
                "{}/{}/checkpoint",
                w.trim_end_matches('/'),
                ledger_format::anchor::origin_id(self.a.log_key.name())
            );
            match self.http.get(&url).send() {
                Ok(r) if r.status().is_success() => {
                    if let Ok(t) = r.text() {
                        observed.push((format!("witness {w}"), t));
                    }
                }
                Ok(r) if r.status().as_u16() == 404 => {}
                Ok(r) => eprintln!("monitor: {url} answered {}", r.status()),
                Err(e) => eprintln!("monitor: {url}: {e}"),
            }
        }
        if let Some(dir) = &self.a.anchor_dir {
            let newest = std::fs::read_dir(dir).ok().and_then(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        ledger_format::anchor::size_of_name(&n).map(|s| (s, e.path()))
                    })
                    .max()
            });
            if let Some((_, path)) = newest {
                if let Ok(t) = std::fs::read_to_string(&path) {
                    observed.push((path.display().to_string(), t));
                }
            }
        }
        for (source, text) in observed {
            let (signed, verified) =
                match crate::keys::open_in_chain(&text, keys, &self.a.witness_keys) {
                    Ok(x) => x,
                    Err(e) => {
                        self.alert(
                            alerts,
                            size,
                            "split_view",
                            "critical",
                            format!(
                                "{source}: a checkpoint that does not verify with the log key: {e}"
                            ),
                            json!({"checkpoint": text}),
                        );
                        continue;
                    }
                };
            let (s, r) = (signed.checkpoint.size.0, signed.checkpoint.root);
            let check = if s <= size {
                self.prove(s, &r, size, root)
            } else {
                // Newer than /checkpoint (a race with a new round); it must extend ours.
                self.prove(size, root, s, &r)
            };
            if let Err(why) = check {
                self.alert(
                    alerts,
                    size,
                    "split_view",
                    "critical",
                    format!(
                        "{source} holds a checkpoint the served one is not consistent with: {why}"
                    ),
                    json!({"checkpoint": text}),
                );
            }
            if source == "witnessed" {
                if let Some(max) = self.a.max_witness_age {
                    let newest = verified.iter().filter_map(|v| v.timestamp).max();
                    let now = now_ms() / 1000;
                    match newest {
                        Some(t) if now.saturating_sub(t) <= max => {}
                        t => self.alert(
                            alerts,
                            size,
                            "stale_witness",
                            "warning",
                            format!(
                                "the newest witness cosignature is {} (limit {max} s)",
                                t.map_or("absent".into(), |t| format!(
                                    "{} s old",
                                    now.saturating_sub(t)
                                ))
                            ),
                            json!({"newest_cosignature": t}),
                        ),
                    }
                }
            }
        }
    }

    /// Governance checks on one new entry.
    fn governance(
        &self,
        st: &mut State,
        alerts: &mut Vec<Alert>,
        index: u64,
        leaf: &[u8],
        size: u64,
    ) {
        let Ok(e) = Logged::from_leaf(index, leaf) else {
            return;
        };
        let hex = e.leaf_hash.to_hex();
        let b64 = STANDARD.encode(leaf);
        match &e.body {
            Body::Lineage(l) => {
                for d in &l.datasets {
                    st.datasets.insert(d.sha256.clone());
                }
                st.lineages.insert(hex, (index, b64));
            }
            Body::ApprovalRequest(r) => {
                let unseen: Vec<&str> = r
                    .statement
                    .dataset_sha256
                    .iter()
                    .map(String::as_str)
                    .filter(|d| !st.datasets.contains(*d))
                    .collect();
                if !unseen.is_empty() {
                    self.alert(alerts, size, "unrecorded_dataset", "warning",
                        format!("request {hex} (entry {index}) names dataset digests no earlier lineage recorded: {}", unseen.join(", ")),
                        json!({"request": hex, "index": index, "datasets": unseen}));
                }
                if let Some(p) = &self.a.policy {
                    let who = &r.statement.requested_by;
                    let verdict = p
                        .people
                        .get(who)
                        .ok_or_else(|| format!("{who:?} is not a registered person"))
                        .and_then(|person| {
                            verify_statement(
                                person,
                                &r.statement_json,
                                &r.signature,
                                r.statement.signed_at.ms,
                            )
                        });
                    if let Err(why) = verdict {
                        self.alert(
                            alerts,
                            size,
                            "request_unknown_key",
                            "critical",
                            format!("request {hex} (entry {index}): {why}"),
                            json!({"request": hex, "index": index}),
                        );
                    }
                }
                st.requests.insert(hex, (index, b64));
            }
            Body::Approval(a) => {
                let stmt = &a.statement;
                if let (Some(p), Attestation::Signed { signature }) =
                    (&self.a.policy, &a.attestation)
                {
                    let who = &stmt.approver;
                    let verdict = p
                        .people
                        .get(who)
                        .ok_or_else(|| format!("{who:?} is not a registered person"))
                        .and_then(|person| {
                            verify_statement(
                                person,
                                &a.statement_json,
                                signature,
                                stmt.signed_at.ms,
                            )
                        });
                    if let Err(why) = verdict {
                        self.alert(alerts, size, "approval_unknown_key", "critical",
                            format!("approval {hex} (entry {index}) is not signed by a key in the policy: {why}"),
                            json!({"approval": hex, "index": index, "approver": who}));
                    }
                }
                st.decisions
                    .entry(stmt.request.to_hex())
                    .or_default()
                    .push((index, b64));
            }
            Body::Deployment(d) => {
                let Some(p) = &self.a.policy else { return };
                if d.status != DeploymentStatus::Success {
                    return;
                }
                let req = d.request.to_hex();
                let request = st.requests.get(&req).and_then(|(i, l)| logged(*i, l));
                let Some(request) = request else {
                    self.alert(alerts, size, "deployment_without_quorum", "critical",
                        format!("deployment {hex} (entry {index}) names request {req}, which the log does not hold"),
                        json!({"deployment": hex, "index": index, "request": req}));
                    return;
                };
                let lineage = request
                    .request()
                    .and_then(|r| st.lineages.get(&r.statement.lineage.to_hex()))
                    .and_then(|(i, l)| logged(*i, l));
                let requests: Vec<Logged> = st
                    .requests
                    .values()
                    .filter_map(|(i, l)| logged(*i, l))
                    .collect();
                let (related, decisions) = gather(&request, &requests, |h| {
                    st.decisions
                        .get(&h.to_hex())
                        .into_iter()
                        .flatten()
                        .filter_map(|(i, l)| logged(*i, l))
                        .collect()
                });
                let case = Case {
                    request: &request,
                    lineage: lineage.as_ref(),
                    related: &related,
                    decisions: &decisions,
                };
                let ev = evaluate(p, &case, e.logged_at_ms);
                if !ev.approved() {
                    let failed = ev.failures();
                    self.alert(alerts, size, "deployment_without_quorum", "critical",
                        format!("deployment {hex} (entry {index}) of request {req} without a valid four-eyes approval: {}", failed.join("; ")),
                        json!({"deployment": hex, "index": index, "request": req, "failed": failed}));
                }
            }
            _ => {}
        }
    }

    fn finish(&self, alerts: Vec<Alert>) -> Result<Vec<Alert>> {
        for a in &alerts {
            println!("{}", serde_json::to_string(a)?);
            if let Some(url) = &self.a.webhook {
                if let Err(e) = self
                    .http
                    .post(url)
                    .json(a)
                    .send()
                    .and_then(|r| r.error_for_status())
                {
                    eprintln!("monitor: posting the alert to {url}: {e}");
                }
            }
        }
        Ok(alerts)
    }
}

/// `govledger monitor`: with `--once`, exit 0 without serious alerts (informational ones, a
/// followed key rotation, are printed), 1 with; else polls until killed.
pub fn command(c: crate::args::MonitorCmd) -> Result<crate::cli::Outcome> {
    use crate::cli::Outcome;
    let policy = c.policy.map(|p| crate::gate::read_policy(&p)).transpose()?;
    let witness_keys = match c.witness_keys {
        Some(f) => read_witness_keys(&f)?,
        None => Vec::new(),
    };
    let log_key = VerifierKey::parse(&c.log_key).map_err(|e| anyhow!("--log-key: {e}"))?;
    let tiles = c.tiles.source(
        (c.s3_endpoint, c.s3_region, c.s3_path_style),
        log_key.name(),
    )?;
    let m = Monitor::new(MonitorArgs {
        url: c.url,
        tiles,
        log_key,
        state: c.state,
        policy,
        witness_keys,
        max_witness_age: c.max_witness_age,
        anchor_dir: c.anchor_dir,
        witness_urls: c.witness_urls,
        webhook: c.alert_webhook,
    })?;
    if c.once {
        let alerts = m.poll()?;
        let serious = alerts.iter().filter(|a| a.severity != "info").count();
        return Ok(if serious == 0 {
            Outcome::Valid(String::new())
        } else {
            Outcome::Invalid(format!("{serious} alert(s)"))
        });
    }
    loop {
        if let Err(e) = m.poll() {
            eprintln!("monitor: {e:#}");
        }
        std::thread::sleep(std::time::Duration::from_secs_f64(c.interval.max(0.1)));
    }
}

/// Reads a file of witness keys, one per line (`#` comments): cosigner keys (type 0x04) as
/// given, Ed25519 note keys as the cosigner key of the same key.
pub fn read_witness_keys(path: &Path) -> Result<Vec<VerifierKey>> {
    std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let k = VerifierKey::parse(l).map_err(|e| anyhow!("--witness-keys: {l}: {e}"))?;
            Ok(match k.sig_type() {
                ledger_format::note::SigType::Cosignature => k,
                _ => ledger_format::cosig::as_cosigner(&k),
            })
        })
        .collect()
}
