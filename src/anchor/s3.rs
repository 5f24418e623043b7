//! The checkpoint anchor in S3 ([`S3Anchor`]), on the bucket both S3 writers share
//! ([`S3Bucket`], `govledger_connectors::s3`; the WORM tile mirror is `super::mirror`).
//!
//! The anchor writes one object per anchored checkpoint, `<prefix>/<hex sha256(origin)>/<size,
//! 20 digits>.checkpoint` (ledger-format SPEC.md §9), locked (COMPLIANCE) for
//! `retention_days`. Nothing is written before the bucket's Object Lock configuration was
//! read and found enabled: at start when the bucket answers (a bucket without Object Lock is a
//! startup error), else at the first write once it does (a bucket without Object Lock then
//! stops both writers for good, with that error).

pub use govledger_connectors::s3::{
    client, sdk, Condition, Connection, Put, PutOnceError, S3Bucket,
};

use anyhow::Result;

use super::{Backend, BoxFuture};
use crate::config::S3Config;

/// Returns the connection of `cfg`.
pub fn connection(cfg: &S3Config) -> Connection {
    Connection {
        endpoint: cfg.endpoint.clone(),
        region: cfg.region.clone(),
        path_style: cfg.path_style,
    }
}

/// Returns the bucket of `cfg` for the log `origin`, without talking to S3.
pub fn bucket(cfg: &S3Config, origin: &str) -> Result<S3Bucket> {
    S3Bucket::new(
        &connection(cfg),
        &cfg.bucket,
        &cfg.prefix,
        origin,
        cfg.retention_days,
    )
}

/// The S3 anchor.
pub struct S3Anchor {
    bucket: std::sync::Arc<S3Bucket>,
}

impl S3Anchor {
    /// The anchor writing to `bucket`.
    pub fn new(bucket: std::sync::Arc<S3Bucket>) -> S3Anchor {
        S3Anchor { bucket }
    }

    async fn put(&self, size: u64, checkpoint: &str) -> Result<(), String> {
        let name = ledger_format::anchor::file_name(size);
        // Already anchored (a retry after a lost confirmation): the locked version stays.
        self.bucket
            .put_once(&name, checkpoint.as_bytes().to_vec())
            .await
            .map_err(|e| e.to_string())
    }
}

impl Backend for S3Anchor {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn publish<'a>(&'a self, size: u64, checkpoint: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.put(size, checkpoint))
    }
}
