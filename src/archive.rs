//! The archive (ARCHITECTURE.md): `export` writes the whole log as static C2SP tlog-tiles files
//! (checkpoint, hash tiles, entry bundles) that any tlog-tiles client can read; `import`
//! rebuilds a data dir from such a log after verifying every hash against the signed
//! checkpoint. Seven-year retention therefore never depends on sled's on-disk format.
//!
//! One format, one reader: an export directory and the WORM mirror in S3 hold the same objects
//! at the same paths, and `import` reads either through a [`Source`] (`govledgerd restore` is
//! `import` from the bucket, then the checks of `crate::restore`).
//!
//! ```text
//! DIR/checkpoint                 the latest signed checkpoint
//! DIR/tile/<L>/<N>[.p/<W>]       every hash tile that exists at the checkpoint's size
//! DIR/tile/entries/<N>[.p/<W>]   every entry bundle
//! DIR/log.pub                    the log's verifier key (a convenience, not part of C2SP)
//! ```

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{ensure, Context, Result};
use ledger_format::checkpoint::SignedCheckpoint;
use ledger_format::leaf::Leaf;
use ledger_format::note::SignerKey;
use ledger_format::tile::{
    decode_bundle, decode_tile, encode_bundle, inventory, new_objects, BundleId, TilePath,
    TILE_WIDTH,
};
use ledger_format::tree::CompactRange;
use ledger_format::TreeSize;

use crate::store::{Group, LogStore, NewEntry, SledStore, Store};
use crate::tree_writer::TreeWriter;

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename), creating parents.
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp-govledger");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Returns the bytes of one tlog-tiles object of the log in `store`, byte for byte what the
/// server serves at its path: an entry bundle, or a hash tile at the width its path names.
pub fn object_bytes(store: &dyn LogStore, object: &TilePath) -> Result<Vec<u8>> {
    match object {
        TilePath::Entries(b) => {
            let (start, end) = b.leaf_range();
            Ok(encode_bundle(
                store.entries(start, end)?.iter().map(Vec::as_slice),
            )?)
        }
        TilePath::Tile(t) => {
            let stored = store
                .tile(t.level, t.index)?
                .with_context(|| format!("tile {} is missing from the store", t.path()))?;
            ensure!(
                stored.width() >= t.width as usize,
                "tile {} is short in the store",
                t.path()
            );
            Ok(stored.tile_bytes(t.width as usize))
        }
    }
}

/// Exports the log in `store` to `to`. Returns the exported tree size.
pub fn export(store: &dyn LogStore, to: &Path, vkey: Option<&str>) -> Result<u64> {
    let head = store.head()?.context("the data dir holds no log")?;
    let note = head.checkpoint.context("no signed checkpoint is stored")?;
    let cp = SignedCheckpoint::parse(note.as_bytes())?.checkpoint;
    let size = cp.size;
    if head.size > size.0 {
        eprintln!(
            "export: warning: the last {} entries come after the last stored checkpoint (size {}) and are not exported; give the log key (log.key or GOVLEDGER_LOG_KEY) or start govledgerd once, which signs them, and export again",
            head.size - size.0,
            size.0
        );
    }
    let objects = new_objects(TreeSize(0), size);
    for (i, o) in objects.iter().enumerate() {
        write_file(&to.join(o.path()), &object_bytes(store, o)?)?;
        if (i + 1) % 4096 == 0 {
            eprintln!("export: {} of {} objects", i + 1, objects.len());
        }
    }
    if let Some(v) = vkey {
        write_file(&to.join("log.pub"), format!("{v}\n").as_bytes())?;
    }
    // The checkpoint last: a directory with a checkpoint is complete up to its size.
    write_file(&to.join("checkpoint"), note.as_bytes())?;
    eprintln!(
        "export: {} entries and checkpoint written to {}",
        size.0,
        to.display()
    );
    Ok(size.0)
}

/// Why an import failed: the source could not be read, or what it holds does not verify.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Reading the source or writing the new data dir failed (I/O, network, permissions).
    #[error("{0:#}")]
    Io(anyhow::Error),
    /// The source was read, but its objects do not make the log its checkpoint signs.
    #[error("{0}")]
    Invalid(String),
}

impl From<anyhow::Error> for ImportError {
    fn from(e: anyhow::Error) -> ImportError {
        ImportError::Io(e)
    }
}

impl From<crate::store::StoreError> for ImportError {
    fn from(e: crate::store::StoreError) -> ImportError {
        ImportError::Io(e.into())
    }
}

/// A tlog-tiles log to import: an export directory, or the WORM mirror's bucket.
pub trait Source {
    /// Where it is, for messages.
    fn describe(&self) -> String;
    /// The newest checkpoint (signed note bytes).
    fn checkpoint(&self) -> Result<Vec<u8>, ImportError>;
    /// The bytes of the bundle or tile at `path` (`tile/...`), `None` when absent. Where the
    /// source keeps versions, the oldest: the one written first and retained.
    fn object(&self, path: &str) -> Result<Option<Vec<u8>>, ImportError>;
    /// What the source noticed while it was read (keys written over, say), for the report.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// An export directory.
pub struct DirSource(pub std::path::PathBuf);

impl Source for DirSource {
    fn describe(&self) -> String {
        self.0.display().to_string()
    }

    fn checkpoint(&self) -> Result<Vec<u8>, ImportError> {
        let path = self.0.join("checkpoint");
        std::fs::read(&path)
            .with_context(|| format!("reading {}", path.display()))
            .map_err(ImportError::Io)
    }

    fn object(&self, path: &str) -> Result<Option<Vec<u8>>, ImportError> {
        let file = self.0.join(path);
        match std::fs::read(&file) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ImportError::Io(
                anyhow::Error::from(e).context(format!("reading {}", file.display())),
            )),
        }
    }
}

/// What an import rebuilt.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The imported tree size (the checkpoint's).
    pub size: u64,
    /// The checkpoint the log was rebuilt to (note bytes).
    pub checkpoint: Vec<u8>,
    /// Objects read: entry bundles and hash tiles.
    pub bundles: u64,
    pub tiles: u64,
}

/// Reads the object at `path`, which the checkpoint of `size` needs.
fn need(source: &dyn Source, path: &str, size: TreeSize) -> Result<Vec<u8>, ImportError> {
    source.object(path)?.ok_or_else(|| {
        ImportError::Invalid(format!(
            "{path} is missing from {}: the checkpoint of size {size} needs it",
            source.describe()
        ))
    })
}

/// Rebuilds a store in `db_dir` (which must not exist) from the log in `source`, verifying
/// the checkpoint signature with `key`, every entry envelope, every tile against the
/// recomputed tree, and the root against the checkpoint.
pub fn import(
    source: &dyn Source,
    db_dir: &Path,
    key: &SignerKey,
    cache_mb: u64,
) -> Result<Imported, ImportError> {
    if db_dir.exists() {
        return Err(ImportError::Io(anyhow::anyhow!(
            "{} exists; import needs an empty data dir",
            db_dir.display()
        )));
    }
    // Build in a side directory and move it into place only when everything verified.
    let building = db_dir.with_extension("importing");
    let imported = import_into(source, &building, key, cache_mb)?;
    std::fs::rename(&building, db_dir).map_err(anyhow::Error::from)?;
    Ok(imported)
}

/// [`import`] into the store at `building` (replaced if it exists), left there: the caller
/// moves it into place once its own checks passed too (restore applies the write-ahead topic
/// first), or removes it.
pub fn import_into(
    source: &dyn Source,
    building: &Path,
    key: &SignerKey,
    cache_mb: u64,
) -> Result<Imported, ImportError> {
    let note = source.checkpoint()?;
    let (signed, _) = SignedCheckpoint::open(&note, &key.verifier(), &[]).map_err(|e| {
        ImportError::Invalid(format!(
            "the checkpoint of {} does not verify with the log key: {e}",
            source.describe()
        ))
    })?;
    let size = signed.checkpoint.size;
    if building.exists() {
        std::fs::remove_dir_all(building).map_err(anyhow::Error::from)?;
    }
    let store: Arc<dyn Store> = Arc::new(SledStore::open(building, cache_mb)?);
    let bundles = rebuild_entries(source, store.as_ref(), size)?;
    let writer_root = ledger_format::tree::CompactRange::from_reader(
        size,
        &crate::store::StoreHashes::new(store.as_ref()),
    )
    .map_err(|e| ImportError::Invalid(format!("reading the rebuilt tree: {e}")))?
    .root();
    if writer_root != signed.checkpoint.root {
        return Err(ImportError::Invalid(format!(
            "the entries of {} hash to root {writer_root} but its checkpoint says {}",
            source.describe(),
            signed.checkpoint.root
        )));
    }
    let mut tiles = 0;
    for t in inventory(size) {
        let path = t.path();
        let bytes = need(source, &path, size)?;
        let theirs =
            decode_tile(&bytes).map_err(|e| ImportError::Invalid(format!("{path}: {e}")))?;
        let stored = store.tile(t.level, t.index)?.context("tile not rebuilt")?;
        if theirs.as_slice() != &stored.levels[0][..t.width as usize] {
            return Err(ImportError::Invalid(format!(
                "{path} of {} differs from the tree rebuilt from the entries",
                source.describe()
            )));
        }
        tiles += 1;
    }
    store.put_checkpoint(&String::from_utf8_lossy(&note))?;
    drop(store);
    Ok(Imported {
        size: size.0,
        checkpoint: note,
        bundles,
        tiles,
    })
}

/// Appends every entry of the bundles of `size` to `store`, checking each envelope and that
/// timestamps never go backwards. Returns the number of bundles read.
fn rebuild_entries(
    source: &dyn Source,
    store: &dyn Store,
    size: TreeSize,
) -> Result<u64, ImportError> {
    let mut writer = TreeWriter::resume(CompactRange::new());
    let mut records: Vec<NewEntry> = Vec::new();
    let mut last_ms = 0u64;
    let bundles = size.0.div_ceil(TILE_WIDTH);
    let invalid = |m: String| ImportError::Invalid(m);
    for n in 0..bundles {
        let b = BundleId::for_size(n, size).expect("n is below the bundle count");
        let path = b.path();
        let bytes = need(source, &path, size)?;
        let leaves = decode_bundle(&bytes).map_err(|e| invalid(format!("{path}: {e}")))?;
        if leaves.len() != b.width as usize {
            return Err(invalid(format!(
                "{path} holds {} entries, want {}",
                leaves.len(),
                b.width
            )));
        }
        for leaf in leaves {
            let index = writer.size();
            let parsed = Leaf::parse(leaf).map_err(|e| invalid(format!("entry {index}: {e}")))?;
            if parsed.logged_at_ms < last_ms {
                return Err(invalid(format!("entry {index}: timestamp goes backwards")));
            }
            last_ms = parsed.logged_at_ms;
            let hash = ledger_format::leaf_hash(leaf);
            writer.append(store, leaf.to_vec(), hash)?;
            records.push(NewEntry {
                index,
                leaf_hash: hash,
                attrs: crate::index::attribute_keys(parsed.kind, &parsed.body),
                submitter: parsed.submitter,
                entry_id: parsed.entry_id,
            });
        }
        if (n + 1) % 64 == 0 || n + 1 == bundles {
            let changes = writer.take_changes();
            store.append(&Group {
                entries: Vec::new(),
                leaves: changes.leaves,
                chunks: changes.chunks,
                size: writer.size(),
                last_ms,
            })?;
            if records.len() >= crate::index::RUN_RECORDS || n + 1 == bundles {
                store.index(
                    &crate::index::runs(&records),
                    &crate::index::postings(&records),
                    writer.size(),
                )?;
                records.clear();
            }
            eprintln!("import: {} of {} entries", writer.size(), size.0);
        }
    }
    if bundles == 0 {
        store.append(&Group::empty(0))?;
    }
    Ok(bundles)
}
