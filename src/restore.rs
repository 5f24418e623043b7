//! `govledgerd restore`: a data dir rebuilt from the WORM mirror in the config's bucket, then
//! checked against every checkpoint the bucket holds.
//!
//! 1. `import` from the bucket ([`S3Source`]: bundles and tiles in their oldest version, the
//!    newest version of `checkpoint`), verifying every hash and the checkpoint's signature.
//! 2. The newest anchored checkpoint (`<size>.checkpoint`) and every version of `checkpoint`
//!    must be consistent with the rebuilt tree: at its size the rebuilt tree has its root. An
//!    anchored checkpoint beyond the rebuilt size means anchored entries are missing.
//! 3. The mirror's cursor is set to what the bucket holds, so the restored server continues the
//!    mirror instead of reading every object back.
//!
//! Exit 0 restored, 1 the sources do not verify, 2 usage or I/O (`RestoreError`).

use std::path::Path;

use anyhow::Context;
use ledger_format::checkpoint::SignedCheckpoint;
use ledger_format::note::SignerKey;
use ledger_format::tree::CompactRange;
use ledger_format::TreeSize;

use crate::archive::ImportError;
use crate::config::Config;
use crate::store::{SledStore, Store, StoreHashes};

/// What a restore did, for its report.
#[derive(Clone, Debug)]
pub struct Restored {
    /// The restored tree size (the bucket's, then the topic's).
    pub size: u64,
    /// What the bucket held.
    pub imported: crate::archive::Imported,
    /// The write-ahead topic read: (topic, records read, entries applied beyond the bucket).
    pub from_topic: Option<(String, u64, u64)>,
    /// Where the entries came from.
    pub source: String,
    /// Checkpoints checked against the rebuilt tree: (where, size).
    pub consistent: Vec<(String, u64)>,
    /// Findings: keys with more than one version, checkpoints signed by another key.
    pub notes: Vec<String>,
}

/// Returns an error unless `dir` is empty but for the log key and its verifier key.
pub fn ensure_empty(cfg: &Config) -> Result<(), ImportError> {
    let dir = &cfg.data_dir;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(()); // absent: created by the import
    };
    let key = cfg.key_path();
    for e in entries {
        let e = e.map_err(anyhow::Error::from)?;
        let name = e.file_name();
        let keep = e.path() == key || name == "log.pub" || name == "log.key";
        if !keep {
            return Err(ImportError::Io(anyhow::anyhow!(
                "the data dir {} is not empty (it holds {}): restore builds a new data dir and never replaces one",
                dir.display(),
                name.to_string_lossy()
            )));
        }
    }
    Ok(())
}

/// Checks that the checkpoint `note` (from `place`) is consistent with the tree in `store` of
/// `size` entries: its size is at most `size` and the tree has its root there.
/// A checkpoint that does not verify with `key` (written by someone else, or signed by a key
/// the log rotated away from) is not checked: `Ok(None)`, and the caller notes it.
fn consistent(
    store: &dyn Store,
    size: u64,
    key: &SignerKey,
    place: &str,
    note: &[u8],
) -> Result<Option<u64>, ImportError> {
    let Ok((opened, _)) = SignedCheckpoint::open(note, &key.verifier(), &[]) else {
        return Ok(None);
    };
    let signed = opened;
    let at = signed.checkpoint.size.0;
    if at > size {
        return Err(ImportError::Invalid(format!(
            "{place} is a checkpoint of size {at}, but the bucket holds only {size} entries: {} anchored entries are missing",
            at - size
        )));
    }
    let root = CompactRange::from_reader(TreeSize(at), &StoreHashes::new(store))
        .map_err(|e| ImportError::Invalid(format!("reading the rebuilt tree: {e}")))?
        .root();
    if root != signed.checkpoint.root {
        return Err(ImportError::Invalid(format!(
            "{place} (size {at}) has root {}, but the rebuilt tree has {root} at that size: the log forked",
            signed.checkpoint.root
        )));
    }
    Ok(Some(at))
}

#[cfg(feature = "s3")]
pub use s3::{restore, S3Source};

#[cfg(feature = "s3")]
mod s3 {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::anchor::s3::S3Bucket;
    use crate::archive::Source;

    /// The WORM mirror in a bucket, read as an import source.
    pub struct S3Source {
        rt: tokio::runtime::Runtime,
        pub bucket: Arc<S3Bucket>,
        notes: Mutex<Vec<String>>,
    }

    impl S3Source {
        /// The mirror of `origin` in the bucket of `cfg`.
        pub fn open(cfg: &crate::config::S3Config, origin: &str) -> Result<S3Source, ImportError> {
            Ok(S3Source {
                rt: tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(anyhow::Error::from)?,
                bucket: Arc::new(S3Bucket::new(cfg, origin)?),
                notes: Mutex::default(),
            })
        }

        fn io(e: String) -> ImportError {
            ImportError::Io(anyhow::anyhow!(e))
        }

        /// Returns every checkpoint a reader could have been handed from the bucket: the
        /// newest anchored one and every version of the mirror's `checkpoint`, as
        /// (where, note bytes).
        pub fn checkpoints(&self) -> Result<Vec<(String, Vec<u8>)>, ImportError> {
            self.rt.block_on(async {
                let b = &self.bucket;
                let mut out = Vec::new();
                // Anchored checkpoints are named by their zero-padded size: the last name is
                // the newest.
                let mut newest: Option<String> = None;
                let mut token = None;
                loop {
                    let r = b
                        .client
                        .list_objects_v2()
                        .bucket(&b.bucket)
                        .prefix(&b.log_prefix)
                        .delimiter("/")
                        .set_continuation_token(token)
                        .send()
                        .await
                        .map_err(|e| {
                            Self::io(format!(
                                "listing s3://{}/{}: {}",
                                b.bucket,
                                b.log_prefix,
                                aws_sdk_s3::error::DisplayErrorContext(&e)
                            ))
                        })?;
                    for o in r.contents() {
                        if let Some(k) = o.key() {
                            if ledger_format::anchor::size_of_name(k).is_some() {
                                newest = Some(k.to_owned());
                            }
                        }
                    }
                    token = r.next_continuation_token().map(str::to_owned);
                    if token.is_none() {
                        break;
                    }
                }
                if let Some(full) = newest {
                    let name = full[b.log_prefix.len()..].to_owned();
                    if let Some((bytes, _)) = b.oldest(&name).await.map_err(Self::io)? {
                        out.push((format!("s3://{}/{full}", b.bucket), bytes));
                    }
                }
                for (id, bytes) in self.versions("checkpoint").await? {
                    out.push((
                        format!(
                            "s3://{}/{}checkpoint?versionId={id}",
                            b.bucket, b.log_prefix
                        ),
                        bytes,
                    ));
                }
                Ok(out)
            })
        }

        /// Every version of `name` (under the log prefix): (version id, bytes), newest first.
        async fn versions(&self, name: &str) -> Result<Vec<(String, Vec<u8>)>, ImportError> {
            let b = &self.bucket;
            let key = format!("{}{name}", b.log_prefix);
            let mut ids = Vec::new();
            let (mut key_marker, mut version_marker) = (None, None);
            loop {
                let r = b
                    .client
                    .list_object_versions()
                    .bucket(&b.bucket)
                    .prefix(&key)
                    .set_key_marker(key_marker)
                    .set_version_id_marker(version_marker)
                    .send()
                    .await
                    .map_err(|e| {
                        Self::io(format!(
                            "listing the versions of {key}: {}",
                            aws_sdk_s3::error::DisplayErrorContext(&e)
                        ))
                    })?;
                ids.extend(
                    r.versions()
                        .iter()
                        .filter(|v| v.key() == Some(key.as_str()))
                        .filter_map(|v| v.version_id().map(str::to_owned)),
                );
                if r.is_truncated() != Some(true) {
                    break;
                }
                key_marker = r.next_key_marker().map(str::to_owned);
                version_marker = r.next_version_id_marker().map(str::to_owned);
            }
            let mut out = Vec::new();
            for id in ids {
                let bytes = b.get(&key, Some(&id)).await.map_err(Self::io)?;
                out.push((id, bytes));
            }
            Ok(out)
        }

        /// Returns true when the bucket holds a mirrored checkpoint of this log.
        pub fn has_checkpoint(&self) -> Result<bool, ImportError> {
            self.rt
                .block_on(self.bucket.current("checkpoint"))
                .map(|c| c.is_some())
                .map_err(Self::io)
        }

        /// The ETag of the current `checkpoint` object, for the restored mirror's cursor.
        pub fn checkpoint_etag(&self) -> Result<Option<String>, ImportError> {
            self.rt
                .block_on(self.bucket.current("checkpoint"))
                .map(|c| c.map(|(_, etag)| etag))
                .map_err(Self::io)
        }
    }

    impl Source for S3Source {
        fn describe(&self) -> String {
            format!("s3://{}/{}", self.bucket.bucket, self.bucket.log_prefix)
        }

        fn checkpoint(&self) -> Result<Vec<u8>, ImportError> {
            match self.rt.block_on(self.bucket.current("checkpoint")) {
                Ok(Some((bytes, _))) => Ok(bytes),
                Ok(None) => Err(ImportError::Invalid(format!(
                    "{}checkpoint does not exist: the bucket holds no mirrored log of this origin (is `tiles = true` set in [anchors.s3]?)",
                    self.describe()
                ))),
                Err(e) => Err(Self::io(e)),
            }
        }

        fn object(&self, path: &str) -> Result<Option<Vec<u8>>, ImportError> {
            let found = self
                .rt
                .block_on(self.bucket.oldest(path))
                .map_err(Self::io)?;
            Ok(found.map(|(bytes, versions)| {
                if versions > 1 {
                    self.notes.lock().expect("lock poisoned").push(format!(
                        "{}{path} has {versions} versions: someone wrote over it; the oldest, the mirrored one, was read",
                        self.describe()
                    ));
                }
                bytes
            }))
        }

        fn notes(&self) -> Vec<String> {
            self.notes.lock().expect("lock poisoned").clone()
        }
    }

    /// Restores the data dir of `cfg` from its bucket (see the module docs).
    pub fn restore(cfg: &Config, key: &SignerKey) -> Result<Restored, ImportError> {
        let s3 = cfg.anchors.s3.as_ref().ok_or_else(|| {
            ImportError::Io(anyhow::anyhow!(
                "restore reads the WORM mirror: the config has no [anchors.s3] bucket"
            ))
        })?;
        ensure_empty(cfg)?;
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
        let source = S3Source::open(s3, &cfg.origin)?;
        let db = cfg.data_dir.join("db");
        let mut notes = Vec::new();
        let imported = if source.has_checkpoint()? {
            crate::archive::import(&source, &db, key, cfg.cache_mb)?
        } else {
            notes.push(format!(
                "{} holds no mirrored checkpoint: everything comes from the write-ahead topic",
                crate::archive::Source::describe(&source)
            ));
            crate::archive::Imported {
                size: 0,
                checkpoint: Vec::new(),
                bundles: 0,
                tiles: 0,
            }
        };
        let store = SledStore::open(&db, cfg.cache_mb)?;
        // The write-ahead topic beyond what the bucket holds.
        let mut from_topic = None;
        if let Some(rc) = &cfg.replication {
            let reader = crate::replication::WalReader::new(rc);
            let applied =
                crate::replication::apply_topic(&store, &reader).map_err(|e| match e {
                    crate::replication::ReplayError::Io(m) => ImportError::Io(anyhow::anyhow!(m)),
                    e @ crate::replication::ReplayError::Invalid { .. } => {
                        ImportError::Invalid(e.to_string())
                    }
                })?;
            from_topic = Some((rc.topic.clone(), applied.records, applied.applied));
        } else if imported.size == 0 {
            return Err(ImportError::Invalid(
                "the bucket holds no mirrored log and the config has no [replication] topic: nothing to restore from".into(),
            ));
        }
        let size = store.head()?.map_or(0, |h| h.size);
        let mut consistent_with = Vec::new();
        for (place, note) in source.checkpoints()? {
            match consistent(&store, size, key, &place, &note)? {
                Some(at) => consistent_with.push((place, at)),
                None => notes.push(format!(
                    "{place} is not signed by the log key (another writer, or a retired key): not checked"
                )),
            }
        }
        // The mirror continues from what the bucket holds.
        if let (Some(etag), true) = (source.checkpoint_etag()?, imported.size > 0) {
            let mut writes = vec![(
                crate::anchor::mirror::CURSOR.to_vec(),
                Some(crate::anchor::mirror::cursor_value(imported.size, &etag)),
            )];
            writes.push((
                crate::anchor::confirmed_key(crate::anchor::MIRROR),
                Some(imported.size.to_be_bytes().to_vec()),
            ));
            store.anchor_write(&writes)?;
        }
        drop(store);
        std::fs::write(
            cfg.data_dir.join("log.pub"),
            format!("{}\n", key.verifier()),
        )
        .map_err(anyhow::Error::from)?;
        Ok(Restored {
            size,
            from_topic,
            source: crate::archive::Source::describe(&source),
            notes: [crate::archive::Source::notes(&source), notes].concat(),
            imported,
            consistent: consistent_with,
        })
    }
}

/// Without the `s3` feature there is no bucket to restore from.
#[cfg(not(feature = "s3"))]
pub fn restore(_cfg: &Config, _key: &SignerKey) -> Result<Restored, ImportError> {
    Err(ImportError::Io(anyhow::anyhow!(
        "this govledgerd was built without the `s3` feature: restore reads the WORM mirror in S3"
    )))
}

/// Writes the restore report to stdout.
pub fn report(r: &Restored, dir: &Path) {
    println!("restored {} entries into {}", r.size, dir.display());
    println!(
        "from the bucket: {} entries, {}: {} entry bundles and {} hash tiles verified against its checkpoint of size {}",
        r.imported.size, r.source, r.imported.bundles, r.imported.tiles, r.imported.size
    );
    if let Some((topic, records, applied)) = &r.from_topic {
        println!(
            "from the write-ahead topic {topic}: {applied} entries beyond the bucket ({records} records read, each continuing the tree with the root it names)"
        );
    }
    for (place, size) in &r.consistent {
        println!("consistent: {place} (size {size})");
    }
    for n in &r.notes {
        println!("note: {n}");
    }
}
