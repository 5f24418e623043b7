//! What a reader may cost the server. Reads are unauthenticated, so three bounds keep a client
//! that asks for much and reads slowly from holding the server's memory:
//!
//! - each list page is bounded in bytes (`reads.max_response_bytes`: a page ends before the
//!   entry that would pass it, and its cursor continues there), and a receipt or a bundle is
//!   bounded by what it holds (one entry; a request's entries, deployments capped);
//! - every answer to a `GET` holds its size against one server-wide budget of response memory
//!   (`reads.response_budget_mb`) from the moment it is built until its last byte has left the
//!   process: an answer that does not fit gets 503 `overloaded` with `Retry-After`, and the
//!   slow reader keeps only its own answer, never more than the budget in total;
//! - per client (its bearer token's name, else its IP address), reads per second are limited
//!   by a token bucket when `reads.rate_per_s` is set (off by default, so monitors, audits
//!   and benchmarks are not throttled); beyond it 429 `rate_limited` with `Retry-After`.
//!
//! `/healthz` and `/metrics` are outside the budget and the rate, so that an overloaded server
//! can still be watched.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{ApiError, AppState};

/// The budget is counted in KiB (the semaphore's unit); every answer costs at least one.
const UNIT: usize = 1024;
/// Bytes handed to the connection at a time: the answer is released to the budget only when
/// its last chunk has been taken, and hyper takes the next chunk only once it has room.
const CHUNK: usize = 64 << 10;

/// The server-wide response memory budget.
pub struct ResponseBudget {
    permits: Arc<Semaphore>,
    total_kib: usize,
    /// Answers refused for lack of budget (`govledger_reads_overloaded_total`).
    pub refused: AtomicU64,
}

impl ResponseBudget {
    pub fn new(mb: u64) -> ResponseBudget {
        let total_kib = (mb as usize)
            .saturating_mul(1024)
            .clamp(1, Semaphore::MAX_PERMITS);
        ResponseBudget {
            permits: Arc::new(Semaphore::new(total_kib)),
            total_kib,
            refused: AtomicU64::new(0),
        }
    }

    /// Bytes of answers held now.
    pub fn in_use_bytes(&self) -> u64 {
        ((self.total_kib - self.permits.available_permits()) * UNIT) as u64
    }

    /// Reserves `bytes` of the budget, or `None` when they do not fit now. An answer larger
    /// than the whole budget takes all of it (served only when nothing else is held).
    fn reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let kib = bytes.div_ceil(UNIT).clamp(1, self.total_kib);
        let kib = u32::try_from(kib).unwrap_or(u32::MAX);
        self.permits.clone().try_acquire_many_owned(kib).ok()
    }
}

/// An answer's bytes with the budget they hold, handed out in chunks; the budget returns when
/// the last chunk is taken or the connection drops the body.
struct Budgeted {
    data: Bytes,
    permit: Option<OwnedSemaphorePermit>,
}

impl http_body::Body for Budgeted {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.data.is_empty() {
            self.permit.take();
            return Poll::Ready(None);
        }
        let n = self.data.len().min(CHUNK);
        let chunk = self.data.split_to(n);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.len() as u64)
    }
}

fn exempt(req: &Request) -> bool {
    !matches!(*req.method(), Method::GET | Method::HEAD)
        || matches!(req.uri().path(), "/healthz" | "/metrics")
}

/// The client a read is counted against: a known bearer token's client, else the peer's IP.
fn reader(state: &AppState, req: &Request) -> String {
    let token = super::submit::bearer_digest(req.headers());
    if let Some(client) = token.and_then(|d| state.tokens.get(&d)) {
        return format!("client:{}", client.name);
    }
    match req.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) => format!("ip:{}", peer.ip()),
        None => "ip:unknown".into(),
    }
}

/// The middleware: rate-limits the read, runs it, and holds its answer against the budget.
pub async fn bounded(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if exempt(&req) {
        return next.run(req).await;
    }
    if let Err(e) = state
        .read_limiter
        .take(&reader(&state, &req), state.read_limit, 1)
    {
        return e.into_response();
    }
    let response = next.run(req).await;
    let (parts, body) = response.into_parts();
    // Answers are built whole in memory (JSON, tiles); a body without an exact size would be
    // streamed, and none of the read routes produce one.
    let data = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(d) => d,
        Err(e) => {
            return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
                .into_response()
        }
    };
    let Some(permit) = state.budget.reserve(data.len()) else {
        state.budget.refused.fetch_add(1, Ordering::Relaxed);
        return overloaded(data.len()).into_response();
    };
    Response::from_parts(
        parts,
        Body::new(Budgeted {
            data,
            permit: Some(permit),
        }),
    )
}

fn overloaded(bytes: usize) -> ApiError {
    ApiError {
        retry_after: Some(1),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            format!(
                "the server's response memory is taken by answers still being read; this one ({bytes} bytes) does not fit now; retry shortly or ask for a smaller page"
            ),
        )
    }
}
