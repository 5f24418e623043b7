//! `POST /v1/approvals/{request}/sync[?source=github|servicenow]`: the log's integrations read
//! the request's pull-request reviews and change approvals and append what they find as
//! approval entries (`source`, `evidence`), each exactly once however often sync runs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger_format::approval::Logged;
use ledger_format::entry::EntryKind;
use ledger_format::Hash;
use serde_json::json;

use super::{ApiError, AppState};
use crate::integrations::{body, Imported, Skipped, SourceError};
use crate::log::LogError;
use crate::sequencer::Pending;

fn source_error(e: SourceError) -> ApiError {
    let code = match e.status {
        404 => "source_not_found",
        503 => "source_unavailable",
        _ => "source_failed",
    };
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut err = ApiError::new(status, code, e.message);
    if e.status == 503 {
        err.retry_after = Some(60);
    }
    err
}

fn find_request(s: &AppState, request: &str) -> Result<Logged, ApiError> {
    let hash = Hash::parse_any(request)
        .map_err(|e| ApiError::bad_request("bad_parameter", e.to_string()).field("request"))?;
    let not_found = || ApiError::not_found(format!("no approval request {}", hash.to_hex()));
    let index = s
        .log
        .index
        .leaf(&hash)
        .map_err(LogError::from)?
        .filter(|i| *i < s.log.published().size)
        .ok_or_else(not_found)?;
    let e = Logged::from_leaf(index, &s.log.leaf(index)?)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e))?;
    if e.kind() != EntryKind::ApprovalRequest {
        return Err(not_found());
    }
    Ok(e)
}

pub async fn sync(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    cert: Option<axum::Extension<crate::tls::PeerCertificate>>,
    headers: HeaderMap,
    Path(request): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let client = super::submit::authenticate(&s, &headers, peer, cert.as_deref())?;
    if !client.kinds.is_empty() && !client.kinds.contains(&EntryKind::Approval) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "kind_not_allowed",
            format!("client {} may not add approval entries", client.name),
        ));
    }
    let want = q.get("source").map(String::as_str);
    if let Some(w) = want.filter(|w| !["github", "servicenow"].contains(w)) {
        return Err(ApiError::bad_request(
            "bad_parameter",
            format!("source must be github or servicenow, not {w:?}"),
        )
        .field("source"));
    }
    let req = find_request(&s, &request)?;
    let st = req
        .request()
        .map(|r| r.statement_json.clone())
        .unwrap_or_default();
    let hex = req.leaf_hash.to_hex();
    let (mut found, mut skipped): (Vec<Imported>, Vec<Skipped>) = (Vec::new(), Vec::new());
    let mut consulted = Vec::new();
    if want.is_none_or(|w| w == "github") && st.get("github").is_some() {
        #[cfg(feature = "github")]
        match &s.integrations.github {
            Some(gh) => {
                let g = &st["github"];
                let (f, sk) = gh
                    .decisions(
                        g["repo"].as_str().unwrap_or_default(),
                        g["pr"].as_u64().unwrap_or(0),
                        g["head_sha"].as_str().unwrap_or_default(),
                        &s.integrations.mapping,
                    )
                    .await
                    .map_err(source_error)?;
                found.extend(f);
                skipped.extend(sk);
                consulted.push("github");
            }
            None if want == Some("github") => {
                return Err(ApiError::new(
                    StatusCode::NOT_IMPLEMENTED,
                    "source_not_configured",
                    "github is not configured on this server",
                ))
            }
            None => {}
        }
        #[cfg(not(feature = "github"))]
        if want == Some("github") {
            return Err(ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "source_not_configured",
                "this govledgerd was built without the `github` feature",
            ));
        }
    }
    if want.is_none_or(|w| w == "servicenow") && st.get("servicenow").is_some() {
        match &s.integrations.servicenow {
            Some(sn) => {
                let (f, sk) = sn
                    .decisions(
                        st["servicenow"]["change"].as_str().unwrap_or_default(),
                        &s.integrations.mapping,
                    )
                    .await
                    .map_err(source_error)?;
                found.extend(f);
                skipped.extend(sk);
                consulted.push("servicenow");
            }
            None if want == Some("servicenow") => {
                return Err(ApiError::new(
                    StatusCode::NOT_IMPLEMENTED,
                    "source_not_configured",
                    "servicenow is not configured on this server",
                ))
            }
            None => {}
        }
    }
    // Log order follows the sources' time order, so a later rejection stays later.
    found.sort_by(|a, b| (&a.signed_at, a.source, &a.id).cmp(&(&b.signed_at, b.source, &b.id)));
    let artifact = st["artifact_sha256"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let requester = st["requested_by"].as_str().unwrap_or_default();
    let mut pending = Vec::new();
    let mut meta = Vec::new();
    for i in found {
        let role = s
            .policy
            .people
            .get(&i.approver)
            .and_then(|p| p.roles.first().cloned())
            .unwrap_or_default();
        if i.approver == requester {
            skipped.push(Skipped {
                source: i.source,
                id: i.id,
                reason: "by the requester, who cannot approve their own release".into(),
            });
            continue;
        }
        let text = body(&i, &hex, &artifact, &role).to_string();
        let check = ledger_format::entry::validate_body(EntryKind::Approval, &text)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                crate::governance::check_as(
                    &s.log,
                    &s.policy,
                    EntryKind::Approval,
                    &text,
                    "body.",
                    true,
                )
                .map_err(|r| format!("{}: {}", r.code, r.message))
            });
        if let Err(why) = check {
            skipped.push(Skipped {
                source: i.source,
                id: i.id,
                reason: why,
            });
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&text).expect("just built");
        pending.push(Pending {
            attrs: ledger_format::entry::attributes_of(EntryKind::Approval, &v)
                .iter()
                .map(|a| ledger_format::entry::attribute_key(a))
                .collect(),
            kind: EntryKind::Approval,
            submitter: i.source.to_owned(),
            entry_id: format!(
                "{}-{}",
                if i.source == "github" {
                    "github-review"
                } else {
                    "servicenow"
                },
                i.id
            ),
            body: text.into_bytes(),
        });
        meta.push(i);
    }
    let size_before = s.log.published().size;
    let mut logged = Vec::new();
    if !pending.is_empty() {
        let rx = s.sequencer.submit(pending)?;
        let committed = rx.await.map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the sequencer stopped",
            )
        })??;
        for (p, i) in committed.placed.iter().zip(&meta) {
            logged.push(json!({"index": p.index, "leaf_hash": p.leaf_hash.to_hex(), "new": p.index >= size_before,
                "source": i.source, "id": i.id, "approver": i.approver, "decision": i.decision, "evidence": i.evidence}));
        }
    }
    let appended = logged.iter().filter(|l| l["new"] == true).count();
    Ok(axum::Json(json!({"request": hex, "consulted": consulted, "appended": appended, "logged": logged, "skipped": skipped})).into_response())
}
