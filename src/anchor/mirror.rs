//! The WORM mirror: the whole log, as C2SP tlog-tiles objects, in the S3 bucket with Object
//! Lock (ledger-format SPEC.md §9.1). The bucket alone is then a static tlog-tiles log that any
//! tiles client reads and `govledgerd restore` rebuilds a data dir from.
//!
//! The mirror is an anchor backend (`mirror`): each checkpoint chosen for anchoring gets an
//! outbox record, and publishing it uploads every object that exists at its size but not at
//! the size mirrored before ([`ledger_format::tile::new_objects`]: bundles, then tiles of every
//! level, full and partial), then the checkpoint. So the outbox gives it a durable cursor
//! raised only after S3 confirmed, retries with backoff, and a status in `/v1/anchors`.
//!
//! - Bundles and tiles are written once, with `If-None-Match: *`. A 412 is read back: the same
//!   bytes in the key's oldest version mean a retry after a crash (done); other bytes stop the
//!   mirror for good with an alert (someone else writes under this origin).
//! - `checkpoint` is written last, with `If-Match` on the ETag the mirror wrote before
//!   (`If-None-Match: *` the first time): a compare-and-swap, so its versions are the history
//!   of mirrored checkpoints. A 412 is our own write when a crash lost its confirmation (the
//!   object is one of this log's chosen checkpoints above the cursor): its ETag is adopted.
//!   Anything else stops the mirror with an alert.
//! - The cursor (`m` in the anchoring state: the mirrored size, u64 BE, then the checkpoint
//!   object's ETag) is written after the checkpoint is confirmed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ledger_format::checkpoint::SignedCheckpoint;
use ledger_format::tile::{new_objects, TilePath};
use ledger_format::TreeSize;

use super::s3::{Condition, Put, PutOnceError, S3Bucket};
use super::{Backend, BoxFuture};
use crate::store::Store;

/// The anchoring-state key of the mirror's cursor.
pub const CURSOR: &[u8] = b"m";
/// The anchoring-state key of the size whose checkpoint the mirror is about to write (u64 BE),
/// stored before the conditional write: after a crash, only that checkpoint is taken for ours.
pub const INTENT: &[u8] = b"p";

/// Objects read from the store and uploaded at once.
const PARALLEL: usize = 16;

/// Returns the cursor value: the mirrored size (u64 BE), then the ETag of the checkpoint
/// object the mirror wrote.
pub fn cursor_value(size: u64, etag: &str) -> Vec<u8> {
    let mut v = size.to_be_bytes().to_vec();
    v.extend_from_slice(etag.as_bytes());
    v
}

/// Reads the mirror's cursor: (mirrored size, ETag of the checkpoint object), (0, None) before
/// the first round.
pub fn read_cursor(store: &dyn Store) -> Result<(u64, Option<String>), String> {
    let found = store
        .anchor_scan(CURSOR, b"", 1)
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|(k, _)| k.as_slice() == CURSOR);
    Ok(match found {
        Some((_, v)) if v.len() >= 8 => {
            let size = u64::from_be_bytes(v[..8].try_into().expect("8 bytes"));
            let etag = String::from_utf8_lossy(&v[8..]).into_owned();
            (size, (!etag.is_empty()).then_some(etag))
        }
        _ => (0, None),
    })
}

/// The tile mirror.
pub struct TileMirror {
    bucket: Arc<S3Bucket>,
    store: Arc<dyn Store>,
    /// Set when the bucket holds what this log did not write: the mirror stops until an
    /// operator looks (a restart tries again, and stops again if nothing changed).
    halted: Mutex<Option<String>>,
}

impl TileMirror {
    /// The mirror of the log in `store` to `bucket`.
    pub fn new(bucket: Arc<S3Bucket>, store: Arc<dyn Store>) -> TileMirror {
        TileMirror {
            bucket,
            store,
            halted: Mutex::new(None),
        }
    }

    fn halt(&self, why: String) -> String {
        let why = format!("mirror stopped: {why}");
        tracing::error!("{why}");
        *self.halted.lock().expect("lock poisoned") = Some(why.clone());
        why
    }

    /// Uploads every object between the cursor and `size`, then the checkpoint.
    async fn mirror(&self, size: u64, note: &str) -> Result<(), String> {
        if let Some(why) = self.halted() {
            return Err(why);
        }
        let (mirrored, etag) = read_cursor(self.store.as_ref())?;
        if mirrored >= size {
            return Ok(());
        }
        let objects = new_objects(TreeSize(mirrored), TreeSize(size));
        for batch in objects.chunks(PARALLEL) {
            self.upload(batch.to_vec()).await?;
        }
        // A crash after the write below leaves our checkpoint of `size` there and the cursor
        // behind: the intent says which checkpoint that is, and nothing else is adopted.
        let intent = self.intent()?;
        self.store
            .anchor_write(&[(INTENT.to_vec(), Some(size.to_be_bytes().to_vec()))])
            .map_err(|e| e.to_string())?;
        let etag = self
            .put_checkpoint(mirrored, intent, size, note, etag)
            .await?;
        self.store
            .anchor_write(&[(CURSOR.to_vec(), Some(cursor_value(size, &etag)))])
            .map_err(|e| e.to_string())
    }

    /// Reads `batch` from the store and writes each object once, concurrently.
    async fn upload(&self, batch: Vec<TilePath>) -> Result<(), String> {
        let store = self.store.clone();
        let objects = tokio::task::spawn_blocking(move || {
            batch
                .iter()
                .map(|o| Ok((o.path(), crate::archive::object_bytes(store.as_ref(), o)?)))
                .collect::<anyhow::Result<Vec<(String, Vec<u8>)>>>()
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("reading the log: {e:#}"))?;
        let mut puts = tokio::task::JoinSet::new();
        for (path, bytes) in objects {
            let bucket = self.bucket.clone();
            puts.spawn(async move { bucket.put_once(&path, bytes).await });
        }
        let mut failure = None;
        while let Some(r) = puts.join_next().await {
            match r.map_err(|e| PutOnceError::Failed(e.to_string())) {
                Ok(Ok(())) => {}
                Ok(Err(PutOnceError::Conflict(e))) | Err(PutOnceError::Conflict(e)) => {
                    return Err(self.halt(e));
                }
                Ok(Err(PutOnceError::Failed(e))) | Err(PutOnceError::Failed(e)) => {
                    failure.get_or_insert(e);
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Returns the size of the last checkpoint write the mirror began, if any.
    fn intent(&self) -> Result<Option<u64>, String> {
        Ok(self
            .store
            .anchor_scan(INTENT, b"", 1)
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|(k, v)| k.as_slice() == INTENT && v.len() == 8)
            .map(|(_, v)| u64::from_be_bytes(v[..8].try_into().expect("8 bytes"))))
    }

    /// Writes the checkpoint of `size` over the one the cursor names; returns its new ETag.
    /// `intent` is the size of an earlier write that may have happened without its cursor.
    async fn put_checkpoint(
        &self,
        mirrored: u64,
        intent: Option<u64>,
        size: u64,
        note: &str,
        mut etag: Option<String>,
    ) -> Result<String, String> {
        // At most one adoption of our own unconfirmed write, then the write itself.
        for _ in 0..2 {
            let condition = match &etag {
                Some(e) => Condition::Matches(e.clone()),
                None => Condition::Absent,
            };
            match self
                .bucket
                .put("checkpoint", note.as_bytes().to_vec(), condition)
                .await?
            {
                Put::Written(e) => return Ok(e),
                Put::PreconditionFailed => {}
            }
            let Some((bytes, current)) = self.bucket.current("checkpoint").await? else {
                // A delete marker over the checkpoint: someone else wrote there.
                return Err(self.halt(format!(
                    "s3://{}/{}checkpoint has no current version (a delete marker?) although the mirror wrote it: someone else writes under this origin",
                    self.bucket.bucket, self.bucket.log_prefix
                )));
            };
            let ours = match intent {
                Some(i) if i > mirrored && i <= size => self.own_checkpoint(&bytes, i)?,
                _ => None,
            };
            match ours {
                Some(s) if s == size => return Ok(current),
                Some(_) => etag = Some(current),
                None => {
                    return Err(self.halt(format!(
                        "s3://{}/{}checkpoint was changed by someone else (its ETag is not the one this log wrote): another log writes under this origin",
                        self.bucket.bucket, self.bucket.log_prefix
                    )))
                }
            }
        }
        Err("the checkpoint object keeps changing; retrying".into())
    }

    /// Returns `s` when `bytes` are this log's chosen checkpoint of size `s`: the write the
    /// intent names, whose confirmation a crash lost.
    fn own_checkpoint(&self, bytes: &[u8], s: u64) -> Result<Option<u64>, String> {
        match SignedCheckpoint::parse(bytes) {
            Ok(signed) if signed.checkpoint.size.0 == s => {}
            _ => return Ok(None),
        }
        let mut key = b"c".to_vec();
        key.extend_from_slice(&s.to_be_bytes());
        let stored = self
            .store
            .anchor_scan(&key, b"", 1)
            .map_err(|e| e.to_string())?;
        Ok(stored
            .first()
            .filter(|(_, v)| v.as_slice() == bytes)
            .map(|_| s))
    }
}

impl Backend for TileMirror {
    fn name(&self) -> &'static str {
        "mirror"
    }

    fn publish<'a>(&'a self, size: u64, checkpoint: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.mirror(size, checkpoint))
    }

    fn publish_timeout(&self) -> Duration {
        // The first round of a large log uploads all of it; a timeout only delays it (every
        // write is idempotent), so allow it long.
        Duration::from_secs(3600)
    }

    fn halted(&self) -> Option<String> {
        self.halted.lock().expect("lock poisoned").clone()
    }
}
