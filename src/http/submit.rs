//! `POST /v1/entries`: authenticate, validate, enqueue, wait for the durable checkpoint, answer
//! with receipts.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ledger_format::entry::{parse_submissions, EntryKind, SchemaError, Submission};
use ledger_format::leaf::encoded_len;
use ledger_format::proof::InclusionProof;
use ledger_format::receipt::Receipt;
use ledger_format::tile::MAX_ENTRY_SIZE;

use super::{ApiError, AppState, Client};
use crate::governance::Refusal;
use crate::log::{Log, Published};
use crate::sequencer::{Pending, Placed, SubmitError};
use crate::tls::PeerCertificate;

/// Returns the hex SHA-256 of the request's bearer token, the form `tokens` are keyed by.
pub(super) fn bearer_digest(headers: &HeaderMap) -> Option<String> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))?;
    Some(hex::encode(ledger_format::hash::sha256(
        token.trim().as_bytes(),
    )))
}

/// Returns the client making the request: a bearer token's client, else a client
/// certificate's, else `anonymous` on loopback when neither tokens nor certificate clients are
/// configured.
pub(super) fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
    cert: Option<&PeerCertificate>,
) -> Result<Client, ApiError> {
    if let Some(digest) = bearer_digest(headers).filter(|_| !state.tokens.is_empty()) {
        return state.tokens.get(&digest).cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "unknown bearer token",
            )
        });
    }
    if let Some(PeerCertificate(subject)) = cert {
        return state.certificates.get(subject).cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("the client certificate's subject {subject} is not a configured client (config [[certificates]])"),
            )
        });
    }
    if state.tokens.is_empty() && state.certificates.is_empty() {
        if !peer.ip().is_loopback() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "without configured tokens only loopback clients may submit",
            ));
        }
        return Ok(Client {
            name: "anonymous".into(),
            kinds: vec![],
            limit: state.anonymous_limit,
        });
    }
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        if state.tokens.is_empty() {
            "missing client certificate"
        } else if state.certificates.is_empty() {
            "missing bearer token"
        } else {
            "missing bearer token or client certificate"
        },
    ))
}

/// Returns the JSON receipt of `placed` against `published`.
pub fn receipt(log: &Log, placed: &Placed, published: &Published) -> Result<Receipt, ApiError> {
    let proof = log.inclusion(placed.index, published.size)?;
    Ok(receipt_with(placed, proof, published))
}

pub fn receipt_with(placed: &Placed, proof: InclusionProof, published: &Published) -> Receipt {
    Receipt {
        index: placed.index,
        leaf_hash: placed.leaf_hash.to_hex(),
        leaf: STANDARD.encode(&placed.leaf),
        tree_size: published.size,
        root: published.root.to_base64(),
        proof: proof.path.iter().map(|h| h.to_base64()).collect(),
        checkpoint: published.checkpoint.clone(),
    }
}

/// Returns true when the client asked for C2SP tlog-proof text.
pub fn wants_text(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/plain") && !a.contains("application/json"))
}

/// Answers one receipt as JSON or, on `Accept: text/plain`, as a tlog-proof.
pub fn receipt_response(headers: &HeaderMap, r: Receipt) -> Result<Response, ApiError> {
    if wants_text(headers) {
        let text = r
            .to_tlog_proof()
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })?
            .to_text();
        Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
    } else {
        Ok(axum::Json(r).into_response())
    }
}

/// Why a submission was refused before or by the sequencer; `crate::http::error` maps each to
/// its status and code.
#[derive(Debug)]
pub enum Rejected {
    /// The body exceeds `max_body_bytes`.
    BodyTooLarge { limit: usize },
    /// The body is not UTF-8.
    NotUtf8,
    /// The body is not JSON, or breaks the submission shape or an entry's schema.
    Schema(SchemaError),
    /// A batch of more than `max_batch_entries`.
    BatchTooLarge { max: usize },
    /// The client may not submit entries of this kind.
    KindNotAllowed {
        client: String,
        kind: EntryKind,
        field: String,
    },
    /// The entry's leaf would exceed the tile format's limit.
    LeafTooLarge { len: usize, field: String },
    /// A governance rule refuses the entry.
    Governance(Refusal),
    /// The WORM mirror lags more than `max_unmirrored_entries`.
    MirrorBehind { lag: u64, retry_after_s: u64 },
    /// The sequencer refused or failed the group.
    Sequencer(SubmitError),
    /// The sequencer stopped before answering.
    SequencerStopped,
}

impl From<SubmitError> for Rejected {
    fn from(e: SubmitError) -> Rejected {
        Rejected::Sequencer(e)
    }
}

impl From<Refusal> for Rejected {
    fn from(r: Refusal) -> Rejected {
        Rejected::Governance(r)
    }
}

pub async fn submit(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    cert: Option<axum::Extension<crate::tls::PeerCertificate>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let client = authenticate(&state, &headers, peer, cert.as_deref())?;
    let bytes = axum::body::to_bytes(body, state.max_body_bytes)
        .await
        .map_err(|_| Rejected::BodyTooLarge {
            limit: state.max_body_bytes,
        })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| Rejected::NotUtf8)?;
    let (subs, batch) = parse_submissions(text).map_err(Rejected::Schema)?;
    if subs.len() > state.max_batch_entries {
        return Err(Rejected::BatchTooLarge {
            max: state.max_batch_entries,
        }
        .into());
    }
    state.limiter.take(&client.name, client.limit, subs.len())?;
    let pending = admit(&state, &client, &subs, batch)?;
    if let Some((lag, retry_after_s)) = state.anchorer.mirror_behind() {
        return Err(Rejected::MirrorBehind { lag, retry_after_s }.into());
    }
    let rx = state.sequencer.submit(pending).map_err(Rejected::from)?;
    let committed = rx
        .await
        .map_err(|_| Rejected::SequencerStopped)?
        .map_err(Rejected::from)?;
    // Proofs read a few tiles that the commit just wrote, so they are in sled's cache: cheaper
    // inline than a hop to the blocking pool (measured: the hop cost ~8% of CPU at 10k/s).
    let indices: Vec<u64> = committed.placed.iter().map(|p| p.index).collect();
    let mut proofs = state.log.inclusions(&indices, committed.published.size)?;
    if !batch {
        let proof = proofs.remove(0);
        let r = receipt_with(&committed.placed[0], proof, &committed.published);
        return receipt_response(&headers, r);
    }
    let body = batch_answer(&committed.placed, &proofs, &committed.published);
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Checks each parsed submission against the client's rights, the leaf size and governance,
/// and returns them ready for the sequencer (all or none: one refusal refuses the request).
fn admit(
    state: &AppState,
    client: &Client,
    subs: &[Submission<'_>],
    batch: bool,
) -> Result<Vec<Pending>, Rejected> {
    let mut pending = Vec::with_capacity(subs.len());
    for (i, s) in subs.iter().enumerate() {
        let prefix = if batch {
            format!("entries[{i}].")
        } else {
            String::new()
        };
        if !client.kinds.is_empty() && !client.kinds.contains(&s.kind) {
            return Err(Rejected::KindNotAllowed {
                client: client.name.clone(),
                kind: s.kind,
                field: format!("{prefix}kind"),
            });
        }
        let len = encoded_len(client.name.len(), s.entry_id.len(), s.body.len());
        if len > MAX_ENTRY_SIZE {
            return Err(Rejected::LeafTooLarge {
                len,
                field: format!("{prefix}body"),
            });
        }
        crate::governance::check(
            &state.log,
            &state.policy,
            s.kind,
            s.body,
            &format!("{prefix}body."),
        )?;
        pending.push(Pending {
            attrs: s
                .attributes
                .iter()
                .map(|a| ledger_format::entry::attribute_key(a))
                .collect(),
            kind: s.kind,
            submitter: client.name.clone(),
            entry_id: s.entry_id.clone(),
            body: s.body.as_bytes().to_vec(),
        });
    }
    Ok(pending)
}

/// Writes the answer to a batch: `{"checkpoint", "receipts": [{"index", "leaf", "leaf_hash",
/// "proof"}], "root", "tree_size"}`, directly rather than through `serde_json::Value` (building
/// and serialising the values cost ~15% of the server's CPU at batches of 256); only the
/// checkpoint text needs JSON escaping, the rest is digits, hex and base64.
fn batch_answer(placed: &[Placed], proofs: &[InclusionProof], published: &Published) -> String {
    use std::fmt::Write;
    let per_item = 96 + placed.first().map_or(0, |p| p.leaf.len() * 4 / 3 + 45 * 24);
    let mut out = String::with_capacity(256 + placed.len() * per_item);
    out.push_str(r#"{"checkpoint":"#);
    out.push_str(&serde_json::to_string(&published.checkpoint).expect("a string serialises"));
    out.push_str(r#","receipts":["#);
    for (i, (p, proof)) in placed.iter().zip(proofs).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, r#"{{"index":{},"leaf":""#, p.index);
        STANDARD.encode_string(&p.leaf, &mut out);
        let _ = write!(out, r#"","leaf_hash":"{}","proof":["#, p.leaf_hash.to_hex());
        for (k, h) in proof.path.iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            out.push('"');
            STANDARD.encode_string(h.0, &mut out);
            out.push('"');
        }
        out.push_str("]}");
    }
    let _ = write!(
        out,
        r#"],"root":"{}","tree_size":{}}}"#,
        published.root.to_base64(),
        published.size
    );
    out
}
