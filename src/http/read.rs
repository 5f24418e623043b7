//! Read endpoints: log info, checkpoint, tiles, entries, proofs, receipts, health, metrics.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger_format::tile::{parse_path, BundleId, TileId, TilePath};
use ledger_format::{Hash, TreeSize};
use serde_json::json;

use super::submit::{receipt, receipt_response};
use super::{ApiError, AppState};
use crate::sequencer::Placed;

/// The time bound `name` (`from`, `to`): a date (its midnight UTC) or an RFC 3339 time, as
/// Unix ms.
pub(super) fn time_param(q: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    q.get(name)
        .map(|v| {
            ledger_format::schema::date_or_time_to_ms(v).ok_or_else(|| {
                ApiError::bad_request(
                    "bad_parameter",
                    format!("{name} must be a date (YYYY-MM-DD, UTC) or an RFC 3339 time"),
                )
                .field(name)
            })
        })
        .transpose()
}

/// The entries of the published tree of `size` logged from `from_ms` to `to_ms`, both
/// inclusive: the index range `[start, end)`.
pub(super) fn time_range(
    log: &crate::log::Log,
    from_ms: Option<u64>,
    to_ms: Option<u64>,
    size: u64,
) -> Result<(u64, u64), crate::log::LogError> {
    let start = match from_ms {
        Some(ms) => log.first_at_or_after(ms, size)?,
        None => 0,
    };
    let end = match to_ms {
        Some(ms) => log.first_at_or_after(ms.saturating_add(1), size)?,
        None => size,
    };
    Ok((start, end.max(start)))
}

fn param_u64(q: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    q.get(name)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                ApiError::bad_request(
                    "bad_parameter",
                    format!("{name} must be a non-negative integer"),
                )
                .field(name)
            })
        })
        .transpose()
}

pub async fn log_info(State(s): State<Arc<AppState>>) -> Response {
    let p = s.log.published();
    let witnesses: Vec<_> = s
        .anchorer
        .witnesses
        .iter()
        .map(|w| json!({"url": w.url, "key": w.key.to_string()}))
        .collect();
    axum::Json(json!({
        "origin": s.log.origin,
        "verifier_key": s.log.verifier.to_string(),
        "tree_size": p.size,
        "witnesses": witnesses,
    }))
    .into_response()
}

/// `GET /v1/anchors`: per backend, the last anchored size, pending checkpoints and the last
/// error; per witness, the last size it cosigned and its last error.
pub async fn anchors(State(s): State<Arc<AppState>>) -> Response {
    let witnesses: Vec<_> = s
        .anchorer
        .witnesses
        .iter()
        .map(|w| {
            json!({"url": w.url, "key": w.key.to_string(),
                   "last_cosigned_size": *w.last_cosigned.lock().expect("lock poisoned"),
                   "last_error": *w.last_error.lock().expect("lock poisoned")})
        })
        .collect();
    axum::Json(json!({
        "tree_size": s.log.published().size,
        "backends": s.anchorer.status(),
        "witnesses": witnesses,
        "witnessed_size": s.anchorer.witnessed_published().map(|p| p.size),
        "mirrored_size": s.anchorer.mirrored_size(),
    }))
    .into_response()
}

/// `GET /v1/checkpoints?from=&limit=`: the stored (anchored) checkpoints, ascending by size:
/// `{"checkpoints": [{"size", "checkpoint"}], "next": size|null}`.
pub async fn checkpoints(
    State(s): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let from = param_u64(&q, "from")?.unwrap_or(0);
    let limit = param_u64(&q, "limit")?.unwrap_or(1000).clamp(1, 1000) as usize;
    let a = s.anchorer.clone();
    let mut list = tokio::task::spawn_blocking(move || a.checkpoints(from, limit + 1))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(crate::log::LogError::from)?;
    let next = (list.len() > limit).then(|| list[limit].0);
    list.truncate(limit);
    let items: Vec<_> = list
        .into_iter()
        .map(|(size, checkpoint)| json!({"size": size, "checkpoint": checkpoint}))
        .collect();
    Ok(axum::Json(json!({"checkpoints": items, "next": next})).into_response())
}

/// `GET /v1/checkpoints/witnessed`: the latest checkpoint with its witnesses' cosignatures.
pub async fn witnessed(State(s): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let note = s
        .anchorer
        .witnessed()
        .ok_or_else(|| ApiError::not_found("no checkpoint has been witnessed yet"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        note,
    )
        .into_response())
}

/// Returns the checkpoint a `?checkpoint=latest|witnessed` parameter asks for.
pub fn chosen_checkpoint(
    s: &AppState,
    q: &HashMap<String, String>,
) -> Result<crate::log::Published, ApiError> {
    match q.get("checkpoint").map(String::as_str) {
        None | Some("latest") => Ok(s.log.published()),
        Some("witnessed") => s.anchorer.witnessed_published().ok_or_else(|| {
            ApiError::not_found("no checkpoint has been witnessed yet").field("checkpoint")
        }),
        Some(other) => Err(ApiError::bad_request(
            "bad_parameter",
            format!("checkpoint must be latest or witnessed, not {other:?}"),
        )
        .field("checkpoint")),
    }
}

pub async fn checkpoint(State(s): State<Arc<AppState>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        s.log.published().checkpoint,
    )
        .into_response()
}

/// `GET /tile/<L>/<N>[.p/<W>]` and `/tile/entries/<N>[.p/<W>]`, exactly per C2SP tlog-tiles:
/// full tiles are immutable and cached long; a partial tile is served only at a width that some
/// checkpoint required (at most the current one); empty tiles do not exist.
pub async fn tile(
    State(s): State<Arc<AppState>>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let parsed =
        parse_path(&format!("tile/{path}")).map_err(|e| ApiError::not_found(e.to_string()))?;
    let size = TreeSize(s.log.published().size);
    let log = s.log.clone();
    let (bytes, full) =
        tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, bool), ApiError> {
            match parsed {
                TilePath::Tile(t) => {
                    let exists = TileId::for_size(t.level, t.index, size)
                        .filter(|have| have.width >= t.width)
                        .ok_or_else(|| {
                            ApiError::not_found(format!("no tile {} at size {}", t.path(), size))
                        })?;
                    let _ = exists;
                    let stored = log
                        .store
                        .tile(t.level, t.index)
                        .map_err(crate::log::LogError::from)?
                        .ok_or_else(|| ApiError::not_found("tile not stored"))?;
                    Ok((stored.tile_bytes(t.width as usize), t.is_full()))
                }
                TilePath::Entries(b) => {
                    BundleId::for_size(b.index, size)
                        .filter(|have| have.width >= b.width)
                        .ok_or_else(|| {
                            ApiError::not_found(format!("no bundle {} at size {}", b.path(), size))
                        })?;
                    let (start, end) = b.leaf_range();
                    let leaves = log
                        .store
                        .entries(start, end)
                        .map_err(crate::log::LogError::from)?;
                    let bytes =
                        ledger_format::tile::encode_bundle(leaves.iter().map(Vec::as_slice))
                            .map_err(|e| {
                                ApiError::new(
                                    StatusCode::INTERNAL_SERVER_ERROR,
                                    "internal",
                                    e.to_string(),
                                )
                            })?;
                    Ok((bytes, b.width as u64 == ledger_format::tile::TILE_WIDTH))
                }
            }
        })
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })??;
    let cache = if full {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=60"
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, cache),
        ],
        bytes,
    )
        .into_response())
}

fn placed_at(s: &AppState, index: u64) -> Result<Placed, ApiError> {
    let leaf = s.log.leaf(index)?;
    Ok(Placed {
        index,
        leaf_hash: ledger_format::leaf_hash(&leaf),
        leaf,
    })
}

/// `GET /v1/entries/{index}`: a receipt against the latest checkpoint.
pub async fn entry(
    State(s): State<Arc<AppState>>,
    Path(index): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let index: u64 = index.parse().map_err(|_| {
        ApiError::bad_request("bad_parameter", "index must be a non-negative integer")
            .field("index")
    })?;
    let s2 = s.clone();
    let r = tokio::task::spawn_blocking(move || {
        let published = s2.log.published();
        let placed = placed_at(&s2, index)?;
        receipt(&s2.log, &placed, &published)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    receipt_response(&headers, r)
}

/// `GET /v1/receipts/{leaf_hash}[?checkpoint=latest|witnessed]`: refreshes a receipt against
/// the latest (or the witnessed) checkpoint.
pub async fn receipt_by_hash(
    State(s): State<Arc<AppState>>,
    Path(hash): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let published = chosen_checkpoint(&s, &q)?;
    let hash = Hash::parse_any(&hash)
        .map_err(|e| ApiError::bad_request("bad_parameter", e.to_string()).field("leaf_hash"))?;
    let index = s
        .log
        .index
        .leaf(&hash)
        .map_err(crate::log::LogError::from)?
        .filter(|i| *i < published.size)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no entry with leaf hash {} at size {}",
                hash.to_hex(),
                published.size
            ))
        })?;
    let placed = placed_at(&s, index)?;
    receipt_response(&headers, receipt(&s.log, &placed, &published)?)
}

/// `GET /v1/proofs/inclusion?index=&size=` or `?hash=&size=` (size defaults to the latest).
pub async fn inclusion(
    State(s): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let size = param_u64(&q, "size")?.unwrap_or(s.log.published().size);
    let index = match (param_u64(&q, "index")?, q.get("hash")) {
        (Some(i), None) => i,
        (None, Some(h)) => {
            let hash = Hash::parse_any(h)
                .map_err(|e| ApiError::bad_request("bad_parameter", e.to_string()).field("hash"))?;
            s.log
                .index
                .leaf(&hash)
                .map_err(crate::log::LogError::from)?
                .ok_or_else(|| {
                    ApiError::not_found(format!("no entry with leaf hash {}", hash.to_hex()))
                })?
        }
        _ => {
            return Err(ApiError::bad_request(
                "bad_parameter",
                "give exactly one of index= or hash=",
            ))
        }
    };
    let p = s.log.inclusion(index, size)?;
    Ok(axum::Json(json!({
        "index": index,
        "tree_size": size,
        "proof": p.path.iter().map(|h| h.to_base64()).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `GET /v1/proofs/consistency?old=&new=` (new defaults to the latest).
pub async fn consistency(
    State(s): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let old = param_u64(&q, "old")?
        .ok_or_else(|| ApiError::bad_request("bad_parameter", "old= is required").field("old"))?;
    let new = param_u64(&q, "new")?.unwrap_or(s.log.published().size);
    let p = s.log.consistency(old, new)?;
    Ok(axum::Json(json!({
        "old": old,
        "new": new,
        "proof": p.path.iter().map(|h| h.to_base64()).collect::<Vec<_>>(),
    }))
    .into_response())
}

pub async fn healthz(State(s): State<Arc<AppState>>) -> Response {
    if s.sequencer.is_fatal() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "sequencer stopped after a storage error\n",
        )
            .into_response()
    } else if s.sequencer.disk_full.load(Ordering::Relaxed) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "disk full: appends are refused until space is freed (reads work)\n",
        )
            .into_response()
    } else if s.sequencer.replication_down.load(Ordering::Relaxed) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "replication unavailable: the write-ahead topic does not acknowledge; appends are refused until it does (reads work)\n",
        )
            .into_response()
    } else {
        let degraded = s.anchorer.degraded();
        if degraded.is_empty() {
            (StatusCode::OK, "ok\n").into_response()
        } else {
            // Appends and reads work; what has not left the machine waits in the outbox.
            (
                StatusCode::OK,
                format!(
                    "ok, anchoring degraded (entries are kept in the outbox until it recovers): {}\n",
                    degraded.join("; ")
                ),
            )
                .into_response()
        }
    }
}

/// Prometheus text exposition.
pub async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    use std::fmt::Write;
    let m = &s.sequencer.metrics;
    let mut text = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(
            text,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    metric(
        "govledger_appended_total",
        "counter",
        "Entries appended to the log.",
        m.appended.load(Ordering::Relaxed) as f64,
    );
    metric(
        "govledger_deduplicated_total",
        "counter",
        "Submissions answered with an existing entry.",
        m.deduplicated.load(Ordering::Relaxed) as f64,
    );
    metric(
        "govledger_commit_groups_total",
        "counter",
        "Group commits.",
        m.groups.load(Ordering::Relaxed) as f64,
    );
    metric(
        "govledger_commit_seconds_total",
        "counter",
        "Time spent in group commits, including the fsync.",
        m.commit_micros_total.load(Ordering::Relaxed) as f64 / 1e6,
    );
    metric(
        "govledger_replication_unavailable",
        "gauge",
        "1 while appends are refused because the write-ahead topic does not acknowledge (durability = replicated).",
        if s.sequencer.replication_down.load(Ordering::Relaxed) {
            1.0
        } else {
            0.0
        },
    );
    metric(
        "govledger_disk_full",
        "gauge",
        "1 while appends are refused because the data dir's file system is below min_free_mb.",
        if s.sequencer.disk_full.load(Ordering::Relaxed) {
            1.0
        } else {
            0.0
        },
    );
    metric(
        "govledger_connections_open",
        "gauge",
        "Open client connections.",
        s.connections.open.load(Ordering::Relaxed) as f64,
    );
    metric(
        "govledger_connections_refused_total",
        "counter",
        "Connections refused over connections.max_connections or max_per_ip.",
        s.connections.refused.load(Ordering::Relaxed) as f64,
    );
    metric(
        "govledger_response_bytes_in_use",
        "gauge",
        "Bytes of read answers held until they are sent (bounded by reads.response_budget_mb).",
        s.budget.in_use_bytes() as f64,
    );
    metric(
        "govledger_reads_overloaded_total",
        "counter",
        "Read answers refused with 503 overloaded: they did not fit the response budget.",
        s.budget.refused.load(Ordering::Relaxed) as f64,
    );
    metric(
        "govledger_queue_depth",
        "gauge",
        "Requests waiting for the sequencer.",
        m.queue_depth.load(Ordering::Relaxed) as f64,
    );
    metric(
        "govledger_tree_size",
        "gauge",
        "Size of the latest signed checkpoint.",
        s.log.published().size as f64,
    );
    metric(
        "govledger_index_lag",
        "gauge",
        "Entries whose index records are not yet stored.",
        s.log.index.lag() as f64,
    );
    m.group_entries.render(
        "govledger_group_entries",
        "Entries per group commit (batch size).",
        &mut text,
    );
    m.durable_write_seconds.render(
        "govledger_durable_write_seconds",
        "Latency of each group's durable write (entries, tiles, the previous checkpoint), fsync included.",
        &mut text,
    );
    s.anchorer.render_metrics(&mut text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// `GET /v1/entries?kind=&model_id=&request=&artifact=&tag=&from=&to=&cursor=&limit=`: receipts (against
/// the latest checkpoint) of the entries that match every filter, in log order, and the cursor
/// for the next page (`null` at the end). The most selective filter drives the scan through its
/// posting list; the others are checked on each candidate; `from`/`to` (RFC 3339) bound the
/// index range by binary search over the non-decreasing timestamps.
pub async fn list(
    State(s): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    use ledger_format::entry::{attribute_key, attributes, EntryKind};
    for k in q.keys() {
        if ![
            "kind", "model_id", "request", "artifact", "tag", "from", "to", "cursor", "limit",
        ]
        .contains(&k.as_str())
        {
            return Err(
                ApiError::bad_request("bad_parameter", format!("unknown parameter {k}"))
                    .field(k.clone()),
            );
        }
    }
    if let Some(k) = q.get("kind") {
        if EntryKind::from_name(k).is_none() {
            return Err(
                ApiError::bad_request("bad_parameter", format!("unknown kind {k:?}")).field("kind"),
            );
        }
    }
    let (from_ms, to_ms) = (time_param(&q, "from")?, time_param(&q, "to")?);
    let limit = param_u64(&q, "limit")?.unwrap_or(100).clamp(1, 1000) as usize;
    let cursor = param_u64(&q, "cursor")?.unwrap_or(0);
    // Most selective first: a request has few entries, a kind has many.
    let wanted: Vec<String> = ["request", "artifact", "model_id", "tag", "kind"]
        .iter()
        .filter_map(|k| q.get(*k).map(|v| format!("{k}={v}")))
        .collect();
    let published = s.log.published();
    let log = s.log.clone();
    let (indices, next) =
        tokio::task::spawn_blocking(move || -> Result<(Vec<u64>, Option<u64>), ApiError> {
            let size = published.size;
            let (first, end) = time_range(&log, from_ms, to_ms, size)?;
            let start = cursor.max(first);
            let mut found = Vec::new();
            let mut pos = start;
            while pos < end && found.len() < limit {
                let candidates: Vec<u64> = match wanted.first() {
                    None => (pos..end.min(pos + limit as u64)).collect(),
                    Some(a) => log
                        .index
                        .postings(attribute_key(a), pos, 4 * limit)
                        .map_err(crate::log::LogError::from)?,
                };
                let Some(&last) = candidates.last() else {
                    break;
                };
                for i in candidates.into_iter().filter(|i| *i < end) {
                    if wanted.len() > 1 {
                        let leaf =
                            ledger_format::leaf::Leaf::parse(&log.leaf(i)?).map_err(|e| {
                                ApiError::new(
                                    StatusCode::INTERNAL_SERVER_ERROR,
                                    "internal",
                                    e.to_string(),
                                )
                            })?;
                        let have = attributes(leaf.kind, &leaf.body);
                        if !wanted.iter().all(|w| have.contains(w)) {
                            continue;
                        }
                    }
                    found.push(i);
                    if found.len() == limit {
                        break;
                    }
                }
                pos = last + 1;
            }
            let next = (found.len() == limit)
                .then(|| found[limit - 1] + 1)
                .filter(|n| *n < end);
            Ok((found, next))
        })
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })??;
    // The page ends before the entry that would take it past max_response_bytes: leaves are
    // read one by one against that bound, so a page of large entries never sits in memory.
    let overhead = 160 + published.checkpoint.len() + 45 * 64;
    let mut leaves = Vec::with_capacity(indices.len());
    let mut bytes = 0usize;
    for &i in &indices {
        let leaf = s.log.leaf(i)?;
        let cost = leaf.len().div_ceil(3) * 4 + overhead;
        if !leaves.is_empty() && bytes + cost > s.max_response_bytes {
            break;
        }
        bytes += cost;
        leaves.push((i, leaf));
    }
    let next = match indices.get(leaves.len()) {
        Some(&cut) => Some(cut),
        None => next,
    };
    let kept: Vec<u64> = leaves.iter().map(|(i, _)| *i).collect();
    let proofs = s.log.inclusions(&kept, published.size)?;
    let mut entries = Vec::with_capacity(kept.len());
    for ((index, leaf), proof) in leaves.into_iter().zip(proofs) {
        let placed = Placed {
            index,
            leaf_hash: ledger_format::leaf_hash(&leaf),
            leaf,
        };
        entries.push(super::submit::receipt_with(&placed, proof, &published));
    }
    Ok(axum::Json(json!({"entries": entries, "next_cursor": next})).into_response())
}

pub async fn no_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_such_endpoint",
        "no such endpoint",
    )
}

/// The OpenAPI 3 document of this API (docs/openapi.json; a test keeps it equal to the routes).
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}
