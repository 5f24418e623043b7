//! Tiles with their inner levels: a C2SP tile (256 hashes of Merkle level 8L) plus the seven
//! Merkle levels inside it, so that any perfect subtree hash is one lookup and a proof costs no
//! hashing.
//!
//! Tile level `L` holds Merkle levels `8L .. 8L+7`. Node `(h, k)` lives in tile level `L = h/8`,
//! inner level `r = h%8`, tile `k >> (8-r)`, slot `k & (255 >> r)`. The store keeps each inner
//! level in chunks of [`CHUNK`] hashes ([`ChunkId`]), so a group rewrites at most one partial
//! chunk per inner level it touches, and reading one hash reads 512 bytes at most.

use ledger_format::tile::TILE_WIDTH;
use ledger_format::Hash;

/// One stored tile with its inner levels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FatTile {
    /// `levels[r]` holds the inner level-`r` hashes present so far.
    pub levels: [Vec<Hash>; 8],
}

/// Returns (tile level, tile index, inner level, slot) of Merkle node `(h, k)`.
pub fn locate(h: u8, k: u64) -> (u8, u64, usize, usize) {
    let (l, r) = (h / 8, (h % 8) as u32);
    (l, k >> (8 - r), r as usize, (k & (255 >> r)) as usize)
}

impl FatTile {
    /// Returns the number of tile-level hashes (inner level 0).
    pub fn width(&self) -> usize {
        self.levels[0].len()
    }

    /// Returns true when all 256 hashes are present.
    pub fn is_full(&self) -> bool {
        self.width() as u64 == TILE_WIDTH
    }

    /// Sets the hash at inner level `r`, slot `slot`; slots arrive in order.
    pub fn set(&mut self, r: usize, slot: usize, h: Hash) {
        let level = &mut self.levels[r];
        debug_assert_eq!(level.len(), slot, "tile slots are filled in order");
        level.push(h);
    }

    /// Returns the hash at inner level `r`, slot `slot`.
    pub fn get(&self, r: usize, slot: usize) -> Option<Hash> {
        self.levels[r].get(slot).copied()
    }

    /// Returns the C2SP tile bytes for the first `width` hashes.
    pub fn tile_bytes(&self, width: usize) -> Vec<u8> {
        self.levels[0][..width].iter().flat_map(|h| h.0).collect()
    }

    /// Returns the stored form of chunk `c` of inner level `r`: the hashes present so far, or
    /// for the top chunk ([`TOP`]) all 62 slots with absent hashes as zeros.
    pub fn chunk(&self, r: usize, c: usize) -> Vec<Hash> {
        if r == TOP as usize {
            let mut out = vec![Hash::default(); TOP_SLOTS];
            for level in TOP as usize..8 {
                let at = top_offset(level);
                out[at..at + self.levels[level].len()].copy_from_slice(&self.levels[level]);
            }
            return out;
        }
        let level = &self.levels[r];
        let start = (c * CHUNK).min(level.len());
        level[start..(start + CHUNK).min(level.len())].to_vec()
    }

    /// Returns the tile assembled from its stored chunks.
    pub fn from_chunks(chunks: impl IntoIterator<Item = (ChunkId, Vec<Hash>)>) -> FatTile {
        let mut t = FatTile::default();
        let mut chunks: Vec<_> = chunks.into_iter().collect();
        chunks.sort_by_key(|(id, _)| *id);
        let mut top = None;
        for (id, hashes) in chunks {
            if id.inner == TOP {
                top = Some(hashes);
            } else {
                t.levels[id.inner as usize].extend(hashes);
            }
        }
        if let Some(top) = top {
            let width = t.width();
            for level in TOP as usize..8 {
                let at = top_offset(level);
                let n = (width >> level).min(top.len().saturating_sub(at));
                t.levels[level] = top[at..at + n].to_vec();
            }
        }
        t
    }
}

/// Hashes per stored chunk of inner levels 0 to 2.
pub const CHUNK: usize = 16;

/// Inner levels from this one up (1..=7: 128 + 64 + 32 + 16 + 8 + 4 + 2 hashes, 8 KiB) share
/// one chunk, so a proof reads at most two chunks per tile level: the leaf-level chunk and this
/// one (measured: benches/README.md).
pub const TOP: u8 = 1;
/// Slots in the top chunk.
pub const TOP_SLOTS: usize = 254;

/// Returns where inner level `r` (>= [`TOP`]) starts in the top chunk.
pub fn top_offset(r: usize) -> usize {
    (TOP as usize..r).map(|j| 256 >> j).sum()
}

/// A stored chunk: hashes `[16*chunk, 16*chunk+16)` of inner level `inner` (< [`TOP`]) of a
/// tile, or with `inner == TOP` the top chunk holding inner levels 1 to 7.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId {
    pub level: u8,
    pub tile: u64,
    pub inner: u8,
    pub chunk: u8,
}

/// Returns the chunk holding Merkle node `(h, k)` and the node's position in it.
pub fn chunk_of(h: u8, k: u64) -> (ChunkId, usize) {
    let (level, tile, r, slot) = locate(h, k);
    if r >= TOP as usize {
        return (
            ChunkId {
                level,
                tile,
                inner: TOP,
                chunk: 0,
            },
            top_offset(r) + slot,
        );
    }
    (
        ChunkId {
            level,
            tile,
            inner: r as u8,
            chunk: (slot / CHUNK) as u8,
        },
        slot % CHUNK,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_format::tree::CompactRange;

    #[test]
    fn nodes_land_in_the_right_tile_slots() {
        assert_eq!(locate(0, 300), (0, 1, 0, 44));
        assert_eq!(locate(7, 3), (0, 1, 7, 1));
        assert_eq!(locate(8, 0), (1, 0, 0, 0));
        assert_eq!(locate(9, 200), (1, 1, 1, 72));
        assert_eq!(
            chunk_of(0, 300),
            (
                ChunkId {
                    level: 0,
                    tile: 1,
                    inner: 0,
                    chunk: 2
                },
                12
            )
        );
        let top = ChunkId {
            level: 0,
            tile: 1,
            inner: TOP,
            chunk: 0,
        };
        assert_eq!(chunk_of(7, 3), (top, top_offset(7) + 1));
        assert_eq!(top_offset(8), TOP_SLOTS);
    }

    #[test]
    fn chunks_reassemble_tiles() {
        let mut tiles: std::collections::BTreeMap<(u8, u64), FatTile> = Default::default();
        let mut c = CompactRange::new();
        for i in 0..300u64 {
            c.append_with(ledger_format::leaf_hash(&i.to_be_bytes()), |n, h| {
                let (l, t, r, s) = locate(n.level, n.index);
                tiles.entry((l, t)).or_default().set(r, s, h);
            });
        }
        assert!(tiles[&(0, 0)].is_full());
        assert_eq!(tiles[&(0, 1)].width(), 44);
        for (&(level, tile), t) in &tiles {
            let mut chunks = Vec::new();
            for r in 0..8 {
                for c in 0..(256 >> r).max(CHUNK) / CHUNK {
                    let hs = t.chunk(r, c);
                    if !hs.is_empty() {
                        chunks.push((
                            ChunkId {
                                level,
                                tile,
                                inner: r as u8,
                                chunk: c as u8,
                            },
                            hs.to_vec(),
                        ));
                    }
                }
            }
            assert_eq!(&FatTile::from_chunks(chunks), t);
        }
    }
}
