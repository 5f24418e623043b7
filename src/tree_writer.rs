//! The write side of the stored tree: appends leaves to the compact range and to the tiles
//! they complete, and hands out what changed for one [`Group`] commit. Used by the sequencer
//! and by `import`.
//!
//! [`Group`]: crate::store::Group

use std::collections::HashMap;

use ledger_format::tree::CompactRange;
use ledger_format::Hash;

use crate::store::fattile::{chunk_of, locate};
use crate::store::{ChunkId, FatTile, LogStore, StoreError};

/// Pending tree writes since the last [`TreeWriter::take_changes`].
pub struct TreeWriter {
    compact: CompactRange,
    /// Tiles appends write into (the partial tile of each level), loaded on first use.
    tiles: HashMap<(u8, u64), FatTile>,
    touched: Vec<ChunkId>,
    leaves: Vec<(u64, Vec<u8>)>,
}

/// What a group changed: its leaves and the tile chunks to store whole.
pub struct Changes {
    pub leaves: Vec<(u64, Vec<u8>)>,
    pub chunks: Vec<(ChunkId, Vec<Hash>)>,
}

impl TreeWriter {
    /// Resumes writing after the stored tree described by `compact`.
    pub fn resume(compact: CompactRange) -> TreeWriter {
        TreeWriter {
            compact,
            tiles: HashMap::new(),
            touched: Vec::new(),
            leaves: Vec::new(),
        }
    }

    /// Returns the number of leaves appended so far (stored or pending).
    pub fn size(&self) -> u64 {
        self.compact.size().0
    }

    /// Returns the root over every leaf appended so far.
    pub fn root(&self) -> Hash {
        self.compact.root()
    }

    /// Appends a leaf (its bytes and hash), recording every node it completes.
    pub fn append(
        &mut self,
        store: &dyn LogStore,
        leaf: Vec<u8>,
        hash: Hash,
    ) -> Result<(), StoreError> {
        // Load every tile this append writes to: resuming after a restart continues the stored
        // partial tile. Node (h, i >> h) completes when the low h bits of i are all 1.
        let index = self.size();
        let mut level = 0u8;
        loop {
            let (l, t, _, _) = locate(level, index >> level);
            if let std::collections::hash_map::Entry::Vacant(e) = self.tiles.entry((l, t)) {
                let tile = store.tile(l, t)?;
                e.insert(tile.unwrap_or_default());
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
            touched.push(chunk_of(node.level, node.index).0);
        });
        self.leaves.push((index, leaf));
        Ok(())
    }

    /// Returns everything changed since the last call: the new leaves and every touched chunk.
    pub fn take_changes(&mut self) -> Changes {
        self.touched.sort_unstable();
        self.touched.dedup();
        let tiles = &self.tiles;
        let chunks = self
            .touched
            .drain(..)
            .map(|id| {
                let tile = &tiles[&(id.level, id.tile)];
                (
                    id,
                    tile.chunk(id.inner as usize, id.chunk as usize).to_vec(),
                )
            })
            .collect();
        // Full tiles never change again; only partial ones stay in memory.
        self.tiles.retain(|_, t| !t.is_full());
        Changes {
            leaves: std::mem::take(&mut self.leaves),
            chunks,
        }
    }
}
