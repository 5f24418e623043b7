//! `GET /v1/summary?from=&to=`: what a governance report or a dashboard needs of a stretch of
//! the log, counted as `govledger audit` counts it (`ledger_format::summary::Tally`, the same
//! field names): entries by kind and by day, audit events by compliance tag and by regulation
//! (the config's `[regulations]`), the models trained with their datasets, the approval
//! requests made with where each stands now under the server's policy, and the deployments
//! recorded, each with whether it had a valid quorum when it was logged.
//!
//! The server's own view: an auditor who trusts no server replays the log with
//! `govledger audit`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ledger_format::approval::{evaluate, Case, Logged, Status};
use ledger_format::leaf::Leaf;
use ledger_format::policy::Policy;
use ledger_format::rfc3339::format_ms;
use ledger_format::summary::Tally;
use serde_json::{json, Value};

use super::approvals::{blocking, internal, related, Related};
use super::read::{time_param, time_range};
use super::{ApiError, AppState};
use crate::log::Log;
use crate::sequencer::now_ms;

/// The summary document's format name.
pub const FORMAT: &str = "govledger-summary/v1";

/// `GET /v1/summary`: `{"format", "origin", "tree_size", "checkpoint", "generated_at",
/// "range", "entries", "audit_events_by_tag", "audit_events_by_regulation",
/// "audit_events_without_regulation", "models", "approvals", "deployments"}`.
pub async fn summary(
    State(s): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    if let Some(k) = q.keys().find(|k| !["from", "to"].contains(&k.as_str())) {
        return Err(
            ApiError::bad_request("bad_parameter", format!("unknown parameter {k}"))
                .field(k.clone()),
        );
    }
    let (from_ms, to_ms) = (time_param(&q, "from")?, time_param(&q, "to")?);
    if let (Some(f), Some(t)) = (from_ms, to_ms) {
        if f > t {
            return Err(ApiError::bad_request("bad_parameter", "from is after to").field("from"));
        }
    }
    // One at a time: a reader cannot make the server count the log many times over at once.
    let Ok(permit) = s.summaries.clone().try_acquire_owned() else {
        let mut busy = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "summary_busy",
            "another summary is being counted: retry after it",
        );
        busy.retry_after = Some(1);
        return Err(busy);
    };
    let published = s.log.published();
    let s2 = s.clone();
    let size = published.size;
    let (tally, approvals, deployments) = blocking(move || {
        let (start, end) = time_range(&s2.log, from_ms, to_ms, size)?;
        if end - start > s2.max_summary_entries {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "range_too_large",
                format!(
                    "the range holds {} entries, a summary reads at most {} (max_summary_entries): narrow it, or replay the log with govledger audit",
                    end - start,
                    s2.max_summary_entries
                ),
            ));
        }
        let tally = count(&s2, start, end)?;
        // Each request's entries are gathered once, for its status and its deployments.
        let mut requests = Requests::new(&s2.log, size);
        let approvals = approvals(&mut requests, &s2.policy, &tally)?;
        let deployments = deployments(&mut requests, &s2.policy, &tally)?;
        drop(permit);
        Ok((tally, approvals, deployments))
    })
    .await?;
    let origin =
        ledger_format::checkpoint::SignedCheckpoint::parse(published.checkpoint.as_bytes())
            .map(|c| c.checkpoint.origin)
            .unwrap_or_default();
    Ok(axum::Json(json!({
        "format": FORMAT,
        "origin": origin,
        "tree_size": size,
        "checkpoint": published.checkpoint,
        "generated_at": format_ms(now_ms()),
        "range": {"from": from_ms.map(format_ms), "to": to_ms.map(format_ms)},
        "entries": tally.entries_json(),
        "audit_events_by_tag": tally.tags,
        "audit_events_by_regulation": tally.regulations,
        "audit_events_without_regulation": tally.unregulated,
        "models": tally.models,
        "approvals": approvals,
        "deployments": deployments,
    }))
    .into_response())
}

/// Accounts the entries `[start, end)`.
fn count(s: &AppState, start: u64, end: u64) -> Result<Tally, ApiError> {
    let mut tally = Tally::new(s.regulations.clone());
    for i in start..end {
        let bytes = s.log.leaf(i)?;
        let leaf = Leaf::parse(&bytes).map_err(internal)?;
        let body: Value = serde_json::from_slice(&leaf.body).map_err(internal)?;
        tally.account(i, &ledger_format::leaf_hash(&bytes), &leaf, &body);
    }
    Ok(tally)
}

/// The requests of the published tree of `size`, each gathered at most once (`None`: not in
/// the log).
struct Requests<'a> {
    log: &'a Log,
    size: u64,
    known: HashMap<String, Option<Related>>,
}

impl<'a> Requests<'a> {
    fn new(log: &'a Log, size: u64) -> Requests<'a> {
        Requests {
            log,
            size,
            known: HashMap::new(),
        }
    }

    fn get(&mut self, request: &str) -> Result<Option<&Related>, ApiError> {
        if !self.known.contains_key(request) {
            let r = match related(self.log, request, self.size) {
                Ok(r) => Some(r),
                Err(e) if e.status == StatusCode::NOT_FOUND => None,
                Err(e) => return Err(e),
            };
            self.known.insert(request.to_owned(), r);
        }
        Ok(self.known[request].as_ref())
    }
}

/// `{"policy", "pending", "approved", "rejected", "requests"}`: each request of the range as
/// it stands now under the server's policy.
fn approvals(requests: &mut Requests, policy: &Policy, tally: &Tally) -> Result<Value, ApiError> {
    let mut statuses = BTreeMap::from([("pending", 0u64), ("approved", 0), ("rejected", 0)]);
    let mut items = Vec::new();
    let now = now_ms();
    for (index, hash) in &tally.requests {
        let Some(r) = requests.get(&hash.to_hex())? else {
            return Err(internal(format!(
                "request {} is not in the log",
                hash.to_hex()
            )));
        };
        let ev = evaluate(policy, &r.case(), now);
        let status = match ev.status {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
        };
        *statuses.entry(status).or_default() += 1;
        let st = r.request.request().map(|x| &x.statement);
        items.push(json!({"request": hash.to_hex(), "index": index,
            "model_id": st.map(|x| &x.model_id), "requested_by": st.map(|x| &x.requested_by),
            "status": status, "approvers": ev.approvers}));
    }
    Ok(json!({
        "policy": policy.name.clone().unwrap_or_else(|| "unnamed".into()),
        "pending": statuses["pending"],
        "approved": statuses["approved"],
        "rejected": statuses["rejected"],
        "requests": items,
    }))
}

/// `{"with_quorum", "without_quorum", "items"}`: each deployment of the range with
/// `valid_quorum` (and `why` not), decided from the entries logged before it, at its time.
fn deployments(requests: &mut Requests, policy: &Policy, tally: &Tally) -> Result<Value, ApiError> {
    let (mut with, mut without) = (0u64, 0u64);
    let mut items = Vec::new();
    for d in &tally.deployments {
        let (ok, why) = quorum_at(requests, policy, d)?;
        if ok {
            with += 1;
        } else {
            without += 1;
        }
        let mut item = d.clone();
        item["valid_quorum"] = ok.into();
        if !why.is_empty() {
            item["why"] = why.into();
        }
        items.push(item);
    }
    Ok(json!({"with_quorum": with, "without_quorum": without, "items": items}))
}

/// Whether deployment `d` had a valid quorum when it was logged: the policy evaluated at its
/// time over the entries logged before it. Returns the failed rules when not.
fn quorum_at(
    requests: &mut Requests,
    policy: &Policy,
    d: &Value,
) -> Result<(bool, String), ApiError> {
    let request = d["request"].as_str().unwrap_or_default();
    let Some(r) = requests.get(request)? else {
        return Ok((false, format!("request {request} is not in the log")));
    };
    let index = d["index"].as_u64().unwrap_or(0);
    let at = d["logged_at_ms"].as_u64().unwrap_or(0);
    let before =
        |v: &[Logged]| -> Vec<Logged> { v.iter().filter(|e| e.index < index).cloned().collect() };
    let (earlier, decided) = (before(&r.related), before(&r.decisions));
    let case = Case {
        request: &r.request,
        lineage: r.lineage.as_ref().filter(|l| l.index < index),
        related: &earlier,
        decisions: &decided,
    };
    let ev = evaluate(policy, &case, at);
    Ok((ev.approved(), ev.failures().join("; ")))
}
