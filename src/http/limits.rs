//! Per-client rate limits: a token bucket per client name, refilled at `rate` entries per
//! second up to `burst`. A submission takes one token per entry; when the bucket lacks them the
//! answer is 429 `rate_limited` with `Retry-After` (seconds until enough tokens), and nothing
//! is taken, so a client that waits recovers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::http::StatusCode;

use super::ApiError;

/// A client's limit: entries per second and the burst it may spend at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limit {
    pub rate: f64,
    pub burst: f64,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every client.
#[derive(Default)]
pub struct Limiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Limiter {
    /// Takes `n` tokens from `client`'s bucket, or answers 429.
    pub fn take(&self, client: &str, limit: Option<Limit>, n: usize) -> Result<(), ApiError> {
        let Some(l) = limit.filter(|l| l.rate > 0.0) else {
            return Ok(());
        };
        let n = n as f64;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("lock poisoned");
        let b = buckets.entry(client.to_owned()).or_insert(Bucket {
            tokens: l.burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * l.rate).min(l.burst);
        b.at = now;
        if n > l.burst {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "{n} entries exceed client {client}'s burst of {} entries; send smaller batches",
                    l.burst
                ),
            ));
        }
        if b.tokens < n {
            let wait = ((n - b.tokens) / l.rate).ceil().max(1.0) as u32;
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "client {client} is limited to {} entries/s (burst {}); retry in {wait} s",
                    l.rate, l.burst
                ),
            );
            e.retry_after = Some(wait);
            return Err(e);
        }
        b.tokens -= n;
        Ok(())
    }
}
