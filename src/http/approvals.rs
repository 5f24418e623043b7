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
use ledger_format::approval::{evaluate, Bundle, BundleEntry, Case, Logged, BUNDLE_FORMAT};
use ledger_format::entry::{attribute_key, Body, EntryKind};
use ledger_format::Hash;
use serde_json::json;

use super::{ApiError, AppState};
use crate::log::{Log, LogError, Published};

/// Most approvals and rejections one request (with the other requests for its artifact) may
/// gather before the server stops answering for it (a bound on the work and the answer, far
/// above any real release). Deployment records are bounded apart: they decide nothing.
pub const MAX_RELATED: usize = 10_000;

/// Most deployment records a status or bundle answer carries (the latest ones).
pub const MAX_DEPLOYMENTS: usize = 1_000;

/// A request and what the log holds about it, at one published size.
pub(super) struct Related {
    pub(super) request: Logged,
    pub(super) lineage: Option<Logged>,
    /// The other approval requests for the same artifact, in log order.
    pub(super) related: Vec<Logged>,
    /// Approvals and rejections of the request and of the related requests in its
    /// environment, in log order.
    pub(super) decisions: Vec<Logged>,
    /// The latest [`MAX_DEPLOYMENTS`] deployment records of the request, in log order.
    deployments: Vec<Logged>,
    deployments_total: usize,
}

impl Related {
    pub(super) fn case(&self) -> Case<'_> {
        Case {
            request: &self.request,
            lineage: self.lineage.as_ref(),
            related: &self.related,
            decisions: &self.decisions,
        }
    }
}

pub(super) fn internal(e: impl std::fmt::Display) -> ApiError {
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

/// Returns the entries below `size` indexed under `attribute` that `keep` accepts (postings
/// are keyed by a 64-bit hash of the attribute, so `keep` confirms it), in log order; more
/// than `max` is a 422 `too_many_entries`.
fn with_attribute(
    log: &Log,
    attribute: &str,
    size: u64,
    max: usize,
    keep: impl Fn(&Logged) -> bool,
) -> Result<Vec<Logged>, ApiError> {
    let attr = attribute_key(attribute);
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let page = log
            .index
            .postings(attr, from, 1024)
            .map_err(LogError::from)?;
        let Some(&last) = page.last() else { break };
        for i in page.into_iter().filter(|i| *i < size) {
            let e = logged(log, i)?;
            if keep(&e) {
                out.push(e);
            }
        }
        if out.len() > max {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "too_many_entries",
                format!("more than {max} entries carry {attribute}"),
            ));
        }
        if last + 1 >= size {
            break;
        }
        from = last + 1;
    }
    Ok(out)
}

/// Returns every approval and rejection of `request` in the tree of `size`, in log order.
pub(crate) fn decisions_on(log: &Log, request: &Hash, size: u64) -> Result<Vec<Logged>, ApiError> {
    with_attribute(
        log,
        &format!("request={}", request.to_hex()),
        size,
        MAX_RELATED,
        |e| {
            e.approval()
                .is_some_and(|a| a.statement.request == *request)
        },
    )
}

pub(super) fn related(log: &Log, request: &str, size: u64) -> Result<Related, ApiError> {
    let hash = Hash::parse_any(request)
        .map_err(|e| ApiError::bad_request("bad_parameter", e.to_string()).field("request"))?;
    let not_found = || ApiError::not_found(format!("no approval request {}", hash.to_hex()));
    let index = find(log, &hash, size)?.ok_or_else(not_found)?;
    let request = logged(log, index)?;
    let Some(req) = request.request() else {
        return Err(not_found());
    };
    let lineage = match find(log, &req.statement.lineage, size)? {
        Some(i) => Some(logged(log, i)?).filter(|l| l.kind() == EntryKind::Lineage),
        None => None,
    };
    let artifact = req.statement.artifact_sha256.clone();
    let environment = req.statement.environment.clone();
    let related = with_attribute(
        log,
        &format!("artifact={artifact}"),
        size,
        MAX_RELATED,
        |e| {
            e.leaf_hash != hash
                && e.request()
                    .is_some_and(|r| r.statement.artifact_sha256 == artifact)
        },
    )?;
    let mut decisions = decisions_on(log, &hash, size)?;
    for r in &related {
        if r.request()
            .is_some_and(|x| x.statement.environment == environment)
        {
            decisions.extend(decisions_on(log, &r.leaf_hash, size)?);
            if decisions.len() > MAX_RELATED {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "too_many_entries",
                    format!("the requests for {artifact} have more than {MAX_RELATED} decisions"),
                ));
            }
        }
    }
    decisions.sort_by_key(|d| d.index);
    let hex = hash.to_hex();
    let mut deployments = with_attribute(
        log,
        &format!("request={hex}"),
        size,
        usize::MAX,
        |e| matches!(&e.body, Body::Deployment(d) if d.request == hash),
    )?;
    let deployments_total = deployments.len();
    deployments.drain(..deployments_total.saturating_sub(MAX_DEPLOYMENTS));
    Ok(Related {
        request,
        lineage,
        related,
        decisions,
        deployments,
        deployments_total,
    })
}

pub(super) async fn blocking<T: Send + 'static>(
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
    let ev = evaluate(&s.policy, &r.case(), now_ms());
    let st = &r
        .request
        .request()
        .ok_or_else(|| internal("not a request"))?
        .statement;
    let deployments: Vec<_> = r
        .deployments
        .iter()
        .filter_map(|d| match &d.body {
            Body::Deployment(x) => {
                Some(json!({"index": d.index, "leaf_hash": d.leaf_hash.to_hex(),
                "status": format!("{:?}", x.status).to_uppercase(),
                "environment": x.environment, "executed_by": x.executed_by}))
            }
            _ => None,
        })
        .collect();
    Ok(axum::Json(json!({
        "request": r.request.leaf_hash.to_hex(),
        "index": r.request.index,
        "tree_size": size,
        "model_id": st.model_id,
        "artifact_sha256": st.artifact_sha256,
        "requested_by": st.requested_by,
        "environment": st.environment,
        "status": ev.status,
        "approved": ev.approved(),
        "required": s.policy.min_approvers,
        "required_roles": s.policy.required_roles,
        "approvers": ev.approvers,
        "approvals": ev.decisions,
        "checks": ev.checks,
        "rules": ev.rules,
        "deployments": deployments,
        "deployments_total": r.deployments_total,
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
        all.extend(&r.related);
        all.extend(&r.decisions);
        all.extend(&r.deployments);
        let mut entries = bundle_entries(&log, &all, &published)?.into_iter();
        let request = entries.next().ok_or_else(|| internal("no request"))?;
        let lineage = r.lineage.as_ref().and_then(|_| entries.next());
        let related = entries.by_ref().take(r.related.len()).collect();
        let approvals = entries.by_ref().take(r.decisions.len()).collect();
        Ok(Bundle {
            format: BUNDLE_FORMAT.to_owned(),
            checkpoint: published.checkpoint.clone(),
            tree_size: published.size,
            root: published.root.to_base64(),
            request,
            lineage,
            related,
            approvals,
            deployments: entries.collect(),
        })
    })
    .await?;
    Ok(axum::Json(bundle).into_response())
}
