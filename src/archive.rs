//! The archive (ARCHITECTURE.md): `export` writes the whole log as static C2SP tlog-tiles files
//! (checkpoint, hash tiles, entry bundles) that any tlog-tiles client can read; `import`
//! rebuilds a data dir from such a directory after verifying every hash against the signed
//! checkpoint. Seven-year retention therefore never depends on sled's on-disk format.
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

use anyhow::{bail, ensure, Context, Result};
use ledger_format::checkpoint::SignedCheckpoint;
use ledger_format::leaf::Leaf;
use ledger_format::note::SignerKey;
use ledger_format::tile::{
    decode_bundle, decode_tile, encode_bundle, inventory, BundleId, TILE_WIDTH,
};
use ledger_format::tree::CompactRange;
use ledger_format::TreeSize;

use crate::store::{Group, NewEntry, SledStore, Store};
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

/// Exports the log in `store` to `to`. Returns the exported tree size.
pub fn export(store: &dyn Store, to: &Path, vkey: Option<&str>) -> Result<u64> {
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
    let bundles = size.0.div_ceil(TILE_WIDTH);
    for n in 0..bundles {
        let b = BundleId::for_size(n, size).expect("n is below the bundle count");
        let (start, end) = b.leaf_range();
        let bytes = encode_bundle(store.entries(start, end)?.iter().map(Vec::as_slice))?;
        write_file(&to.join(b.path()), &bytes)?;
        if (n + 1) % 1024 == 0 {
            eprintln!("export: {} of {} entries", (n + 1) * TILE_WIDTH, size.0);
        }
    }
    for t in inventory(size) {
        let stored = store
            .tile(t.level, t.index)?
            .with_context(|| format!("tile {} is missing from the store", t.path()))?;
        ensure!(
            stored.width() >= t.width as usize,
            "tile {} is short in the store",
            t.path()
        );
        write_file(&to.join(t.path()), &stored.tile_bytes(t.width as usize))?;
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

/// Rebuilds a store in `db_dir` (which must not exist) from the export in `from`, verifying
/// the checkpoint signature with `key`, every entry envelope, every exported tile against the
/// recomputed tree, and the root against the checkpoint. Returns the imported size.
pub fn import(from: &Path, db_dir: &Path, key: &SignerKey, cache_mb: u64) -> Result<u64> {
    ensure!(
        !db_dir.exists(),
        "{} exists; import needs an empty data dir",
        db_dir.display()
    );
    let note = std::fs::read(from.join("checkpoint"))
        .with_context(|| format!("reading {}/checkpoint", from.display()))?;
    let (signed, _) = SignedCheckpoint::open(&note, &key.verifier(), &[])
        .context("the exported checkpoint does not verify with the log key")?;
    let size = signed.checkpoint.size;
    // Build in a side directory and move it into place only when everything verified.
    let building = db_dir.with_extension("importing");
    if building.exists() {
        std::fs::remove_dir_all(&building)?;
    }
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&building, cache_mb)?);
    let mut writer = TreeWriter::resume(CompactRange::new());
    let mut records: Vec<NewEntry> = Vec::new();
    let mut last_ms = 0u64;
    let bundles = size.0.div_ceil(TILE_WIDTH);
    for n in 0..bundles {
        let b = BundleId::for_size(n, size).expect("n is below the bundle count");
        let path = from.join(b.path());
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let leaves = decode_bundle(&bytes).with_context(|| path.display().to_string())?;
        ensure!(
            leaves.len() == b.width as usize,
            "{} holds {} entries, want {}",
            path.display(),
            leaves.len(),
            b.width
        );
        for leaf in leaves {
            let index = writer.size();
            let parsed = Leaf::parse(leaf).with_context(|| format!("entry {index}"))?;
            ensure!(
                parsed.logged_at_ms >= last_ms,
                "entry {index}: timestamp goes backwards"
            );
            last_ms = parsed.logged_at_ms;
            let hash = ledger_format::leaf_hash(leaf);
            writer.append(store.as_ref(), leaf.to_vec(), hash)?;
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
    if writer.root() != signed.checkpoint.root {
        bail!(
            "the entries hash to root {} but the checkpoint says {}",
            writer.root(),
            signed.checkpoint.root
        );
    }
    for t in inventory(TreeSize(size.0)) {
        let path = from.join(t.path());
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let exported = decode_tile(&bytes).with_context(|| path.display().to_string())?;
        let stored = store.tile(t.level, t.index)?.context("tile not rebuilt")?;
        ensure!(
            exported.as_slice() == &stored.levels[0][..t.width as usize],
            "{} differs from the tree rebuilt from the entries",
            path.display()
        );
    }
    store.put_checkpoint(std::str::from_utf8(&note)?)?;
    drop(store);
    std::fs::rename(&building, db_dir)?;
    Ok(size.0)
}
