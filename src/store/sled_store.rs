//! The sled [`Store`]: one sled tree, keys prefixed by record type, so that a group commit is a
//! single atomic `apply_batch` followed by one `flush` (fsync).
//!
//! ```text
//! m<name>                       meta: format, size, checkpoint, last_ms, indexed
//! E<u64be index / 16>           up to 16 leaves, u16-framed as in tlog-tiles bundles
//! T<u8 level><u64be tile><u8 inner><u8 chunk>   up to 16 hashes (see fattile)
//! q<u64be attribute><u64be first>      posting run: 6-byte entry indices, ascending
//! x<space><u16be bucket><u64be first>   index run: 12-byte records, 48 low bits of the
//!                               fingerprint then a 48-bit entry index (see crate::index)
//! ```

use super::{
    bucket_of, AnchorStore, ChunkId, FatTile, Group, Head, IndexRun, IndexSpace, IndexStore,
    KeyValue, LogStore, LogWrites, Posting, Store, StoreError, FORMAT_VERSION,
};
use ledger_format::tile::decode_bundle;
use ledger_format::Hash;
use std::path::Path;

/// A log stored in sled.
pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
}

/// Index keys written per sled batch (see `Store::index`).
const INDEX_BATCH: usize = 64;

/// Leaves per stored leaf chunk.
const LEAF_CHUNK: u64 = 16;

/// sled segment size; fixed when a data dir is created. sled writes any page larger than a
/// quarter segment as a separate blob file; 8 MiB segments keep large pages in the log.
const SEGMENT_SIZE: usize = 8 << 20;

fn key(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(prefix);
    k.extend_from_slice(rest);
    k
}

fn tile_prefix(level: u8, index: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(12);
    k.push(b'T');
    k.push(level);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn chunk_key(id: ChunkId) -> Vec<u8> {
    let mut k = tile_prefix(id.level, id.tile);
    k.push(id.inner);
    k.push(id.chunk);
    k
}

fn hashes_of(bytes: &[u8]) -> Result<Vec<Hash>, StoreError> {
    if !bytes.len().is_multiple_of(32) {
        return Err(StoreError::Corrupt("tile chunk is not whole hashes".into()));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| Hash::from_slice(c).expect("32-byte chunk"))
        .collect())
}

fn run_prefix(space: IndexSpace, bucket: u16) -> Vec<u8> {
    let mut k = Vec::with_capacity(12);
    k.push(b'x');
    k.push(space.byte());
    k.extend_from_slice(&bucket.to_be_bytes());
    k
}

const LOW48: u64 = (1 << 48) - 1;

fn posting_key(attr: u64, first: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(b'q');
    k.extend_from_slice(&attr.to_be_bytes());
    k.extend_from_slice(&first.to_be_bytes());
    k
}

fn u64_of(v: &[u8]) -> Result<u64, StoreError> {
    v.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt("integer record is not 8 bytes".into()))
}

/// Returns true while some open file holds the lock sled takes on `dir/db` (the probe takes
/// and drops the same `flock`, so it sees this process's closed-but-finishing stores too).
fn lock_held(dir: &Path) -> bool {
    use fs2::FileExt;
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("db"))
    else {
        return false;
    };
    match file.try_lock_exclusive() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(e) => e.kind() == fs2::lock_contended_error().kind(),
    }
}

impl SledStore {
    /// Opens (or creates) the store in `dir` with a page cache of `cache_mb` MiB, refusing a
    /// newer format version.
    pub fn open(dir: &Path, cache_mb: u64) -> Result<SledStore, StoreError> {
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_mb << 20)
            .segment_size(SEGMENT_SIZE);
        // sled's lock on the directory outlives a closed store while its background threads
        // finish their last writes: a store closed in this process (a restart after a storage
        // failure, or a test) may still hold it for a moment, so that case waits up to 5 s.
        // A directory this process never opened is locked by another process (a running
        // server): that fails at once.
        static OPENED: std::sync::Mutex<Vec<std::path::PathBuf>> =
            std::sync::Mutex::new(Vec::new());
        let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let ours = OPENED
            .lock()
            .map(|o| o.contains(&canonical))
            .unwrap_or(false);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while ours && lock_held(dir) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let db = config.open()?;
        if let Ok(mut o) = OPENED.lock() {
            let canonical = std::fs::canonicalize(dir).unwrap_or(canonical);
            if !o.contains(&canonical) {
                o.push(canonical);
            }
        }
        let tree = db.open_tree("log")?;
        let fkey = key(b'm', b"format");
        match tree.get(&fkey)? {
            Some(v) => {
                let found = u32::from_be_bytes(
                    v.as_ref()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("format record".into()))?,
                );
                if found > FORMAT_VERSION {
                    return Err(StoreError::NewerFormat {
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
            }
            None => {
                tree.insert(fkey, &FORMAT_VERSION.to_be_bytes())?;
                db.flush()?;
            }
        }
        Ok(SledStore { db, tree })
    }
}

impl LogWrites for SledStore {
    fn append(&self, group: &Group) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        // Leaves go in chunks of 16: one insert per 16 entries, plus rewriting the partial
        // chunk the group starts in.
        let mut i = 0;
        while i < group.leaves.len() {
            let c = group.leaves[i].0 / LEAF_CHUNK;
            let k = key(b'E', &c.to_be_bytes());
            let mut value = if !group.leaves[i].0.is_multiple_of(LEAF_CHUNK) {
                self.tree.get(&k)?.map(|v| v.to_vec()).unwrap_or_default()
            } else {
                Vec::new()
            };
            while i < group.leaves.len() && group.leaves[i].0 / LEAF_CHUNK == c {
                let leaf = &group.leaves[i].1;
                value.extend_from_slice(&(leaf.len() as u16).to_be_bytes());
                value.extend_from_slice(leaf);
                i += 1;
            }
            batch.insert(k, value);
        }
        for (id, hashes) in &group.chunks {
            let bytes: Vec<u8> = hashes.iter().flat_map(|h| h.0).collect();
            batch.insert(chunk_key(*id), bytes);
        }
        batch.insert(key(b'm', b"size"), &group.size.to_be_bytes());
        batch.insert(key(b'm', b"last_ms"), &group.last_ms.to_be_bytes());
        self.tree.apply_batch(batch)?;
        // Durability point: after this flush the group (entries, tiles, size) is on
        // disk. A crash before it leaves the previous group as the last one: sled applies a
        // batch atomically, and nothing of this group was signed, acknowledged or published.
        self.db.flush()?;
        Ok(())
    }

    fn put_checkpoint(&self, note: &str) -> Result<(), StoreError> {
        self.tree
            .insert(key(b'm', b"checkpoint"), note.as_bytes())?;
        // Durability point: the checkpoint is on disk. A crash before this flush leaves the
        // previous checkpoint; the entries it would cover are durable already and reopening
        // signs a checkpoint for them.
        self.db.flush()?;
        Ok(())
    }

    fn stage_checkpoint(&self, note: &str) -> Result<(), StoreError> {
        // Not flushed: the next append's flush (sled persists writes in order) or the flush
        // at close makes it durable; until then a crash re-signs it byte for byte on reopen.
        self.tree
            .insert(key(b'm', b"checkpoint"), note.as_bytes())?;
        Ok(())
    }
}

impl LogStore for SledStore {
    fn head(&self) -> Result<Option<Head>, StoreError> {
        let Some(size) = self.tree.get(key(b'm', b"size"))? else {
            return Ok(None);
        };
        let last_ms = self
            .tree
            .get(key(b'm', b"last_ms"))?
            .ok_or_else(|| StoreError::Corrupt("size without last_ms".into()))?;
        let checkpoint = self
            .tree
            .get(key(b'm', b"checkpoint"))?
            .map(|c| {
                String::from_utf8(c.to_vec())
                    .map_err(|_| StoreError::Corrupt("checkpoint is not UTF-8".into()))
            })
            .transpose()?;
        Ok(Some(Head {
            size: u64_of(&size)?,
            last_ms: u64_of(&last_ms)?,
            checkpoint,
        }))
    }

    fn tile(&self, level: u8, index: u64) -> Result<Option<FatTile>, StoreError> {
        let chunks = self
            .tile_chunks(level, index)?
            .into_iter()
            .map(|(id, b)| Ok((id, hashes_of((*b).as_ref())?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((!chunks.is_empty()).then(|| FatTile::from_chunks(chunks)))
    }

    fn chunk(&self, id: ChunkId) -> Result<Option<super::ChunkBytes>, StoreError> {
        Ok(self
            .tree
            .get(chunk_key(id))?
            .map(|v| std::sync::Arc::new(v) as super::ChunkBytes))
    }

    fn tile_chunks(
        &self,
        level: u8,
        index: u64,
    ) -> Result<Vec<(ChunkId, super::ChunkBytes)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(tile_prefix(level, index)) {
            let (k, v) = kv?;
            let id = ChunkId {
                level,
                tile: index,
                inner: k[10],
                chunk: k[11],
            };
            out.push((id, std::sync::Arc::new(v) as super::ChunkBytes));
        }
        Ok(out)
    }

    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::with_capacity(end.saturating_sub(start) as usize);
        if start >= end {
            return Ok(out);
        }
        let (first, last) = (start / LEAF_CHUNK, (end - 1) / LEAF_CHUNK);
        let range = key(b'E', &first.to_be_bytes())..=key(b'E', &last.to_be_bytes());
        for (c, kv) in (first..).zip(self.tree.range(range)) {
            let (k, v) = kv?;
            if k[1..] != c.to_be_bytes() {
                return Err(StoreError::Corrupt(format!("leaf chunk {c} missing")));
            }
            let leaves = decode_bundle(&v)
                .map_err(|e| StoreError::Corrupt(format!("leaf chunk {c}: {e}")))?;
            for (j, leaf) in leaves.into_iter().enumerate() {
                let i = c * LEAF_CHUNK + j as u64;
                if (start..end).contains(&i) {
                    out.push(leaf.to_vec());
                }
            }
        }
        if out.len() as u64 != end - start {
            return Err(StoreError::Corrupt(format!(
                "entries {start}..{end}: only {} stored",
                out.len()
            )));
        }
        Ok(out)
    }
}

impl IndexStore for SledStore {
    fn index(&self, runs: &[IndexRun], postings: &[Posting], up_to: u64) -> Result<(), StoreError> {
        let mut writes: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(runs.len() + postings.len());
        for p in postings {
            let mut v = Vec::with_capacity(6 * p.indices.len());
            for i in &p.indices {
                v.extend_from_slice(&i.to_be_bytes()[2..]);
            }
            writes.push((posting_key(p.attr, p.first), v));
        }
        for run in runs {
            let mut k = run_prefix(run.space, run.bucket);
            k.extend_from_slice(&run.first.to_be_bytes());
            let mut v = Vec::with_capacity(12 * run.records.len());
            for &(fp, index) in &run.records {
                if index > LOW48 {
                    return Err(StoreError::io(format!("entry index {index} exceeds 2^48")));
                }
                v.extend_from_slice(&(fp & LOW48).to_be_bytes()[2..]);
                v.extend_from_slice(&index.to_be_bytes()[2..]);
            }
            writes.push((k, v));
        }
        // Small batches: sled applies a batch under a global write lock, and one batch of a few
        // thousand random keys held the sequencer's group commit for hundreds of milliseconds.
        // A crash between batches is harmless: the mark moves last, so the records are written
        // again on replay (same or superset runs; lookups tolerate duplicates).
        for chunk in writes.chunks(INDEX_BATCH) {
            let mut batch = sled::Batch::default();
            for (k, v) in chunk {
                batch.insert(k.as_slice(), v.as_slice());
            }
            self.tree.apply_batch(batch)?;
        }
        self.tree
            .insert(key(b'm', b"indexed"), &up_to.to_be_bytes())?;
        Ok(())
    }

    fn postings(&self, attr: u64, from: u64, limit: usize) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        // Start at the last run that begins at or before `from`: it may hold indices >= from.
        let start = self
            .tree
            .range(posting_key(attr, 0)..=posting_key(attr, from))
            .next_back()
            .transpose()?
            .map(|(k, _)| k.to_vec())
            .unwrap_or_else(|| posting_key(attr, 0));
        for kv in self.tree.range(start..=posting_key(attr, u64::MAX)) {
            let (_, v) = kv?;
            if v.len() % 6 != 0 {
                return Err(StoreError::Corrupt(
                    "posting run is not whole indices".into(),
                ));
            }
            for c in v.chunks_exact(6) {
                let mut b = [0u8; 8];
                b[2..].copy_from_slice(c);
                let i = u64::from_be_bytes(b);
                if i >= from {
                    out.push(i);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    fn indexed_up_to(&self) -> Result<u64, StoreError> {
        self.tree
            .get(key(b'm', b"indexed"))?
            .map(|v| u64_of(&v))
            .transpose()
            .map(|v| v.unwrap_or(0))
    }

    fn index_candidates(&self, space: IndexSpace, fp: u64) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        let want = (fp & LOW48).to_be_bytes();
        for kv in self.tree.scan_prefix(run_prefix(space, bucket_of(fp))) {
            let (_, v) = kv?;
            if v.len() % 12 != 0 {
                return Err(StoreError::Corrupt("index run is not whole records".into()));
            }
            for r in v.chunks_exact(12) {
                if r[..6] == want[2..] {
                    let mut idx = [0u8; 8];
                    idx[2..].copy_from_slice(&r[6..]);
                    out.push(u64::from_be_bytes(idx));
                }
            }
        }
        Ok(out)
    }
}

impl AnchorStore for SledStore {
    fn anchor_write(&self, writes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (k, v) in writes {
            match v {
                Some(v) => batch.insert(key(b'A', k), v.as_slice()),
                None => batch.remove(key(b'A', k)),
            }
        }
        self.tree.apply_batch(batch)?;
        // Durability point: an anchoring decision (a checkpoint chosen, a confirmation) is on
        // disk before anyone acts on it.
        self.db.flush()?;
        Ok(())
    }

    fn anchor_scan(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let p = key(b'A', prefix);
        let mut start = p.clone();
        start.extend_from_slice(from);
        self.tree
            .range(start..)
            .take_while(|kv| kv.as_ref().map_or(true, |(k, _)| k.starts_with(&p)))
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                Ok((k[1..].to_vec(), v.to_vec()))
            })
            .collect()
    }

    fn anchor_last(&self, prefix: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        Ok(self
            .tree
            .scan_prefix(key(b'A', prefix))
            .next_back()
            .transpose()?
            .map(|(k, v)| (k[1..].to_vec(), v.to_vec())))
    }
}

impl Store for SledStore {
    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }
}
