//! The HTTP API (docs/openapi.json): submissions, receipts, proofs, C2SP tlog-tiles, health and
//! metrics. [`router`] builds the app from its state; [`conn::serve`] runs it on a listener until the
//! shutdown future resolves, so tests run the real app on port 0.

pub(crate) mod approvals;
pub mod conn;
mod error;
mod integrations;
pub mod limits;
mod read;
pub mod reads;
mod submit;
mod summary;

pub use error::ApiError;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use ledger_format::entry::EntryKind;

use crate::log::Log;
use crate::sequencer::Handle;

/// A client allowed to submit, as the config names it.
#[derive(Clone, Debug)]
pub struct Client {
    pub name: String,
    /// Kinds it may submit; empty means all.
    pub kinds: Vec<EntryKind>,
    /// Its rate limit (entries per second, burst); `None`: unlimited.
    pub limit: Option<limits::Limit>,
}

/// Shared state of every handler.
pub struct AppState {
    pub log: Arc<Log>,
    pub sequencer: Handle,
    /// SHA-256 (hex) of each bearer token to its client. Empty: loopback clients submit freely.
    pub tokens: HashMap<String, Client>,
    pub max_body_bytes: usize,
    pub max_batch_entries: usize,
    /// The release policy and the people who sign requests and approvals.
    pub policy: ledger_format::policy::Policy,
    /// Per-client token buckets, and the limit of loopback clients when no tokens are set.
    pub limiter: limits::Limiter,
    pub anonymous_limit: Option<limits::Limit>,
    /// Approval sources (GitHub, ServiceNow).
    pub integrations: crate::integrations::Integrations,
    /// Anchoring and witnessing state.
    pub anchorer: Arc<crate::anchor::Anchorer>,
    /// Clients known by their TLS client certificate's subject.
    pub certificates: HashMap<crate::tls::Subject, Client>,
    /// A request must be answered within this (408 beyond).
    pub request_timeout: Duration,
    /// Connections open and refused (shared with the listener).
    pub connections: Arc<conn::ConnStats>,
    /// The memory answers to reads may hold until they are sent.
    pub budget: reads::ResponseBudget,
    /// Per-client read rates, and the limit (`None`: unlimited).
    pub read_limiter: limits::Limiter,
    pub read_limit: Option<limits::Limit>,
    /// Largest list page, in bytes of answer.
    pub max_response_bytes: usize,
    /// Which compliance tags stand for which regulation (`GET /v1/summary`).
    pub regulations: ledger_format::summary::Regulations,
    /// Largest range a summary reads, in entries.
    pub max_summary_entries: u64,
    /// One summary is counted at a time (each may read millions of entries); others wait for
    /// a 503 `summary_busy`.
    pub summaries: Arc<tokio::sync::Semaphore>,
}

/// Every route as (method, OpenAPI path). `docs/openapi.json` lists exactly these, and each
/// answers from its handler, not the fallback (tests/it/api.rs checks both).
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/entries"),
    ("GET", "/v1/entries"),
    ("GET", "/v1/entries/{index}"),
    ("GET", "/v1/log"),
    ("GET", "/v1/proofs/inclusion"),
    ("GET", "/v1/proofs/consistency"),
    ("GET", "/v1/receipts/{leaf_hash}"),
    ("GET", "/v1/summary"),
    ("GET", "/v1/approvals/{request}"),
    ("GET", "/v1/approvals/{request}/bundle"),
    ("POST", "/v1/approvals/{request}/sync"),
    ("GET", "/v1/anchors"),
    ("GET", "/v1/checkpoints"),
    ("GET", "/v1/checkpoints/witnessed"),
    ("GET", "/checkpoint"),
    ("GET", "/tile/{path}"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

/// Returns the OpenAPI document the server serves at `/openapi.json`.
pub fn read_openapi() -> &'static str {
    read::OPENAPI
}

/// Returns the application with every route.
pub fn router(state: Arc<AppState>) -> Router {
    let timeout = state.request_timeout;
    Router::new()
        .route("/v1/entries", post(submit::submit).get(read::list))
        .route("/v1/entries/{index}", get(read::entry))
        .route("/v1/log", get(read::log_info))
        .route("/v1/proofs/inclusion", get(read::inclusion))
        .route("/v1/proofs/consistency", get(read::consistency))
        .route("/v1/receipts/{leaf_hash}", get(read::receipt_by_hash))
        .route("/v1/summary", get(summary::summary))
        .route("/v1/approvals/{request}", get(approvals::status))
        .route("/v1/approvals/{request}/bundle", get(approvals::bundle))
        .route("/v1/approvals/{request}/sync", post(integrations::sync))
        .route("/v1/anchors", get(read::anchors))
        .route("/v1/checkpoints", get(read::checkpoints))
        .route("/v1/checkpoints/witnessed", get(read::witnessed))
        .route("/checkpoint", get(read::checkpoint))
        .route("/tile/{*path}", get(read::tile))
        .route("/healthz", get(read::healthz))
        .route("/metrics", get(read::metrics))
        .route("/openapi.json", get(read::openapi))
        .fallback(read::no_route)
        .method_not_allowed_fallback(read::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            reads::bounded,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .with_state(state)
}
