//! The clock, and RFC 3339 formatting of Unix milliseconds (ledger-format's).

pub use ledger_format::rfc3339::format_ms as rfc3339_ms;

/// Returns the current time in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
