//! `govledgerd restore`: a data dir rebuilt from the WORM mirror in the config's bucket, then
//! checked against the checkpoints the bucket holds.
//!
//! 1. `import` from the bucket ([`S3Source`]: bundles and tiles in their oldest version, the
//!    largest of the 64 newest `checkpoint` versions that verify with the log key), verifying
//!    every hash and the checkpoint's signature.
//! 2. The newest anchored checkpoint (`<size>.checkpoint`) and each of those 64 `checkpoint`
//!    versions must be consistent with the rebuilt tree: at its size the rebuilt tree has its
//!    root. An anchored checkpoint beyond the rebuilt size means anchored entries are missing.
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
use crate::store::{LogStore, SledStore, Store, StoreHashes};

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
pub use s3::{adopt_mirror, restore, S3Source};

#[cfg(feature = "s3")]
mod s3 {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::anchor::s3::S3Bucket;
    use crate::archive::Source;

    /// Unverifiable objects (junk, another key) read before giving up on finding a
    /// checkpoint that verifies.
    const MAX_UNVERIFIED: usize = 16;
    /// `checkpoint` versions, newest first, checked for consistency with the restored tree.
    const CHECKED_VERSIONS: usize = 64;

    /// The WORM mirror in a bucket, read as an import source: tiles and bundles in their
    /// oldest version, and as the checkpoint the largest of the `CHECKED_VERSIONS` (64) newest
    /// `checkpoint` versions that verify with the log key (versions that do not verify are
    /// reported, never used).
    pub struct S3Source {
        rt: tokio::runtime::Runtime,
        pub bucket: Arc<S3Bucket>,
        key: ledger_format::note::VerifierKey,
        notes: Mutex<Vec<String>>,
    }

    impl S3Source {
        /// The mirror of `origin` in the bucket of `cfg`, signed by `key`.
        pub fn open(
            cfg: &crate::config::S3Config,
            origin: &str,
            key: &ledger_format::note::VerifierKey,
        ) -> Result<S3Source, ImportError> {
            Ok(S3Source {
                rt: tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(anyhow::Error::from)?,
                bucket: Arc::new(crate::anchor::s3::bucket(cfg, origin)?),
                key: key.clone(),
                notes: Mutex::default(),
            })
        }

        fn io(e: String) -> ImportError {
            ImportError::Io(anyhow::anyhow!(e))
        }

        fn note(&self, n: String) {
            self.notes.lock().expect("lock poisoned").push(n);
        }

        fn verifies(&self, note: &[u8]) -> Option<u64> {
            SignedCheckpoint::open(note, &self.key, &[])
                .ok()
                .map(|(s, _)| s.checkpoint.size.0)
        }

        /// The newest versions of `checkpoint` that verify with the log key, newest first, at
        /// most `limit`: (version id, bytes). Versions that do not verify are reported.
        fn checkpoint_versions(&self, limit: usize) -> Result<Vec<(String, Vec<u8>)>, ImportError> {
            self.rt.block_on(async {
                let b = &self.bucket;
                let key = format!("{}checkpoint", b.log_prefix);
                let mut out = Vec::new();
                let mut unverified = 0;
                for id in b.version_ids(&key).await.map_err(Self::io)? {
                    let bytes = b.get(&key, Some(&id)).await.map_err(Self::io)?;
                    if self.verifies(&bytes).is_none() {
                        self.note(format!(
                            "s3://{}/{key}?versionId={id} does not verify with the log key: not used",
                            b.bucket
                        ));
                        unverified += 1;
                        if unverified >= MAX_UNVERIFIED && out.is_empty() {
                            return Err(ImportError::Invalid(format!(
                                "the {MAX_UNVERIFIED} newest versions of s3://{}/{key} do not verify with the log key",
                                b.bucket
                            )));
                        }
                        continue;
                    }
                    out.push((id, bytes));
                    if out.len() >= limit {
                        break;
                    }
                }
                Ok(out)
            })
        }

        /// The newest anchored checkpoint (`<size>.checkpoint`, oldest version) that verifies
        /// with the log key: (where, bytes). Planted names that do not verify are reported and
        /// skipped, so they cannot hide the real newest one; names under a delete marker are
        /// listed too (versions, not objects).
        pub fn newest_anchored(&self) -> Result<Option<(String, Vec<u8>)>, ImportError> {
            self.rt.block_on(async {
                let b = &self.bucket;
                let mut names = std::collections::BTreeSet::new();
                for v in b.versions_under(&b.log_prefix).await.map_err(Self::io)? {
                    if let Some(size) = ledger_format::anchor::size_of_name(&v.key) {
                        names.insert((size, v.key));
                    }
                }
                for (i, (_, full)) in names.iter().rev().enumerate() {
                    if i >= MAX_UNVERIFIED {
                        return Err(ImportError::Invalid(format!(
                            "the {MAX_UNVERIFIED} largest anchored checkpoint names in s3://{}/{} do not verify with the log key",
                            b.bucket, b.log_prefix
                        )));
                    }
                    let name = &full[b.log_prefix.len()..];
                    let Some((bytes, _)) = b.oldest(name).await.map_err(Self::io)? else {
                        continue;
                    };
                    let place = format!("s3://{}/{full}", b.bucket);
                    if self.verifies(&bytes).is_some() {
                        return Ok(Some((place, bytes)));
                    }
                    self.note(format!("{place} does not verify with the log key: not used"));
                }
                Ok(None)
            })
        }

        /// The ETag of the current `checkpoint` object, for the mirror's cursor.
        pub fn checkpoint_etag(&self) -> Result<Option<String>, ImportError> {
            self.rt
                .block_on(self.bucket.current("checkpoint"))
                .map(|c| c.map(|(_, etag)| etag))
                .map_err(Self::io)
        }

        /// Returns true when the bucket holds a mirrored checkpoint of this log that verifies.
        pub fn has_checkpoint(&self) -> Result<bool, ImportError> {
            Ok(!self.checkpoint_versions(1)?.is_empty())
        }
    }

    impl Source for S3Source {
        fn describe(&self) -> String {
            format!("s3://{}/{}", self.bucket.bucket, self.bucket.log_prefix)
        }

        fn checkpoint(&self) -> Result<Vec<u8>, ImportError> {
            // The largest of the newest versions that verify: a replayed older checkpoint
            // written as the newest version cannot shrink what is restored.
            let versions = self.checkpoint_versions(CHECKED_VERSIONS)?;
            let best = versions
                .iter()
                .enumerate()
                .max_by_key(|(i, (_, b))| (self.verifies(b).unwrap_or(0), usize::MAX - i));
            if let Some((i, (id, _))) = best {
                if i > 0 {
                    self.note(format!(
                        "{}checkpoint: the newest version is smaller than version {id}, which is restored (an older checkpoint was written over the mirrored one)",
                        self.describe()
                    ));
                }
            }
            match best.map(|(_, v)| v.1.clone()) {
                Some(bytes) => Ok(bytes),
                None => Err(ImportError::Invalid(format!(
                    "{}checkpoint has no version that verifies with the log key: the bucket holds no mirrored log of this origin (is `tiles = true` set in [anchors.s3]?)",
                    self.describe()
                ))),
            }
        }

        fn object(&self, path: &str) -> Result<Option<Vec<u8>>, ImportError> {
            let found = self
                .rt
                .block_on(self.bucket.oldest(path))
                .map_err(Self::io)?;
            Ok(found.map(|(bytes, versions)| {
                if versions > 1 {
                    self.note(format!(
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

    /// Points the mirror's cursor of the store at `db` at what the bucket holds (the imported
    /// size and the `checkpoint` ETag), so the server continues the mirror instead of reading
    /// every object back, and never mistakes the bucket's checkpoint for another writer's.
    pub fn adopt_mirror(
        store: &dyn Store,
        size: u64,
        source: &S3Source,
    ) -> Result<(), ImportError> {
        if size == 0 {
            return Ok(());
        }
        if let Some(etag) = source.checkpoint_etag()? {
            store.anchor_write(&[
                (
                    crate::anchor::mirror::CURSOR.to_vec(),
                    Some(crate::anchor::mirror::cursor_value(size, &etag)),
                ),
                (
                    crate::anchor::confirmed_key(crate::anchor::MIRROR),
                    Some(size.to_be_bytes().to_vec()),
                ),
            ])?;
        }
        Ok(())
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
        let source = S3Source::open(s3, &cfg.origin, &key.verifier())?;
        let db = cfg.data_dir.join("db");
        // Everything is built and checked beside the data dir's store, and moved into place
        // only when it all verified: a failed restore leaves nothing a server would open.
        let building = db.with_extension("restoring");
        let result = build(cfg, key, &source, &building);
        match result {
            Ok(r) => {
                std::fs::rename(&building, &db).map_err(anyhow::Error::from)?;
                std::fs::write(
                    cfg.data_dir.join("log.pub"),
                    format!("{}\n", key.verifier()),
                )
                .map_err(anyhow::Error::from)?;
                Ok(r)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&building);
                Err(e)
            }
        }
    }

    fn build(
        cfg: &Config,
        key: &SignerKey,
        source: &S3Source,
        building: &Path,
    ) -> Result<Restored, ImportError> {
        let mut notes = Vec::new();
        let imported = if source.has_checkpoint()? {
            crate::archive::import_into(source, building, key, cfg.cache_mb)?
        } else {
            notes.push(format!(
                "{} holds no mirrored checkpoint: everything comes from the write-ahead topic",
                source.describe()
            ));
            if building.exists() {
                std::fs::remove_dir_all(building).map_err(anyhow::Error::from)?;
            }
            crate::archive::Imported {
                size: 0,
                checkpoint: Vec::new(),
                bundles: 0,
                tiles: 0,
            }
        };
        let store = SledStore::open(building, cfg.cache_mb)?;
        // The write-ahead topic beyond what the bucket holds.
        let mut from_topic = None;
        if let Some(rc) = &cfg.replication {
            let reader = crate::replication::WalReader::new(rc, &cfg.origin);
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
        // The result must extend the newest anchored checkpoint and the newest mirrored ones.
        let mut consistent_with = Vec::new();
        let mut checks: Vec<(String, Vec<u8>)> = source.newest_anchored()?.into_iter().collect();
        let bucket = &source.bucket;
        for (id, bytes) in source.checkpoint_versions(CHECKED_VERSIONS)? {
            checks.push((
                format!(
                    "s3://{}/{}checkpoint?versionId={id}",
                    bucket.bucket, bucket.log_prefix
                ),
                bytes,
            ));
        }
        for (place, note) in checks {
            match consistent(&store, size, key, &place, &note)? {
                Some(at) => consistent_with.push((place, at)),
                None => notes.push(format!("{place} is not signed by the log key: not checked")),
            }
        }
        adopt_mirror(&store, imported.size, source)?;
        drop(store);
        Ok(Restored {
            size,
            from_topic,
            source: source.describe(),
            notes: [source.notes(), notes].concat(),
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
