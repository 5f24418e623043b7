//! `POST /v1/approvals/{request}/sync[?source=github|servicenow]`: the log's integrations read
//! the request's pull-request reviews and change approvals and append what they find as
//! approval entries (`source`, `evidence`, `decided_at`), each exactly once however often sync
//! runs (`crate::integrations` has the rules and the entry ids).
//!
//! A source is not read when its identifiers in the request are not plain or an earlier
//! request holds its binding; nothing is imported from it when its description does not name
//! the request. Either way the answer is 200 with the reason in `skipped` (the `id` is the
//! PR, `owner/name#number`, or the change number), and the other source is still read. Each
//! decision that cannot be logged (bad id, unknown person, schema, governance check, leaf
//! size) is skipped with its reason; the rest are logged. A source that fails (credentials,
//! rate limit, not found) fails the sync with 502/503/404.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger_format::approval::Logged;
use ledger_format::entry::EntryKind;
use ledger_format::leaf::Leaf;
use ledger_format::Hash;
use serde_json::json;

use super::{ApiError, AppState};
use crate::integrations::{
    admit, binding, body, entry_id, is_source_id, Imported, Scope, Skipped, SourceError,
};
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

/// Returns the approval request `request` names.
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
    let bytes = s.log.leaf(index)?;
    let internal = |e: String| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e);
    let e = Logged::from_leaf(index, &bytes).map_err(internal)?;
    if e.kind() != EntryKind::ApprovalRequest {
        return Err(not_found());
    }
    Ok(e)
}

/// Returns why `source` (the request names it as `target`) is not read at all: its
/// identifiers are not plain (`target_ok`), or an earlier request holds its binding.
fn unreadable(
    s: &AppState,
    req: &Logged,
    source: &str,
    target_ok: Result<(), String>,
) -> Result<Option<String>, ApiError> {
    if let Err(why) = target_ok {
        return Ok(Some(why));
    }
    let statement = req
        .request()
        .map(|r| r.statement_json.clone())
        .unwrap_or_default();
    let Some(b) = binding::binding_of(&statement, source) else {
        return Ok(None);
    };
    let earlier = binding::bound_elsewhere(&s.log, &b, req.index)
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e))?;
    Ok(earlier.map(|h| {
        format!(
            "nothing imported: {} is bound to request {}, which named it first",
            b.split_once('=').map_or(b.as_str(), |(_, v)| v),
            h.to_hex()
        )
    }))
}

/// What the sources said about one request: decisions to import, what was skipped, and the
/// sources read.
#[derive(Default)]
struct Read {
    found: Vec<Imported>,
    skipped: Vec<Skipped>,
    consulted: Vec<&'static str>,
}

impl Read {
    /// Adds what `source` answered (`target` is the PR or change, `what` its description).
    fn add(
        &mut self,
        scope: &Scope,
        source: &'static str,
        what: &str,
        target: &str,
        read: crate::integrations::Decisions,
    ) {
        let (f, sk) = admit(scope, source, what, target, read);
        self.found.extend(f);
        self.skipped.extend(sk);
        self.consulted.push(source);
    }
}

fn not_configured(message: &'static str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "source_not_configured",
        message,
    )
}

/// Reads the request's pull request, if it names one and `want` allows.
async fn read_github(
    s: &AppState,
    req: &Logged,
    st: &serde_json::Value,
    want: Option<&str>,
    read: &mut Read,
) -> Result<(), ApiError> {
    if want.is_some_and(|w| w != "github") || st.get("github").is_none() {
        return Ok(());
    }
    #[cfg(feature = "github")]
    match &s.integrations.github {
        Some(gh) => {
            let g = &st["github"];
            let (repo, pr, head) = (
                g["repo"].as_str().unwrap_or_default(),
                g["pr"].as_u64().unwrap_or(0),
                g["head_sha"].as_str().unwrap_or_default(),
            );
            let target = format!("{repo}#{pr}");
            let ok = crate::integrations::github::check_target(repo, pr, head);
            match unreadable(s, req, "github", ok)? {
                Some(reason) => read.skipped.push(Skipped {
                    source: "github",
                    id: target,
                    reason,
                }),
                None => {
                    let decisions = gh
                        .decisions(repo, pr, head, &s.integrations.mapping)
                        .await
                        .map_err(source_error)?;
                    let scope = Scope {
                        request: req.leaf_hash.to_hex(),
                    };
                    let what = "the pull request's description";
                    read.add(&scope, "github", what, &target, decisions);
                }
            }
        }
        None if want == Some("github") => {
            return Err(not_configured("github is not configured on this server"))
        }
        None => {}
    }
    #[cfg(not(feature = "github"))]
    if want == Some("github") {
        let _ = (s, req, read);
        return Err(not_configured(
            "this govledgerd was built without the `github` feature",
        ));
    }
    Ok(())
}

/// Reads the request's change, if it names one and `want` allows.
async fn read_servicenow(
    s: &AppState,
    req: &Logged,
    st: &serde_json::Value,
    want: Option<&str>,
    read: &mut Read,
) -> Result<(), ApiError> {
    if want.is_some_and(|w| w != "servicenow") || st.get("servicenow").is_none() {
        return Ok(());
    }
    let Some(sn) = &s.integrations.servicenow else {
        if want == Some("servicenow") {
            return Err(not_configured(
                "servicenow is not configured on this server",
            ));
        }
        return Ok(());
    };
    let change = st["servicenow"]["change"].as_str().unwrap_or_default();
    let ok = crate::integrations::servicenow::check_change(change);
    let target: String = change.chars().take(64).collect();
    match unreadable(s, req, "servicenow", ok)? {
        Some(reason) => read.skipped.push(Skipped {
            source: "servicenow",
            id: target,
            reason,
        }),
        None => {
            let decisions = sn
                .decisions(change, &s.integrations.mapping)
                .await
                .map_err(source_error)?;
            let scope = Scope {
                request: req.leaf_hash.to_hex(),
            };
            read.add(
                &scope,
                "servicenow",
                "the change's description",
                &target,
                decisions,
            );
        }
    }
    Ok(())
}

/// Turns the decisions read into entries for the sequencer, skipping (with the reason) each
/// that cannot be logged: by the requester, an id that is not plain, a leaf that cannot be
/// encoded, a schema or governance refusal. Returns the entries and, for each, its decision
/// and entry id.
fn entries_of(
    s: &AppState,
    st: &serde_json::Value,
    hex: &str,
    found: Vec<Imported>,
    skipped: &mut Vec<Skipped>,
) -> (Vec<Pending>, Vec<(Imported, String)>) {
    let artifact = st["artifact_sha256"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let requester = st["requested_by"].as_str().unwrap_or_default();
    let mut pending = Vec::new();
    let mut meta = Vec::new();
    for i in found {
        let skip = |i: Imported, reason: String| Skipped {
            source: i.source,
            id: i.id,
            reason,
        };
        if i.approver == requester {
            let why = "by the requester, who cannot approve their own release".into();
            skipped.push(skip(i, why));
            continue;
        }
        if !is_source_id(&i.id) {
            let why = "the source's id for it is not a plain identifier".into();
            skipped.push(skip(i, why));
            continue;
        }
        let role = s
            .policy
            .people
            .get(&i.approver)
            .and_then(|p| p.roles.first().cloned())
            .unwrap_or_default();
        let v = body(&i, hex, &artifact, &role);
        let id = entry_id(&i, hex, &v);
        let text = v.to_string();
        // Nothing reaches the sequencer that it could not encode.
        let leaf = Leaf {
            kind: EntryKind::Approval,
            logged_at_ms: 0,
            submitter: i.source.to_owned(),
            entry_id: id,
            body: text.clone().into_bytes(),
        };
        let check = leaf
            .encode()
            .map(|_| ())
            .map_err(|e| format!("cannot be logged: {e}"))
            .and_then(|_| {
                ledger_format::entry::validate_body(EntryKind::Approval, &text)
                    .map_err(|e| e.to_string())
            })
            .and_then(|_| {
                crate::governance::check_as(
                    &s.log,
                    &s.policy,
                    EntryKind::Approval,
                    &text,
                    "body.",
                    true,
                )
                .map_err(|r| format!("{}: {}", r.reason.code(), r.message))
            });
        if let Err(why) = check {
            skipped.push(skip(i, why));
            continue;
        }
        pending.push(Pending {
            attrs: ledger_format::entry::attributes_of(EntryKind::Approval, &v)
                .iter()
                .map(|a| ledger_format::entry::attribute_key(a))
                .collect(),
            kind: EntryKind::Approval,
            submitter: leaf.submitter,
            entry_id: leaf.entry_id.clone(),
            body: leaf.body,
        });
        meta.push((i, leaf.entry_id));
    }
    (pending, meta)
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
    let mut read = Read::default();
    read_github(&s, &req, &st, want, &mut read).await?;
    read_servicenow(&s, &req, &st, want, &mut read).await?;
    let Read {
        mut found,
        mut skipped,
        consulted,
    } = read;
    // Log order follows the sources' time order (the evaluator orders by decided_at anyway).
    found.sort_by(|a, b| (&a.decided_at, a.source, &a.id).cmp(&(&b.decided_at, b.source, &b.id)));
    let (pending, meta) = entries_of(&s, &st, &hex, found, &mut skipped);
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
        for (p, (i, entry_id)) in committed.placed.iter().zip(&meta) {
            logged.push(json!({"index": p.index, "leaf_hash": p.leaf_hash.to_hex(), "new": p.index >= size_before,
                "source": i.source, "id": i.id, "entry_id": entry_id, "approver": i.approver, "decision": i.decision,
                "decided_at": i.decided_at, "evidence": i.evidence}));
        }
    }
    let appended = logged.iter().filter(|l| l["new"] == true).count();
    Ok(axum::Json(json!({"request": hex, "consulted": consulted, "appended": appended, "logged": logged, "skipped": skipped})).into_response())
}
