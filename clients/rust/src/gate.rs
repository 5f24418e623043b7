//! `govledger gate`: the deploy gate. Decides whether a release request may go live from an
//! approval bundle (a file, or fetched from the server), trusting only the policy: the log key
//! that must have signed the checkpoint, the people, their keys and roles. Every rule is
//! evaluated and reported; the gate passes only when all hold.
//!
//! Rules, in report order (ledger-format SPEC.md §7.5): `bundle_format` (only when the bundle
//! does not parse or is not canonical), `checkpoint_signature`, `inclusion_proofs`,
//! `key_rotation` (with a URL, when rotations were followed or following failed),
//! `witness_cosignatures` (when the policy requires witnesses), `request_match`, `entry_times`,
//! `checkpoint_fresh` (with `[freshness] max_checkpoint_age`), the pre-approval checks
//! (`lineage_present`, `lineage_model`, `lineage_artifact`, `lineage_datasets`, `environment`,
//! `policy_name`, `metric:<path>`), the approval rules (`request_signature`, `approvals`,
//! `required_roles`, `required_sources`, `not_requester`, `no_later_rejection`,
//! `approval_age`), `sources_recheck` (with `--recheck-sources`), `artifact` and, with a URL,
//! `log_consistency` and `bundle_complete`.

use std::cell::OnceCell;
use std::collections::HashSet;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ledger_format::approval::{evaluate, Bundle, Decision, Logged, OpenedBundle};
use ledger_format::checkpoint::SignedCheckpoint;
use ledger_format::note::VerifierKey;
use ledger_format::policy::{Check, Policy};
use ledger_format::Hash;
use serde::Serialize;
use serde_json::Value;

use crate::github::GitHub;
use govledger_connectors::servicenow::{Credentials, ServiceNow};

/// What to decide.
pub struct GateArgs<'a> {
    pub policy: &'a Path,
    /// A saved bundle (a file, or its bytes); without it the bundle is fetched from `url`.
    pub bundle: Option<BundleInput<'a>>,
    /// The server's base URL: the gate asks its index for every approval and rejection of the
    /// request and refuses when the bundle omits one (and fetches the bundle when no file is
    /// given).
    pub url: Option<&'a str>,
    /// The request's leaf hash (hex or base64).
    pub request: &'a str,
    /// The artifact about to be deployed, hashed and compared with the approved digest.
    pub artifact: Option<&'a Path>,
    /// The time approvals' age is measured at (Unix ms).
    pub now_ms: u64,
    /// Re-read every imported approval from its source (rule `sources_recheck`).
    pub recheck: bool,
    /// Where the sources are.
    pub sources: Sources,
    /// Publish the verdict as the commit status `govledger/four-eyes` on the request's head
    /// commit.
    pub github_status: bool,
}

/// A bundle given to the gate.
#[derive(Clone, Copy, Debug)]
pub enum BundleInput<'a> {
    /// A file saved from `GET /v1/approvals/{request}/bundle` (`-` for stdin).
    File(&'a Path),
    /// The bundle's bytes (the Python gate's bundles in memory).
    Bytes(&'a [u8]),
}

/// Where imported approvals are re-read and the verdict published. Secrets come from the
/// environment (`GITHUB_TOKEN`, or the App's key file; `SERVICENOW_CLIENT_ID` and
/// `SERVICENOW_CLIENT_SECRET` for OAuth, `SERVICENOW_TOKEN`, or `SERVICENOW_USER` and
/// `SERVICENOW_PASSWORD`) and are never printed.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    pub github_api: String,
    /// Authenticate to GitHub as this App (else with `GITHUB_TOKEN`).
    pub github_app: Option<crate::github::App>,
    pub servicenow_url: Option<String>,
}

/// The gate's connections to GitHub and ServiceNow, made on first use and kept for the run
/// (an App's installation token and a ServiceNow OAuth token then serve all of it). The
/// clients are async (`govledger_connectors`); their calls run on a runtime of the gate's own,
/// on a thread of their own, so the gate may be called from anywhere.
struct Remote<'s> {
    sources: &'s Sources,
    rt: OnceCell<tokio::runtime::Runtime>,
    github: OnceCell<GitHub>,
    servicenow: OnceCell<ServiceNow>,
}

impl<'s> Remote<'s> {
    fn new(sources: &'s Sources) -> Remote<'s> {
        Remote {
            sources,
            rt: OnceCell::new(),
            github: OnceCell::new(),
            servicenow: OnceCell::new(),
        }
    }

    /// Runs a connector call to its end.
    fn call<T: Send>(
        &self,
        f: impl std::future::Future<Output = Result<T, govledger_connectors::Error>> + Send,
    ) -> Result<T> {
        if self.rt.get().is_none() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let _ = self.rt.set(rt);
        }
        let rt = self.rt.get().expect("set above");
        let out = std::thread::scope(|s| s.spawn(|| rt.block_on(f)).join());
        Ok(out.map_err(|_| anyhow::anyhow!("a GitHub or ServiceNow call panicked"))??)
    }

    fn github(&self) -> Result<&GitHub> {
        if self.github.get().is_none() {
            let gh =
                crate::github::connect(&self.sources.github_api, self.sources.github_app.as_ref())?;
            let _ = self.github.set(gh);
        }
        Ok(self.github.get().expect("set above"))
    }

    fn servicenow(&self) -> Result<&ServiceNow> {
        if self.servicenow.get().is_none() {
            let base = self.sources.servicenow_url.as_deref().ok_or_else(|| {
                anyhow::anyhow!("--servicenow-url is needed to re-read ServiceNow approvals")
            })?;
            let sn = ServiceNow::new(
                base,
                Credentials::from_env(),
                crate::http::builder().build()?,
            );
            let _ = self.servicenow.set(sn);
        }
        Ok(self.servicenow.get().expect("set above"))
    }
}

/// Re-reads one imported decision; returns why the source no longer agrees, if it does not.
fn recheck(remote: &Remote, request: &Value, d: &Decision) -> Result<Option<String>> {
    let Some(ev) = &d.evidence else {
        return Ok(None);
    };
    match d.source.as_str() {
        "github" => {
            let g = &request["statement"]["github"];
            let repo = g["repo"].as_str().unwrap_or_default();
            let gh = remote.github()?;
            let Some(now) = remote.call(gh.review(repo, &g["pr"], &ev["review_id"]))? else {
                return Ok(Some(format!(
                    "GitHub review {} no longer exists",
                    ev["review_id"]
                )));
            };
            if now["state"] != ev["state"] || now["commit_id"] != ev["commit_sha"] {
                return Ok(Some(format!(
                    "GitHub review {} by {} is now {} on {}",
                    ev["review_id"], ev["reviewer"], now["state"], now["commit_id"]
                )));
            }
            Ok(None)
        }
        "servicenow" => {
            let sn = remote.servicenow()?;
            let sys_id = ev["sys_id"].as_str().unwrap_or_default();
            let Some(now) =
                remote.call(sn.record("sysapproval_approver", sys_id, "sys_id,state"))?
            else {
                return Ok(Some(format!(
                    "ServiceNow approval {} no longer exists",
                    ev["sys_id"]
                )));
            };
            if now["state"] != ev["state"] {
                return Ok(Some(format!(
                    "ServiceNow approval {} on {} is now {}",
                    ev["sys_id"], ev["change"], now["state"]
                )));
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// The proven checkpoint.
#[derive(Debug, Serialize)]
pub struct CheckpointInfo {
    pub origin: String,
    pub size: u64,
    pub root: String,
}

/// The gate's decision (`--json` prints it; its shape is documented in the client README).
#[derive(Debug, Serialize)]
pub struct Report {
    /// True only when every rule holds.
    pub ok: bool,
    pub request: String,
    pub policy: Option<String>,
    pub checkpoint: Option<CheckpointInfo>,
    pub rules: Vec<Check>,
    /// Names of the rules that failed.
    pub failed: Vec<String>,
    /// Distinct approvers that counted.
    pub approvers: Vec<String>,
    pub decisions: Vec<Decision>,
    /// The verdict published with --github-status (`success` or `failure`): a commit status,
    /// or a check run with App authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub github_status: Option<String>,
    /// The check run carrying the verdict, when it was published with App authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub github_check_run: Option<u64>,
}

impl Report {
    /// Returns the report as text: one line per rule, then the verdict.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for c in &self.rules {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            out.push_str(&format!("{mark} {}: {}\n", c.rule, c.detail));
        }
        for d in self.decisions.iter().filter(|d| d.evidence.is_some()) {
            out.push_str(&format!(
                "     evidence for {} ({}, {}): {}\n",
                d.who,
                d.source,
                d.decision,
                d.evidence
                    .as_ref()
                    .map(Value::to_string)
                    .unwrap_or_default()
            ));
        }
        match (&self.github_status, self.github_check_run) {
            (Some(s), Some(id)) => {
                out.push_str(&format!("     check run govledger/four-eyes ({id}): {s}\n"))
            }
            (Some(s), None) => {
                out.push_str(&format!("     commit status govledger/four-eyes: {s}\n"))
            }
            _ => {}
        }
        if self.ok {
            out.push_str(&format!(
                "gate: PASS: request {} approved by [{}]",
                self.request,
                self.approvers.join(", ")
            ));
        } else {
            out.push_str(&format!(
                "gate: REFUSED: {} rule(s) failed: {}",
                self.failed.len(),
                self.failed.join(", ")
            ));
        }
        out
    }
}

fn get(url: &str) -> Result<reqwest::blocking::Response> {
    crate::http::blocking()
        .get(url)
        .send()
        .with_context(|| format!("reaching {url}"))?
        .error_for_status()
        .with_context(|| format!("GET {url}"))
}

/// Returns the leaf hashes of every approval and rejection of `request` the server's index
/// knows, following `next_cursor` to the end.
fn indexed_decisions(url: &str, request: &str) -> Result<Vec<String>> {
    indexed(url, &format!("kind=approval&request={request}"))
}

/// The leaf hashes of every entry the log's index lists for `filter`, following `next_cursor`.
fn indexed(url: &str, filter: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cursor = 0u64;
    loop {
        let page: Value = get(&format!(
            "{url}/v1/entries?{filter}&limit=1000&cursor={cursor}"
        ))?
        .json()?;
        for e in page["entries"].as_array().into_iter().flatten() {
            out.push(e["leaf_hash"].as_str().unwrap_or_default().to_owned());
        }
        match page["next_cursor"].as_u64() {
            Some(c) => cursor = c,
            None => return Ok(out),
        }
    }
}

/// The rule `bundle_complete` (with `--url`): the bundle holds every other request the log's
/// index knows for the artifact, and every decision on the request and on those of them in
/// its environment (whose rejections stand against it). A server that leaves out a standing
/// rejection, on this request or on another for the artifact, is caught.
fn bundle_complete(
    url: &str,
    request: &str,
    bundle: &Bundle,
    opened: &OpenedBundle,
) -> Result<Check> {
    let Some(req) = opened.request.as_ref().and_then(|r| r.request()) else {
        return Ok(Check {
            rule: "bundle_complete".into(),
            ok: false,
            detail: "the bundle's request is not proven".into(),
        });
    };
    let artifact = &req.statement.artifact_sha256;
    let related: HashSet<&str> = bundle
        .related
        .iter()
        .map(|e| e.leaf_hash.as_str())
        .collect();
    let mut missing: Vec<String> =
        indexed(url, &format!("kind=approval_request&artifact={artifact}"))?
            .into_iter()
            .filter(|h| h != request && !related.contains(h.as_str()))
            .map(|h| format!("request {h}"))
            .collect();
    let mut scope = vec![request.to_owned()];
    scope.extend(
        opened
            .related
            .iter()
            .filter(|r| {
                r.request()
                    .is_some_and(|o| o.statement.environment == req.statement.environment)
            })
            .map(|r| r.leaf_hash.to_hex()),
    );
    let have: HashSet<&str> = bundle
        .approvals
        .iter()
        .map(|e| e.leaf_hash.as_str())
        .collect();
    let mut known = 0;
    for r in &scope {
        for h in indexed_decisions(url, r)? {
            known += 1;
            if !have.contains(h.as_str()) {
                missing.push(format!("decision {h}"));
            }
        }
    }
    Ok(Check {
        rule: "bundle_complete".into(),
        ok: missing.is_empty(),
        detail: if missing.is_empty() {
            format!(
                "the bundle holds the {} other request(s) for the artifact and all {known} decisions the index knows",
                related.len()
            )
        } else {
            format!(
                "the bundle omits entries the index knows: {}",
                missing.join(", ")
            )
        },
    })
}

/// The rule `entry_times`: no entry is dated after the gate's clock plus the policy's skew
/// (a log whose clock runs ahead could otherwise keep approvals young forever).
fn entry_times(policy: &Policy, opened: &OpenedBundle, now_ms: u64) -> Check {
    let limit = now_ms.saturating_add(policy.max_statement_skew_ms);
    let ahead: Vec<String> = opened
        .entries()
        .filter(|e| e.logged_at_ms > limit)
        .map(|e| format!("entry {} at {} ms", e.index, e.logged_at_ms))
        .collect();
    Check {
        rule: "entry_times".into(),
        ok: ahead.is_empty(),
        detail: if ahead.is_empty() {
            "no entry is dated after the gate's clock".into()
        } else {
            format!("entries dated after the gate's clock: {}", ahead.join(", "))
        },
    }
}

/// The rule `checkpoint_fresh` (policy `[freshness] max_checkpoint_age`): the bundle's
/// checkpoint carries a trusted witness cosignature no older than the bound and not from the
/// future. Offline, a witness's timestamp is the only clock the gate can trust.
fn checkpoint_fresh(policy: &Policy, opened: &OpenedBundle, now_ms: u64) -> Check {
    let max = policy.max_checkpoint_age_ms.unwrap_or(u64::MAX);
    let (ok, detail) = match opened.newest_cosignature.map(|s| s.saturating_mul(1000)) {
        None => (
            false,
            "no trusted witness cosignature dates the checkpoint".to_owned(),
        ),
        Some(at) if at > now_ms.saturating_add(policy.max_statement_skew_ms) => (
            false,
            format!("the newest cosignature is dated {at} ms, after the gate's clock"),
        ),
        Some(at) if now_ms.saturating_sub(at) > max => (
            false,
            format!(
                "the newest cosignature is {} s old, the policy allows {} s",
                now_ms.saturating_sub(at) / 1000,
                max / 1000
            ),
        ),
        Some(at) => (
            true,
            format!("cosigned {} s ago", now_ms.saturating_sub(at) / 1000),
        ),
    };
    Check {
        rule: "checkpoint_fresh".into(),
        ok,
        detail,
    }
}

/// The rule `log_consistency` (with `--url`): the bundle's tree is a prefix of the tree the
/// log serves now, whose checkpoint verifies with the key the policy's key rotated to. A
/// bundle built over a fabricated tree (say with a retired key) cannot pass.
fn log_consistency(url: &str, policy_key: &VerifierKey, bundle: &Bundle) -> Check {
    let outcome = (|| -> Result<String> {
        let note = get(&format!("{url}/checkpoint"))?.text()?;
        let claimed = SignedCheckpoint::parse(note.as_bytes())?.checkpoint;
        let (key, _) = crate::keys::follow(url, policy_key, claimed.size.0, &claimed.root)?;
        let served = SignedCheckpoint::open(note.as_bytes(), &key, &[])
            .map_err(|e| anyhow::anyhow!("the served checkpoint: {e}"))?
            .0
            .checkpoint;
        let root = Hash::from_base64(&bundle.root)?;
        if bundle.tree_size > served.size.0 {
            bail!(
                "the bundle's tree ({}) is larger than the log's ({})",
                bundle.tree_size,
                served.size
            );
        }
        if bundle.tree_size == served.size.0 {
            if root != served.root {
                bail!(
                    "the bundle's root differs from the log's at size {}",
                    served.size
                );
            }
        } else {
            crate::keys::consistency(url, bundle.tree_size, served.size.0)?
                .verify(&root, &served.root)?;
        }
        Ok(format!(
            "the bundle's tree of size {} is consistent with the log's of size {}",
            bundle.tree_size, served.size
        ))
    })();
    match outcome {
        Ok(detail) => Check {
            rule: "log_consistency".into(),
            ok: true,
            detail,
        },
        Err(e) => Check {
            rule: "log_consistency".into(),
            ok: false,
            detail: format!("{e:#}"),
        },
    }
}

/// Reads and validates a policy file.
pub fn read_policy(path: &Path) -> Result<Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the policy {}", path.display()))?;
    Policy::parse(&text).with_context(|| path.display().to_string())
}

/// Returns the names of the rules that failed.
fn failed_rules(rules: &[Check]) -> Vec<String> {
    rules
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.rule.clone())
        .collect()
}

/// Returns the refusal of a bundle that could not be opened: its rules, no checkpoint, no
/// approvers or decisions.
fn refusal(request: String, policy: &Policy, rules: Vec<Check>) -> Report {
    Report {
        ok: false,
        request,
        policy: policy.name.clone(),
        checkpoint: None,
        failed: failed_rules(&rules),
        rules,
        approvers: Vec::new(),
        decisions: Vec::new(),
        github_status: None,
        github_check_run: None,
    }
}

/// The bundle the gate would decide on: the one given, else the one the server serves for the
/// request (see [`load_bundle`]).
pub fn bundle_bytes(a: &GateArgs) -> Result<Vec<u8>> {
    let policy = read_policy(a.policy)?;
    let request = Hash::parse_any(a.request)
        .map_err(|e| anyhow::anyhow!("--request: {e}"))?
        .to_hex();
    load_bundle(a, &policy, a.url.map(|u| u.trim_end_matches('/')), &request)
}

/// Loads the bundle's bytes: from the file given, else from the server (proven against the
/// witnessed checkpoint when the policy requires witnesses or bounds freshness, since only its
/// cosignatures count and date it; else the latest).
fn load_bundle(a: &GateArgs, policy: &Policy, url: Option<&str>, request: &str) -> Result<Vec<u8>> {
    Ok(match (a.bundle, url) {
        (Some(BundleInput::File(path)), _) => crate::cli::read_input(path)?,
        (Some(BundleInput::Bytes(bytes)), _) => bytes.to_vec(),
        (None, Some(url)) => {
            let which = if policy.witnesses_required > 0 || policy.max_checkpoint_age_ms.is_some() {
                "witnessed"
            } else {
                "latest"
            };
            get(&format!(
                "{url}/v1/approvals/{request}/bundle?checkpoint={which}"
            ))?
            .bytes()?
            .to_vec()
        }
        (None, None) => bail!("give the bundle (--bundle FILE) or the server (--url URL)"),
    })
}

/// Online, finds the key that signed the bundle's checkpoint: a checkpoint the policy's key
/// did not sign may come after a key rotation, and the log's key_event entries, checked from
/// the policy's key, name the key that signs it. Returns that key and the rule `key_rotation`
/// when rotations were followed or following failed.
fn follow_rotations(
    url: Option<&str>,
    bundle: &Bundle,
    log_key: VerifierKey,
) -> (VerifierKey, Option<Check>) {
    let Some(u) = url else {
        return (log_key, None);
    };
    match crate::keys::follow_note(u, &bundle.checkpoint, &log_key) {
        Ok(Some((key, events, _))) => {
            let detail = format!(
                "followed {} key rotation(s) recorded in the log from the policy's key to {key}",
                events.len()
            );
            (
                key,
                Some(Check {
                    rule: "key_rotation".into(),
                    ok: true,
                    detail,
                }),
            )
        }
        Ok(None) => (log_key, None),
        Err(e) => {
            let detail = format!("following the log's key rotations from the policy's key: {e:#}");
            (
                log_key,
                Some(Check {
                    rule: "key_rotation".into(),
                    ok: false,
                    detail,
                }),
            )
        }
    }
}

/// The rule `witness_cosignatures` (when the policy requires witnesses): enough of the
/// policy's witnesses cosigned the checkpoint.
fn witness_cosignatures(policy: &Policy, opened: &OpenedBundle) -> Check {
    let n = opened.cosigners.len();
    Check {
        rule: "witness_cosignatures".into(),
        ok: n >= policy.witnesses_required,
        detail: format!(
            "{n} of the policy's witnesses cosigned the checkpoint, {} required{}",
            policy.witnesses_required,
            if n == 0 {
                String::new()
            } else {
                format!(": [{}]", opened.cosigners.join(", "))
            }
        ),
    }
}

/// The rule `sources_recheck` (with `--recheck-sources`): every counted imported decision,
/// re-read from its source, is unchanged.
fn sources_recheck(remote: &Remote, request_json: &Value, decisions: &[Decision]) -> Result<Check> {
    let mut disagree = Vec::new();
    let mut rechecked = 0;
    for d in decisions
        .iter()
        .filter(|d| d.counted && d.source != "signed")
    {
        rechecked += 1;
        if let Some(why) = recheck(remote, request_json, d)? {
            disagree.push(why);
        }
    }
    Ok(Check {
        rule: "sources_recheck".into(),
        ok: disagree.is_empty(),
        detail: if disagree.is_empty() {
            format!("{rechecked} imported decisions re-read from their sources and unchanged")
        } else {
            disagree.join("; ")
        },
    })
}

/// The rule `artifact` (with `--artifact`): the file about to be deployed hashes to the
/// approved digest.
fn artifact(path: &Path, r: &Logged) -> Result<Check> {
    let (hex, _) = crate::dataset::hash_file(path, &mut |_| {})?;
    let have = format!("sha256:{hex}");
    let want = r
        .request()
        .map(|x| x.statement.artifact_sha256.as_str())
        .unwrap_or_default();
    Ok(Check {
        rule: "artifact".into(),
        ok: have == want,
        detail: if have == want {
            format!("{} is the approved {want}", path.display())
        } else {
            format!(
                "{} hashes to {have}, the approved artifact is {want}",
                path.display()
            )
        },
    })
}

/// What evaluating the proven request yields besides its rules.
#[derive(Default)]
struct Evaluated {
    /// Distinct approvers that counted.
    approvers: Vec<String>,
    decisions: Vec<Decision>,
    /// `{"statement": ...}` of the request, for the verdict's commit.
    request_body: Option<Value>,
}

/// Evaluates the proven request `r` (the one asked about) and pushes its rules: `entry_times`,
/// `checkpoint_fresh`, the policy's checks and approval rules, `sources_recheck` and
/// `artifact`.
fn evaluate_request(
    a: &GateArgs,
    policy: &Policy,
    remote: &Remote,
    opened: &OpenedBundle,
    r: &Logged,
    rules: &mut Vec<Check>,
) -> Result<Evaluated> {
    let Some(case) = opened.case() else {
        bail!("the bundle's request is proven but has no case");
    };
    let ev = evaluate(policy, &case, a.now_ms);
    rules.push(entry_times(policy, opened, a.now_ms));
    if policy.max_checkpoint_age_ms.is_some() {
        rules.push(checkpoint_fresh(policy, opened, a.now_ms));
    }
    rules.extend(ev.checks);
    rules.extend(ev.rules);
    let request_json = serde_json::json!({
        "statement": r.request().map(|x| x.statement_json.clone()).unwrap_or_default()
    });
    if a.recheck {
        rules.push(sources_recheck(remote, &request_json, &ev.decisions)?);
    }
    if let Some(path) = a.artifact {
        rules.push(artifact(path, r)?);
    }
    Ok(Evaluated {
        approvers: ev.approvers,
        decisions: ev.decisions,
        request_body: Some(request_json),
    })
}

/// Pushes the rule `request_match` (the bundle proves the request asked about) and, when it
/// holds, the rules of its evaluation.
fn request_rules(
    a: &GateArgs,
    policy: &Policy,
    remote: &Remote,
    opened: &OpenedBundle,
    request: &str,
    rules: &mut Vec<Check>,
) -> Result<Evaluated> {
    match &opened.request {
        Some(r) if r.leaf_hash.to_hex() == request => {
            rules.push(Check {
                rule: "request_match".into(),
                ok: true,
                detail: format!("request {request} at index {}", r.index),
            });
            return evaluate_request(a, policy, remote, opened, r, rules);
        }
        Some(r) => rules.push(Check {
            rule: "request_match".into(),
            ok: false,
            detail: format!(
                "the bundle is for request {}, not {request}",
                r.leaf_hash.to_hex()
            ),
        }),
        None => rules.push(Check {
            rule: "request_match".into(),
            ok: false,
            detail: "the bundle's request is not proven".into(),
        }),
    }
    Ok(Evaluated::default())
}

/// Publishes the verdict (with `--github-status`) on the head commit of the request's pull
/// request; returns the published state and the check run, if any.
fn publish_verdict(
    remote: &Remote,
    url: Option<&str>,
    request: &str,
    request_body: Option<Value>,
    failed: &[String],
) -> Result<(Option<String>, Option<u64>)> {
    let body = request_body
        .ok_or_else(|| anyhow::anyhow!("--github-status: the bundle's request is not proven"))?;
    let g = &body["statement"]["github"];
    let (Some(repo), Some(sha)) = (g["repo"].as_str(), g["head_sha"].as_str()) else {
        bail!("--github-status: the request names no GitHub pull request");
    };
    let target = url.map(|u| format!("{u}/v1/approvals/{request}/bundle"));
    let completed_at = crate::time::rfc3339_ms(crate::time::now_ms());
    let gh = remote.github()?;
    let published =
        remote.call(gh.publish(repo, sha, failed.is_empty(), target, failed, &completed_at))?;
    Ok((Some(published.state), published.check_run))
}

/// Runs the gate. An error means the gate could not decide (usage or I/O, exit 2).
pub fn run(a: &GateArgs) -> Result<Report> {
    let policy = read_policy(a.policy)?;
    // GitHub and ServiceNow, connected at most once per run for re-reads and the verdict.
    let remote = Remote::new(&a.sources);
    let Some(log_key) = policy.log_key.clone() else {
        bail!(
            "{}: the policy has no [log] key, so no checkpoint can be trusted",
            a.policy.display()
        );
    };
    let request = Hash::parse_any(a.request)
        .map_err(|e| anyhow::anyhow!("--request: {e}"))?
        .to_hex();
    let url = a.url.map(|u| u.trim_end_matches('/'));
    let bytes = load_bundle(a, &policy, url, &request)?;
    let bundle = match Bundle::parse(&bytes) {
        Ok(b) => b,
        // Garbage evidence is a refusal, not a usage error.
        Err(e) => {
            let format = Check {
                rule: "bundle_format".into(),
                ok: false,
                detail: e.to_string(),
            };
            return Ok(refusal(request, &policy, vec![format]));
        }
    };
    let policy_key = log_key.clone();
    let (log_key, rotation) = follow_rotations(url, &bundle, log_key);
    let opened = bundle.open(&log_key, &policy.witness_keys);
    if opened
        .checks
        .iter()
        .any(|c| c.rule == "bundle_format" && !c.ok)
    {
        return Ok(refusal(request, &policy, opened.checks));
    }
    let mut rules = opened.checks.clone();
    rules.extend(rotation);
    if policy.witnesses_required > 0 {
        rules.push(witness_cosignatures(&policy, &opened));
    }
    let evaluated = request_rules(a, &policy, &remote, &opened, &request, &mut rules)?;
    if let Some(url) = url {
        rules.push(log_consistency(url, &policy_key, &bundle));
        rules.push(bundle_complete(url, &request, &bundle, &opened)?);
    }
    let failed = failed_rules(&rules);
    let (github_status, github_check_run) = if a.github_status {
        publish_verdict(&remote, url, &request, evaluated.request_body, &failed)?
    } else {
        (None, None)
    };
    Ok(Report {
        github_status,
        github_check_run,
        ok: failed.is_empty(),
        request,
        policy: policy.name.clone(),
        checkpoint: opened.checkpoint.map(|c| CheckpointInfo {
            origin: c.origin,
            size: c.size.0,
            root: c.root.to_base64(),
        }),
        rules,
        failed,
        approvers: evaluated.approvers,
        decisions: evaluated.decisions,
    })
}

/// The gate's clock from `--at`: Unix ms, a date or an RFC 3339 time.
fn parse_at(at: &str) -> Result<u64> {
    match at.parse::<u64>() {
        Ok(ms) => Ok(ms),
        Err(_) => crate::arg_groups::parse_date("at", at),
    }
}

/// `govledger gate`: exit 0 with the report when the policy holds, 1 with it (and every failed
/// rule) when it does not.
pub fn command(c: crate::args::GateCmd) -> Result<crate::cli::Outcome> {
    use crate::cli::Outcome;
    let report = run(&GateArgs {
        policy: &c.policy,
        bundle: c.bundle.as_deref().map(BundleInput::File),
        url: c.url.as_deref(),
        request: &c.request,
        artifact: c.artifact.as_deref(),
        now_ms: match &c.at {
            Some(at) => parse_at(at)?,
            None => crate::time::now_ms(),
        },
        recheck: c.recheck_sources,
        sources: c.sources.sources(),
        github_status: c.github_status,
    })?;
    let text = if c.json {
        serde_json::to_string_pretty(&report)?
    } else {
        report.to_text()
    };
    if report.ok {
        return Ok(Outcome::Valid(text));
    }
    println!("{text}");
    Ok(Outcome::Invalid(format!(
        "the gate refuses: {}",
        report.failed.join(", ")
    )))
}
