//! The sled [`Store`]: one sled tree, keys prefixed by record type, so that a group commit is a
//! single atomic `apply_batch` followed by one `flush` (fsync).
//!
//! ```text
//! m<name>                       meta: format, size, checkpoint, last_ms, indexed
//! e<u64be bundle>               entry bundle (up to 256 u16-framed leaves; the partial one grows)
//! t<u8 level><u64be index>      tile with inner levels (FatTile encoding)
//! h<32-byte leaf hash>          u64be index   (written by the indexer, see crate::index)
//! i<submitter>\0<entry_id>      u64be index   (likewise)
//! ```

use super::{FatTile, Group, Head, NewEntry, Store, StoreError, FORMAT_VERSION};
use ledger_format::tile::{decode_bundle, TILE_WIDTH};
use ledger_format::Hash;
use std::path::Path;

/// A log stored in sled.
pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
}

/// sled segment size; fixed when a data dir is created.
const SEGMENT_SIZE: usize = 8 << 20;

fn key(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(prefix);
    k.extend_from_slice(rest);
    k
}

fn tile_key(level: u8, index: u64) -> Vec<u8> {
    let mut k = vec![b't', level];
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn entry_id_key(submitter: &str, entry_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + submitter.len() + entry_id.len());
    k.push(b'i');
    k.extend_from_slice(submitter.as_bytes());
    k.push(0);
    k.extend_from_slice(entry_id.as_bytes());
    k
}

fn u64_of(v: &[u8]) -> Result<u64, StoreError> {
    v.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt("integer record is not 8 bytes".into()))
}

impl SledStore {
    /// Opens (or creates) the store in `dir` with a page cache of `cache_mb` MiB, refusing a
    /// newer format version.
    pub fn open(dir: &Path, cache_mb: u64) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_mb << 20)
            // sled writes any page larger than a quarter segment as a separate blob file; with
            // the default 512 KiB segments, pages holding a few 50 KiB entry bundles became
            // blobs (a file each). 8 MiB segments keep them in the log (measured: benches/).
            .segment_size(SEGMENT_SIZE)
            .open()?;
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

    fn bundle(&self, n: u64) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
        let Some(v) = self.tree.get(key(b'e', &n.to_be_bytes()))? else {
            return Ok(None);
        };
        let entries = decode_bundle(&v).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some(entries.into_iter().map(<[u8]>::to_vec).collect()))
    }
}

impl Store for SledStore {
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

    fn put_checkpoint(&self, note: &str) -> Result<(), StoreError> {
        self.tree
            .insert(key(b'm', b"checkpoint"), note.as_bytes())?;
        // Durability point: the checkpoint is on disk. A crash before this flush leaves the
        // previous checkpoint; the entries it would cover are durable already and reopening
        // signs a checkpoint for them.
        self.db.flush()?;
        Ok(())
    }

    fn append(&self, group: &Group) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for e in &group.entries {
            batch.insert(key(b'h', &e.leaf_hash.0), &e.index.to_be_bytes());
            if !e.entry_id.is_empty() {
                batch.insert(
                    entry_id_key(&e.submitter, &e.entry_id),
                    &e.index.to_be_bytes(),
                );
            }
        }
        for (n, bytes) in &group.bundles {
            batch.insert(key(b'e', &n.to_be_bytes()), bytes.as_slice());
        }
        for (level, index, tile) in &group.tiles {
            batch.insert(tile_key(*level, *index), tile.encode());
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

    fn tile(&self, level: u8, index: u64) -> Result<Option<FatTile>, StoreError> {
        match self.tree.get(tile_key(level, index))? {
            None => Ok(None),
            Some(v) => FatTile::decode(&v)
                .map(Some)
                .ok_or_else(|| StoreError::Corrupt(format!("tile {level}/{index}"))),
        }
    }

    fn tile_raw(&self, level: u8, index: u64) -> Result<Option<super::TileBytes>, StoreError> {
        Ok(self
            .tree
            .get(tile_key(level, index))?
            .map(|v| std::sync::Arc::new(v) as super::TileBytes))
    }

    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::with_capacity(end.saturating_sub(start) as usize);
        let mut i = start;
        while i < end {
            let n = i / TILE_WIDTH;
            let bundle = self
                .bundle(n)?
                .ok_or_else(|| StoreError::Corrupt(format!("entry bundle {n} missing")))?;
            let first = (i % TILE_WIDTH) as usize;
            let last = ((end - n * TILE_WIDTH).min(TILE_WIDTH)) as usize;
            if bundle.len() < last {
                return Err(StoreError::Corrupt(format!("entry bundle {n} is short")));
            }
            out.extend(bundle.into_iter().take(last).skip(first));
            i = n * TILE_WIDTH + last as u64;
        }
        Ok(out)
    }

    fn index(&self, records: &[NewEntry], up_to: u64) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for e in records {
            batch.insert(key(b'h', &e.leaf_hash.0), &e.index.to_be_bytes());
            if !e.entry_id.is_empty() {
                batch.insert(
                    entry_id_key(&e.submitter, &e.entry_id),
                    &e.index.to_be_bytes(),
                );
            }
        }
        batch.insert(key(b'm', b"indexed"), &up_to.to_be_bytes());
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    fn indexed_up_to(&self) -> Result<u64, StoreError> {
        self.tree
            .get(key(b'm', b"indexed"))?
            .map(|v| u64_of(&v))
            .transpose()
            .map(|v| v.unwrap_or(0))
    }

    fn index_of_leaf(&self, leaf_hash: &Hash) -> Result<Option<u64>, StoreError> {
        self.tree
            .get(key(b'h', &leaf_hash.0))?
            .map(|v| u64_of(&v))
            .transpose()
    }

    fn index_of_entry_id(
        &self,
        submitter: &str,
        entry_id: &str,
    ) -> Result<Option<u64>, StoreError> {
        self.tree
            .get(entry_id_key(submitter, entry_id))?
            .map(|v| u64_of(&v))
            .transpose()
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }
}
