//! An S3 bucket with Object Lock, the one S3 client of the server (anchors, the WORM mirror,
//! restore) and the CLI (anchors verify, readers of the mirror).
//!
//! Every object written carries Object Lock mode COMPLIANCE and a retain-until date
//! `retention_days` ahead, so that nobody, the log operator and the bucket's root account
//! included, can delete or overwrite that version until then; nothing is written before the
//! bucket's Object Lock configuration was read and found enabled. Writes are conditional
//! (`If-None-Match: *`, `If-Match`). Reads take a key's versions newest first, as S3 lists
//! them: the oldest is the one a conditional write created and retention keeps. Credentials
//! come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`).

/// The AWS SDK, for tests and tools that read the bucket directly.
pub use aws_sdk_s3 as sdk;

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Result};
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ObjectLockEnabled, ObjectLockMode, ObjectLockRetentionMode};

/// Where the S3 service is.
#[derive(Clone, Debug, Default)]
pub struct Connection {
    /// Endpoint URL for S3-compatible stores (default: AWS).
    pub endpoint: Option<String>,
    pub region: String,
    /// Path-style addressing (`endpoint/bucket/key`), as most S3-compatible stores want.
    pub path_style: bool,
}

/// One version of an object, as a listing gives it.
#[derive(Clone, Debug)]
pub struct Version {
    pub key: String,
    pub id: String,
    /// Last-modified time, Unix ms (listings give whole seconds).
    pub modified_ms: i64,
}

/// An object version's Object Lock retention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    /// True for mode COMPLIANCE.
    pub compliance: bool,
    /// Retain-until date, Unix seconds.
    pub until_s: Option<i64>,
}

/// Returns an S3 client for `conn`, with credentials from the environment.
pub fn client(conn: &Connection) -> Result<aws_sdk_s3::Client> {
    let var = crate::env::var;
    let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) else {
        bail!("S3: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
    };
    let mut b = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(conn.region.clone()))
        .credentials_provider(Credentials::new(
            id,
            secret,
            var("AWS_SESSION_TOKEN"),
            None,
            "environment",
        ))
        .force_path_style(conn.path_style)
        // A bucket that stops answering mid-request (a partition, a paused server) fails the
        // attempt, and the writer retries with backoff, instead of waiting forever.
        .timeout_config(
            aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        );
    if let Some(e) = &conn.endpoint {
        b = b.endpoint_url(e);
    }
    Ok(aws_sdk_s3::Client::from_conf(b.build()))
}

/// What a conditional write asks of the object's current version.
#[derive(Clone, Debug)]
pub enum Condition {
    /// `If-None-Match: *`: only if the key has no current version.
    Absent,
    /// `If-Match: <etag>`: only if the current version has this ETag (a compare-and-swap).
    Matches(String),
}

/// The outcome of a conditional write that S3 answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Put {
    /// Written as a new, locked version; its ETag.
    Written(String),
    /// 412: the condition did not hold; nothing was written.
    PreconditionFailed,
}

/// Whether the bucket's Object Lock configuration has been read.
#[derive(Clone, Debug)]
enum LockState {
    Unknown,
    Enabled,
    /// The bucket answered without Object Lock: nothing is ever written to it.
    Missing(String),
}

/// A bucket with Object Lock that the log writes locked objects to.
pub struct S3Bucket {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    /// `<prefix>/<hex sha256(origin)>/`: every object of this log is under it.
    pub log_prefix: String,
    pub retention_days: u32,
    lock: Mutex<LockState>,
}

impl S3Bucket {
    /// Returns `bucket` at `conn`, with the objects of the log `origin` under `prefix`,
    /// without talking to S3.
    pub fn new(
        conn: &Connection,
        bucket: &str,
        prefix: &str,
        origin: &str,
        retention_days: u32,
    ) -> Result<S3Bucket> {
        Ok(S3Bucket {
            client: client(conn)?,
            bucket: bucket.to_owned(),
            log_prefix: ledger_format::anchor::s3_log_prefix(prefix, origin),
            retention_days,
            lock: Mutex::new(LockState::Unknown),
        })
    }

    /// At start: reads the Object Lock configuration within `wait`. A bucket that answers
    /// without Object Lock is an error; one that does not answer is checked again before the
    /// first write (the log starts anyway and anchoring waits, degraded).
    pub async fn check_at_start(&self, wait: Duration) -> Result<()> {
        match tokio::time::timeout(wait, self.ensure_locked()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e))
                if matches!(
                    *self.lock.lock().expect("lock poisoned"),
                    LockState::Missing(_)
                ) =>
            {
                bail!("{e}")
            }
            Ok(Err(e)) => {
                tracing::warn!(
                    "{e}; starting anyway: anchoring to S3 waits until the bucket answers"
                );
                Ok(())
            }
            Err(_) => {
                tracing::warn!(
                    "S3 bucket {} did not answer within {wait:?}; starting anyway: anchoring to S3 waits until it answers",
                    self.bucket
                );
                Ok(())
            }
        }
    }

    /// Returns Ok once the bucket's Object Lock is known to be enabled; reads the configuration
    /// when it is not known yet. A bucket without Object Lock is refused for good.
    pub async fn ensure_locked(&self) -> Result<(), String> {
        match &*self.lock.lock().expect("lock poisoned") {
            LockState::Enabled => return Ok(()),
            LockState::Missing(why) => return Err(why.clone()),
            LockState::Unknown => {}
        }
        let r = self
            .client
            .get_object_lock_configuration()
            .bucket(&self.bucket)
            .send()
            .await;
        let enabled = match r {
            Ok(r) => {
                r.object_lock_configuration()
                    .and_then(|c| c.object_lock_enabled())
                    == Some(&ObjectLockEnabled::Enabled)
            }
            // The bucket answered (no such configuration, no such bucket, access denied).
            Err(SdkError::ServiceError(e)) => {
                tracing::debug!("Object Lock configuration: {:?}", e.err());
                false
            }
            Err(e) => {
                return Err(format!(
                    "S3 bucket {}: reading its Object Lock configuration failed: {}",
                    self.bucket,
                    DisplayErrorContext(&e)
                ))
            }
        };
        let mut lock = self.lock.lock().expect("lock poisoned");
        if enabled {
            *lock = LockState::Enabled;
            Ok(())
        } else {
            let why = format!(
                "S3 bucket {} does not have Object Lock enabled (or cannot be read): nothing is written to it; anchored checkpoints and mirrored tiles must be immutable, so create the bucket with Object Lock enabled",
                self.bucket
            );
            tracing::error!("{why}");
            *lock = LockState::Missing(why.clone());
            Err(why)
        }
    }

    /// Returns the retain-until date of an object written now.
    fn retain_until(&self) -> DateTime {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        DateTime::from_secs(now + i64::from(self.retention_days) * 86_400)
    }

    /// Writes `bytes` at `key` (under the log prefix) as a locked version if `condition` holds.
    pub async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        condition: Condition,
    ) -> Result<Put, String> {
        self.ensure_locked().await?;
        let content_type = if key.ends_with("checkpoint") {
            "text/plain; charset=utf-8"
        } else {
            "application/octet-stream"
        };
        let key = format!("{}{key}", self.log_prefix);
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(bytes))
            .content_type(content_type)
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(self.retain_until());
        if let Some(size) = ledger_format::anchor::size_of_name(&key) {
            req = req.metadata("tree-size", size.to_string());
        }
        req = match condition {
            Condition::Absent => req.if_none_match("*"),
            Condition::Matches(etag) => req.if_match(etag),
        };
        match req.send().await {
            Ok(r) => Ok(Put::Written(r.e_tag().unwrap_or_default().to_owned())),
            Err(e) if status(&e) == Some(412) => Ok(Put::PreconditionFailed),
            Err(e) => Err(format!("putting {key}: {}", DisplayErrorContext(&e))),
        }
    }

    /// Returns the bytes of the oldest version of `key` (under the log prefix), the one a
    /// conditional write created first and retention keeps, and how many versions the key has
    /// (more than one: someone wrote over it, which cannot remove the oldest). `None` when the
    /// key has no version.
    pub async fn oldest(&self, key: &str) -> Result<Option<(Vec<u8>, usize)>, String> {
        let key = format!("{}{key}", self.log_prefix);
        let versions = self.version_ids(&key).await?;
        let Some(first) = versions.last() else {
            return Ok(None);
        };
        let bytes = self.get(&key, Some(first)).await?;
        Ok(Some((bytes, versions.len())))
    }

    /// Returns the version ids of the full object name `key`, newest first (delete markers
    /// are not versions).
    pub async fn version_ids(&self, key: &str) -> Result<Vec<String>, String> {
        let versions = self.list(key, None, Some(key)).await?;
        Ok(versions.into_iter().map(|v| v.id).collect())
    }

    /// Returns every version of every object directly under `prefix` (not below a further
    /// `/`), in the listing's order: by key, each key's versions newest first. Delete markers
    /// are not versions.
    pub async fn versions_under(&self, prefix: &str) -> Result<Vec<Version>, String> {
        self.list(prefix, Some("/"), None).await
    }

    /// Lists the versions of the keys starting with `prefix` (not below a further `delimiter`),
    /// page by page; with `only`, the versions of that one key (S3 lists keys in order, so
    /// the listing stops at the first key past it, such as a partial tile's `.p/` names).
    async fn list(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        only: Option<&str>,
    ) -> Result<Vec<Version>, String> {
        let mut out = Vec::new();
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let r = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_delimiter(delimiter.map(str::to_owned))
                .set_key_marker(key_marker)
                .set_version_id_marker(version_marker)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "listing the versions of s3://{}/{prefix}: {}",
                        self.bucket,
                        DisplayErrorContext(&e)
                    )
                })?;
            let mut past = false;
            for v in r.versions() {
                let (Some(key), Some(id)) = (v.key(), v.version_id()) else {
                    continue;
                };
                if only.is_some_and(|k| k != key) {
                    past = true;
                    continue;
                }
                let modified_ms = v.last_modified().map_or(0, |d| {
                    d.secs() * 1_000 + i64::from(d.subsec_nanos() / 1_000_000)
                });
                out.push(Version {
                    key: key.to_owned(),
                    id: id.to_owned(),
                    modified_ms,
                });
            }
            if past || r.is_truncated() != Some(true) {
                break;
            }
            key_marker = r.next_key_marker().map(str::to_owned);
            version_marker = r.next_version_id_marker().map(str::to_owned);
        }
        Ok(out)
    }

    /// Returns the Object Lock retention of one version of a full object name (`None`: it
    /// has none).
    pub async fn retention(&self, key: &str, version: &str) -> Result<Option<Retention>, String> {
        let r = self
            .client
            .get_object_retention()
            .bucket(&self.bucket)
            .key(key)
            .version_id(version)
            .send()
            .await
            .map_err(|e| format!("reading its retention: {}", DisplayErrorContext(&e)))?;
        Ok(r.retention().map(|ret| Retention {
            compliance: ret.mode() == Some(&ObjectLockRetentionMode::Compliance),
            until_s: ret.retain_until_date().map(|d| d.secs()),
        }))
    }

    /// Returns the current version of `key` (under the log prefix) and its ETag, if any.
    pub async fn current(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, String> {
        let key = format!("{}{key}", self.log_prefix);
        let r = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await;
        let obj = match r {
            Ok(o) => o,
            Err(e) if status(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(format!("reading {key}: {}", DisplayErrorContext(&e))),
        };
        let etag = obj.e_tag().unwrap_or_default().to_owned();
        let bytes = obj
            .body
            .collect()
            .await
            .map_err(|e| format!("reading {key}: {e}"))?
            .into_bytes()
            .to_vec();
        Ok(Some((bytes, etag)))
    }

    /// Returns the bytes of one version of a full object name.
    pub async fn get(&self, full_key: &str, version: Option<&str>) -> Result<Vec<u8>, String> {
        let obj = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(full_key)
            .set_version_id(version.map(str::to_owned))
            .send()
            .await
            .map_err(|e| format!("reading {full_key}: {}", DisplayErrorContext(&e)))?;
        Ok(obj
            .body
            .collect()
            .await
            .map_err(|e| format!("reading {full_key}: {e}"))?
            .into_bytes()
            .to_vec())
    }

    /// Writes `bytes` at `key` once: a key that exists already must hold the same bytes in its
    /// oldest version (a retry after a lost confirmation), anything else is a conflict.
    pub async fn put_once(&self, key: &str, bytes: Vec<u8>) -> Result<(), PutOnceError> {
        match self.put(key, bytes.clone(), Condition::Absent).await {
            Ok(Put::Written(_)) => Ok(()),
            Ok(Put::PreconditionFailed) => match self.oldest(key).await {
                Ok(Some((have, _))) if have == bytes => Ok(()),
                Ok(Some(_)) => Err(PutOnceError::Conflict(format!(
                    "s3://{}/{}{key} already holds other bytes than this log's: another log writes under this origin, or the object was planted",
                    self.bucket, self.log_prefix
                ))),
                // Refused, but nothing there: the latest version is a delete marker over
                // nothing we wrote, or the server changed its mind; try again later.
                Ok(None) => Err(PutOnceError::Failed(format!(
                    "{}{key}: the conditional write was refused but the key holds no version",
                    self.log_prefix
                ))),
                Err(e) => Err(PutOnceError::Failed(e)),
            },
            Err(e) => Err(PutOnceError::Failed(e)),
        }
    }
}

/// Why [`S3Bucket::put_once`] did not write.
#[derive(Debug)]
pub enum PutOnceError {
    /// S3 could not be reached or refused otherwise: try again.
    Failed(String),
    /// The key holds other bytes: never retried.
    Conflict(String),
}

impl std::fmt::Display for PutOnceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PutOnceError::Failed(e) => write!(f, "{e}"),
            PutOnceError::Conflict(e) => write!(f, "conflict: {e}"),
        }
    }
}

/// Returns the HTTP status S3 answered with, if it answered.
fn status<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}
