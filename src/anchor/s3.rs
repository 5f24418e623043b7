//! The S3 anchor: one object per anchored checkpoint, `<prefix>/<hex sha256(origin)>/<size, 20
//! digits>.checkpoint` (ledger-format SPEC.md §9), written with Object Lock mode COMPLIANCE
//! and a retain-until date `retention_days` ahead, so that nobody, the log operator and the
//! bucket's root account included, can delete or overwrite that version until then. At start
//! the bucket's Object Lock configuration is read; a bucket without Object Lock is a startup
//! error. Credentials come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and
//! `AWS_SESSION_TOKEN`).

/// The AWS SDK, for tests and tools that read the anchors back.
pub use aws_sdk_s3 as sdk;

use anyhow::{anyhow, bail, Result};
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ObjectLockEnabled, ObjectLockMode};

use super::{Backend, BoxFuture};
use crate::config::S3Config;

/// Returns an S3 client for `cfg`, with credentials from the environment.
pub fn client(cfg: &S3Config) -> Result<aws_sdk_s3::Client> {
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) else {
        bail!("S3 anchor: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
    };
    let mut b = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(cfg.region.clone()))
        .credentials_provider(Credentials::new(
            id,
            secret,
            var("AWS_SESSION_TOKEN"),
            None,
            "environment",
        ))
        .force_path_style(cfg.path_style);
    if let Some(e) = &cfg.endpoint {
        b = b.endpoint_url(e);
    }
    Ok(aws_sdk_s3::Client::from_conf(b.build()))
}

/// The S3 anchor.
pub struct S3Anchor {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    origin: String,
    retention_days: u32,
}

impl S3Anchor {
    /// Connects and checks that the bucket has Object Lock enabled.
    pub async fn connect(cfg: &S3Config, origin: &str) -> Result<S3Anchor> {
        let client = client(cfg)?;
        let r = client
            .get_object_lock_configuration()
            .bucket(&cfg.bucket)
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "S3 anchor: bucket {}: reading its Object Lock configuration failed (a bucket for anchors must be created with Object Lock enabled): {}",
                    cfg.bucket,
                    DisplayErrorContext(&e)
                )
            })?;
        let enabled = r
            .object_lock_configuration()
            .and_then(|c| c.object_lock_enabled())
            == Some(&ObjectLockEnabled::Enabled);
        if !enabled {
            bail!(
                "S3 anchor: bucket {} does not have Object Lock enabled; anchored checkpoints must be immutable",
                cfg.bucket
            );
        }
        Ok(S3Anchor {
            client,
            bucket: cfg.bucket.clone(),
            prefix: cfg.prefix.clone(),
            origin: origin.to_owned(),
            retention_days: cfg.retention_days,
        })
    }

    async fn put(&self, size: u64, checkpoint: &str) -> Result<(), String> {
        let key = ledger_format::anchor::s3_key(&self.prefix, &self.origin, size);
        // Already anchored (a retry after a lost confirmation): the locked version stays.
        if self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let until = now + i64::from(self.retention_days) * 86_400;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(checkpoint.as_bytes().to_vec()))
            .content_type("text/plain; charset=utf-8")
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(DateTime::from_secs(until))
            .metadata("tree-size", size.to_string())
            .send()
            .await
            .map_err(|e| format!("putting {key}: {}", DisplayErrorContext(&e)))?;
        Ok(())
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
