//! Per-client rate limits and quotas: a token bucket per client name, refilled at `rate`
//! entries per second up to `burst`, and a daily quota of entries per UTC day. A submission
//! takes one token (and one unit of quota) per entry; when the bucket lacks them the answer is
//! 429 `rate_limited` with `Retry-After` (seconds until enough tokens), beyond the quota 429
//! `quota_exceeded` with `Retry-After` (seconds until the next UTC midnight); nothing is taken,
//! so a client that waits recovers. Entries count when presented (after parsing), whether or not
//! they are then appended; the counts live in memory (a restart resets them).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::http::StatusCode;

use super::ApiError;

/// A client's limit: entries per second and the burst it may spend at once (rate 0: no rate
/// limit), and entries per UTC day (0: no quota).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limit {
    pub rate_per_s: f64,
    pub burst: f64,
    pub quota_per_day: u64,
}

struct Bucket {
    tokens: f64,
    at: Instant,
    /// UTC day number (Unix seconds / 86,400) and the entries taken on it.
    day: u64,
    today: u64,
}

/// The buckets of every client, counting `unit` (entries for submissions, reads for reads).
pub struct Limiter {
    buckets: Mutex<HashMap<String, Bucket>>,
    unit: &'static str,
}

impl Default for Limiter {
    fn default() -> Limiter {
        Limiter::counting("entries")
    }
}

impl Limiter {
    pub fn counting(unit: &'static str) -> Limiter {
        Limiter {
            buckets: Mutex::new(HashMap::new()),
            unit,
        }
    }

    /// Takes `n` entries from `client`'s bucket and quota, or answers 429.
    pub fn take(&self, client: &str, limit: Option<Limit>, n: usize) -> Result<(), ApiError> {
        let unix_s = crate::sequencer::now_ms() / 1000;
        self.take_at(client, limit, n, Instant::now(), unix_s)
    }

    fn take_at(
        &self,
        client: &str,
        limit: Option<Limit>,
        n: usize,
        now: Instant,
        unix_s: u64,
    ) -> Result<(), ApiError> {
        let Some(l) = limit.filter(|l| l.rate_per_s > 0.0 || l.quota_per_day > 0) else {
            return Ok(());
        };
        let day = unix_s / 86_400;
        let mut buckets = self.buckets.lock().expect("lock poisoned");
        let b = buckets.entry(client.to_owned()).or_insert(Bucket {
            tokens: l.burst,
            at: now,
            day,
            today: 0,
        });
        if b.day != day {
            b.day = day;
            b.today = 0;
        }
        if l.quota_per_day > 0 && b.today + n as u64 > l.quota_per_day {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "quota_exceeded",
                format!(
                    "client {client} may submit {} entries per UTC day and has submitted {} today; {n} more would exceed it",
                    l.quota_per_day, b.today
                ),
            );
            e.retry_after = Some(((day + 1) * 86_400 - unix_s).max(1) as u32);
            return Err(e);
        }
        if l.rate_per_s <= 0.0 {
            b.today += n as u64;
            return Ok(());
        }
        let n_f = n as f64;
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * l.rate_per_s).min(l.burst);
        b.at = now;
        let n = n_f;
        if n > l.burst {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "{n} {unit} exceed client {client}'s burst of {} {unit}; send smaller batches",
                    l.burst,
                    unit = self.unit
                ),
            ));
        }
        if b.tokens < n {
            let wait = ((n - b.tokens) / l.rate_per_s).ceil().max(1.0) as u32;
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "client {client} is limited to {} {unit}/s (burst {}); retry in {wait} s",
                    l.rate_per_s,
                    l.burst,
                    unit = self.unit
                ),
            );
            e.retry_after = Some(wait);
            return Err(e);
        }
        b.tokens -= n;
        b.today += n as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daily_quota_refuses_until_the_next_utc_day() {
        let l = Some(Limit {
            rate_per_s: 0.0,
            burst: 0.0,
            quota_per_day: 10,
        });
        let limiter = Limiter::default();
        let now = Instant::now();
        let noon = 20_000 * 86_400 + 43_200;
        limiter.take_at("a", l, 6, now, noon).unwrap();
        limiter.take_at("a", l, 4, now, noon + 1).unwrap();
        let e = limiter.take_at("a", l, 1, now, noon + 2).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (429, "quota_exceeded"));
        assert_eq!(e.retry_after, Some(43_198));
        // Another client has its own quota; the next day starts afresh.
        limiter.take_at("b", l, 10, now, noon).unwrap();
        limiter.take_at("a", l, 10, now, noon + 43_200).unwrap();
    }

    #[test]
    fn rate_and_quota_together() {
        let l = Some(Limit {
            rate_per_s: 100.0,
            burst: 5.0,
            quota_per_day: 7,
        });
        let limiter = Limiter::default();
        let t0 = Instant::now();
        limiter.take_at("a", l, 5, t0, 0).unwrap();
        let e = limiter.take_at("a", l, 1, t0, 0).unwrap_err();
        assert_eq!(e.code, "rate_limited");
        let later = t0 + std::time::Duration::from_secs(1);
        limiter.take_at("a", l, 2, later, 1).unwrap();
        assert_eq!(
            limiter.take_at("a", l, 1, later, 1).unwrap_err().code,
            "quota_exceeded"
        );
    }
}
