//! Stored tiles: a C2SP tile (256 hashes of one tile level) plus the seven Merkle levels inside
//! it, so that any perfect subtree hash is one lookup and a proof costs no hashing.
//!
//! Tile level `L` holds Merkle levels `8L .. 8L+7`. Node `(h, k)` lives in tile level `L = h/8`,
//! inner level `r = h%8`, tile `k >> (8-r)`, slot `k & (255 >> r)`. Encoding, for a tile whose
//! level-0 part has `w` hashes: `u16be(w)` then inner level 0 (`w` hashes), level 1 (`w/2`), ...,
//! level 7 (`w/128`), each hash 32 bytes. A full tile is 2 + 511*32 bytes.

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

    /// Returns the hash at inner level `r`, slot `slot` straight from the stored encoding,
    /// without decoding the tile (the proof hot path).
    pub fn hash_in(bytes: &[u8], r: usize, slot: usize) -> Option<Hash> {
        let w = u16::from_be_bytes(bytes.get(..2)?.try_into().ok()?) as usize;
        if r >= 8 || slot >= w >> r {
            return None;
        }
        let before: usize = (0..r).map(|i| w >> i).sum();
        let at = 2 + 32 * (before + slot);
        Hash::from_slice(bytes.get(at..at + 32)?).ok()
    }

    /// Returns the stored encoding.
    pub fn encode(&self) -> Vec<u8> {
        let n: usize = self.levels.iter().map(Vec::len).sum();
        let mut out = Vec::with_capacity(2 + 32 * n);
        out.extend_from_slice(&(self.width() as u16).to_be_bytes());
        for level in &self.levels {
            for h in level {
                out.extend_from_slice(&h.0);
            }
        }
        out
    }

    /// Parses the stored encoding, or `None` if it is corrupt.
    pub fn decode(bytes: &[u8]) -> Option<FatTile> {
        let w = u16::from_be_bytes(bytes.get(..2)?.try_into().ok()?) as usize;
        if w as u64 > TILE_WIDTH {
            return None;
        }
        let mut t = FatTile::default();
        let mut rest = &bytes[2..];
        for r in 0..8 {
            let n = w >> r;
            let part = rest.get(..32 * n)?;
            t.levels[r] = part
                .chunks_exact(32)
                .map(|c| Hash::from_slice(c).expect("32-byte chunk"))
                .collect();
            rest = &rest[32 * n..];
        }
        rest.is_empty().then_some(t)
    }
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
    }

    #[test]
    fn round_trip_and_partial_widths() {
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
        for t in tiles.values() {
            let bytes = t.encode();
            assert_eq!(FatTile::decode(&bytes).as_ref(), Some(t));
            for r in 0..8 {
                for slot in 0..=t.levels[r].len() {
                    assert_eq!(FatTile::hash_in(&bytes, r, slot), t.get(r, slot));
                }
            }
        }
        assert!(FatTile::decode(&[0, 1, 2]).is_none());
    }
}
