//! How a call to an external system fails, and retrying the calls that may succeed later.

use std::time::Duration;

/// What went wrong, for the caller to answer with (the server maps it to an HTTP status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The target cannot go into a URL or query: nothing was sent.
    BadTarget,
    /// Credentials missing, or rejected by the system.
    Credentials,
    /// The system does not hold what was asked for.
    NotFound,
    /// The system is rate limiting the caller.
    RateLimited,
    /// The system could not be reached, answered an error, or an answer that does not parse.
    Upstream,
}

/// A failed call. The message names the system and what was being done, never a secret.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub failure: Failure,
    /// True when the same call may succeed if made again shortly (network errors, 5xx, rate
    /// limits, a token revoked early).
    pub retryable: bool,
    pub message: String,
}

impl Error {
    /// Returns an error that retrying does not cure.
    pub fn new(failure: Failure, message: impl Into<String>) -> Error {
        Error {
            failure,
            retryable: false,
            message: message.into(),
        }
    }

    /// Returns an error that a later attempt may not meet.
    pub fn transient(failure: Failure, message: impl Into<String>) -> Error {
        Error {
            retryable: true,
            ..Error::new(failure, message)
        }
    }
}

/// Calls `f` until it succeeds or fails for good: up to 3 retries of retryable errors, 250 ms
/// apart and doubling.
pub async fn with_retries<T, F, Fut>(mut f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut wait = Duration::from_millis(250);
    let mut attempt = 0;
    loop {
        match f().await {
            Err(e) if e.retryable && attempt < 3 => {
                tracing::warn!("retrying after: {}", e.message);
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}
