//! `GET /v1/approvals/{request}`: where a release request stands under the server's policy, and
//! `GET /v1/approvals/{request}/bundle`: the request, its lineage, every approval and rejection
//! and every deployment record, each with an inclusion proof to one signed checkpoint, for the
//! deploy gate to check offline (ledger-format SPEC.md §8).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ledger_format::approval::{evaluate, Bundle, BundleEntry, Logged, BUNDLE_FORMAT};
use ledger_format::entry::{attribute_key, EntryKind};
use ledger_format::Hash;
use serde_json::json;

use super::{ApiError, AppState};
use crate::log::{Log, LogError, Published};

/// Most approvals, rejections and deployments one request may gather before the server stops
/// answering for it (a bound on the work and the answer, far above any real release).
pub const MAX_RELATED: usize = 10_000;

/// A request and what the log holds about it, at one published size.
struct Related {
    request: Logged,
    lineage: Option<Logged>,
    decisions: Vec<Logged>,
    deployments: Vec<Logged>,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
}

fn logged(log: &Log, index: u64) -> Result<Logged, ApiError> {
    Logged::from_leaf(index, &log.leaf(index)?).map_err(internal)
}

/// Returns the index of the entry with leaf hash `hash` in the tree of `size`.
fn find(log: &Log, hash: &Hash, size: u64) -> Result<Option<u64>, ApiError> {
    Ok(log
        .index
        .leaf(hash)
        .map_err(LogError::from)?
        .filter(|i| *i < size))
}

fn related(log: &Log, request: &str, size: u64) -> Result<Related, ApiError> {
    let hash = Hash::parse_any(request)
        .map_err(|e| ApiError::bad_request("bad_parameter", e.to_string()).field("request"))?;
    let not_found = || ApiError::not_found(format!("no approval request {}", hash.to_hex()));
    let index = find(log, &hash, size)?.ok_or_else(not_found)?;
    let request = logged(log, index)?;
    if request.kind != EntryKind::ApprovalRequest {
        return Err(not_found());
    }
    let lineage = match request.body["statement"]["lineage"]
        .as_str()
        .and_then(|h| Hash::from_hex(h).ok())
    {
        Some(h) => match find(log, &h, size)? {
            Some(i) => Some(logged(log, i)?).filter(|l| l.kind == EntryKind::Lineage),
            None => None,
        },
        None => None,
    };
    let hex = hash.to_hex();
    let attr = attribute_key(&format!("request={hex}"));
    let (mut decisions, mut deployments) = (Vec::new(), Vec::new());
    let mut from = 0;
    loop {
        let page = log
            .index
            .postings(attr, from, 1024)
            .map_err(LogError::from)?;
        let Some(&last) = page.last() else { break };
        for i in page.into_iter().filter(|i| *i < size) {
            let e = logged(log, i)?;
            // Postings are keyed by a 64-bit hash of the attribute: confirm the reference.
            match e.kind {
                EntryKind::Approval if e.body["statement"]["request"] == hex.as_str() => {
                    decisions.push(e)
                }
                EntryKind::Deployment if e.body["request"] == hex.as_str() => deployments.push(e),
                _ => {}
            }
        }
        if decisions.len() + deployments.len() > MAX_RELATED {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "too_many_entries",
                format!("request {hex} has more than {MAX_RELATED} approvals and deployments"),
            ));
        }
        if last + 1 >= size {
            break;
        }
        from = last + 1;
    }
    Ok(Related {
        request,
        lineage,
        decisions,
        deployments,
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(internal)?
}

use crate::sequencer::now_ms;

/// `GET /v1/approvals/{request}`: `{"request", "index", "tree_size", "model_id",
/// "artifact_sha256", "requested_by", "environment", "status", "approved", "required",
/// "required_roles", "approvers", "approvals": [{"index", "leaf_hash", "who", "role", "source",
/// "when", "decision", "counted", "reason"?}], "checks": [{"rule", "ok", "detail"}], "rules":
/// [...], "deployments": [{"index", "leaf_hash", "status", "environment", "executed_by"}]}`.
pub async fn status(
    State(s): State<Arc<AppState>>,
    Path(request): Path<String>,
) -> Result<Response, ApiError> {
    let published = s.log.published();
    let size = published.size;
    let s2 = s.clone();
    let r = blocking(move || related(&s2.log, &request, size)).await?;
    let ev = evaluate(
        &s.policy,
        &r.request,
        r.lineage.as_ref(),
        &r.decisions,
        now_ms(),
    );
    let st = &r.request.body["statement"];
    let deployments: Vec<_> = r
        .deployments
        .iter()
        .map(|d| {
            json!({"index": d.index, "leaf_hash": d.leaf_hash.to_hex(), "status": d.body["status"],
                   "environment": d.body["environment"], "executed_by": d.body["executed_by"]})
        })
        .collect();
    Ok(axum::Json(json!({
        "request": r.request.leaf_hash.to_hex(),
        "index": r.request.index,
        "tree_size": size,
        "model_id": st["model_id"],
        "artifact_sha256": st["artifact_sha256"],
        "requested_by": st["requested_by"],
        "environment": st["environment"],
        "status": ev.status,
        "approved": ev.approved(),
        "required": s.policy.min_approvers,
        "required_roles": s.policy.required_roles,
        "approvers": ev.approvers,
        "approvals": ev.decisions,
        "checks": ev.checks,
        "rules": ev.rules,
        "deployments": deployments,
    }))
    .into_response())
}

fn bundle_entries(
    log: &Log,
    entries: &[&Logged],
    published: &Published,
) -> Result<Vec<BundleEntry>, ApiError> {
    let indices: Vec<u64> = entries.iter().map(|e| e.index).collect();
    let proofs = log.inclusions(&indices, published.size)?;
    entries
        .iter()
        .zip(proofs)
        .map(|(e, p)| {
            Ok(BundleEntry {
                index: e.index,
                leaf_hash: e.leaf_hash.to_hex(),
                leaf: STANDARD.encode(log.leaf(e.index)?),
                proof: p.path.iter().map(Hash::to_base64).collect(),
            })
        })
        .collect()
}

/// `GET /v1/approvals/{request}/bundle[?checkpoint=latest|witnessed]`: the bundle (SPEC.md §8)
/// against the latest or the witnessed checkpoint (then it holds only what that checkpoint
/// covers, and its note carries the witnesses' cosignatures).
pub async fn bundle(
    State(s): State<Arc<AppState>>,
    Path(request): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let published = super::read::chosen_checkpoint(&s, &q)?;
    let log = s.log.clone();
    let bundle = blocking(move || {
        let r = related(&log, &request, published.size)?;
        let mut all: Vec<&Logged> = vec![&r.request];
        all.extend(r.lineage.as_ref());
        all.extend(&r.decisions);
        all.extend(&r.deployments);
        let mut entries = bundle_entries(&log, &all, &published)?.into_iter();
        let request = entries.next().ok_or_else(|| internal("no request"))?;
        let lineage = r.lineage.as_ref().and_then(|_| entries.next());
        let approvals = entries.by_ref().take(r.decisions.len()).collect();
        Ok(Bundle {
            format: BUNDLE_FORMAT.to_owned(),
            checkpoint: published.checkpoint.clone(),
            tree_size: published.size,
            root: published.root.to_base64(),
            request,
            lineage,
            approvals,
            deployments: entries.collect(),
        })
    })
    .await?;
    Ok(axum::Json(bundle).into_response())
}
