//! The write side of the stored tree: appends leaves to the compact range, the open entry
//! bundle and the tiles they complete, and hands out what changed for one [`Group`] commit.
//! Used by the sequencer and by `import`.
//!
//! [`Group`]: crate::store::Group

use std::collections::HashMap;

use ledger_format::tile::{encode_bundle, TILE_WIDTH};
use ledger_format::tree::CompactRange;
use ledger_format::Hash;

use crate::store::fattile::locate;
use crate::store::{FatTile, Store, StoreError};

/// The partial entry bundle, kept encoded.
struct OpenBundle {
    index: u64,
    count: usize,
    bytes: Vec<u8>,
}

/// Pending tree writes since the last [`TreeWriter::take_changes`].
pub struct TreeWriter {
    compact: CompactRange,
    /// Tiles appends write into (the partial tile of each level), loaded on first use.
    tiles: HashMap<(u8, u64), FatTile>,
    touched: Vec<(u8, u64)>,
    bundle: OpenBundle,
    done_bundles: Vec<(u64, Vec<u8>)>,
}

/// What a group changed: whole bundles and whole tiles to store.
pub struct Changes {
    pub bundles: Vec<(u64, Vec<u8>)>,
    pub tiles: Vec<(u8, u64, FatTile)>,
}

impl TreeWriter {
    /// Resumes writing after the stored tree described by `compact`.
    pub fn resume(store: &dyn Store, compact: CompactRange) -> Result<TreeWriter, StoreError> {
        let size = compact.size().0;
        let n = size / TILE_WIDTH;
        let leaves = store.entries(n * TILE_WIDTH, size)?;
        let bytes = encode_bundle(leaves.iter().map(Vec::as_slice))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(TreeWriter {
            compact,
            tiles: HashMap::new(),
            touched: Vec::new(),
            bundle: OpenBundle {
                index: n,
                count: leaves.len(),
                bytes,
            },
            done_bundles: Vec::new(),
        })
    }

    /// Returns the number of leaves appended so far (stored or pending).
    pub fn size(&self) -> u64 {
        self.compact.size().0
    }

    /// Returns the root over every leaf appended so far.
    pub fn root(&self) -> Hash {
        self.compact.root()
    }

    /// Appends a leaf (its bytes and hash), recording the bundle and every completed node.
    pub fn append(&mut self, store: &dyn Store, leaf: &[u8], hash: Hash) -> Result<(), StoreError> {
        // Load every tile this append writes to: resuming after a restart continues the stored
        // partial tile. Node (h, i >> h) completes when the low h bits of i are all 1.
        let index = self.size();
        let mut level = 0u8;
        loop {
            let (l, t, _, _) = locate(level, index >> level);
            if !self.tiles.contains_key(&(l, t)) {
                let tile = store.tile(l, t)?;
                self.tiles.insert((l, t), tile.unwrap_or_default());
            }
            if (index >> level) & 1 == 0 {
                break;
            }
            level += 1;
        }
        let (tiles, touched) = (&mut self.tiles, &mut self.touched);
        self.compact.append_with(hash, |node, h| {
            let (l, t, r, slot) = locate(node.level, node.index);
            tiles
                .get_mut(&(l, t))
                .expect("loaded above for every node this append completes")
                .set(r, slot, h);
            touched.push((l, t));
        });
        let b = &mut self.bundle;
        b.bytes
            .extend_from_slice(&(leaf.len() as u16).to_be_bytes());
        b.bytes.extend_from_slice(leaf);
        b.count += 1;
        if b.count as u64 == TILE_WIDTH {
            self.done_bundles
                .push((b.index, std::mem::take(&mut b.bytes)));
            b.index += 1;
            b.count = 0;
        }
        Ok(())
    }

    /// Returns everything changed since the last call: completed bundles, the open bundle, and
    /// every touched tile in full.
    pub fn take_changes(&mut self) -> Changes {
        let mut bundles = std::mem::take(&mut self.done_bundles);
        if self.bundle.count > 0 {
            bundles.push((self.bundle.index, self.bundle.bytes.clone()));
        }
        self.touched.sort_unstable();
        self.touched.dedup();
        let tiles = self
            .touched
            .drain(..)
            .map(|k| (k.0, k.1, self.tiles[&k].clone()))
            .collect();
        // Full tiles never change again; only partial ones stay in memory.
        self.tiles.retain(|_, t| !t.is_full());
        Changes { bundles, tiles }
    }
}
