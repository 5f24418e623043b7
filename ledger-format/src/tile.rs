//! c2sp.org/tlog-tiles: tile and entry-bundle paths, which tiles exist for a tree size, tile
//! contents and entry bundles.
//!
//! ```text
//! tile/0/x001/x234/067        level-0 tile 1234067, full (256 hashes, 8192 bytes)
//! tile/1/000.p/17             level-1 tile 0, partial, 17 hashes
//! tile/entries/001.p/1        entry bundle 1 with one entry
//! ```
//!
//! Tile height is 8: hash `i` of the level-`l` tile `n` is the root of the perfect subtree of
//! `256^l` leaves starting at leaf `(n*256+i) * 256^l`, i.e. [`NodeId`] `(8l, n*256+i)`. An entry
//! bundle is `u16be(len) || entry` for consecutive entries; the leaf hash of entry `k` of bundle
//! `n` is hash `k` of level-0 tile `n`. Partial tiles are never hashed into higher levels; empty
//! tiles do not exist.

use crate::hash::Hash;
use crate::tree::{HashReader, NodeId, ReadError, TreeSize};

/// Hashes per full tile, and entries per full bundle.
pub const TILE_WIDTH: u64 = 256;
/// Merkle levels per tile level.
pub const TILE_HEIGHT: u8 = 8;
/// The largest entry a bundle can frame (u16 length prefix).
pub const MAX_ENTRY_SIZE: usize = 65_535;

/// Why a tile path, tile or bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TileError {
    #[error("malformed tile path: {0}")]
    BadPath(String),
    #[error("malformed tile or bundle: {0}")]
    BadContent(String),
}

/// A hash tile: level, index and width (1..=256; 256 is a full tile).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TileId {
    pub level: u8,
    pub index: u64,
    pub width: u16,
}

/// An entry bundle: index and width (1..=256; 256 is a full bundle).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BundleId {
    pub index: u64,
    pub width: u16,
}

/// A parsed path under the log prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TilePath {
    Tile(TileId),
    Entries(BundleId),
}

/// Returns the `<N>` path part: zero-padded 3-digit groups, all but the last prefixed with `x`.
pub fn encode_index(mut n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

fn suffix(width: u16) -> String {
    if width as u64 >= TILE_WIDTH || width == 0 {
        String::new()
    } else {
        format!(".p/{width}")
    }
}

/// Returns the width (0 for full) that tessera's path helpers give tile `index` at a level where
/// `count` hashes exist: full below the last full tile, else `count mod 256`.
fn path_width(index: u64, count: u64) -> u16 {
    if index < count / TILE_WIDTH {
        0
    } else {
        (count % TILE_WIDTH) as u16
    }
}

/// Returns the path of level-`level` tile `index` for a log of `log_size`, as tessera's
/// `TilePath` writes it. It does not check that the tile exists (width 0 renders as a full
/// path); use [`TileId::for_size`] for that.
pub fn tile_path(level: u8, index: u64, log_size: u64) -> String {
    let count = level_count(level, log_size);
    TileId {
        level,
        index,
        width: path_width(index, count),
    }
    .path()
}

/// Returns the path of entry bundle `index` for a log of `log_size`, as tessera's `EntriesPath`
/// writes it (no existence check).
pub fn entries_path(index: u64, log_size: u64) -> String {
    BundleId {
        index,
        width: path_width(index, log_size),
    }
    .path()
}

/// Returns how many complete hashes level `level` has in a tree of `size` leaves:
/// `floor(size / 256^level)`.
pub fn level_count(level: u8, size: u64) -> u64 {
    let shift = level as u32 * TILE_HEIGHT as u32;
    if shift >= 64 {
        0
    } else {
        size >> shift
    }
}

fn width_for(index: u64, count: u64) -> Option<u16> {
    let start = index.checked_mul(TILE_WIDTH)?;
    if start >= count {
        return None;
    }
    Some((count - start).min(TILE_WIDTH) as u16)
}

impl TileId {
    /// Returns the tile `index` at `level` as it exists in a tree of `size` leaves (full or
    /// partial), or `None` when it does not exist there.
    pub fn for_size(level: u8, index: u64, size: TreeSize) -> Option<TileId> {
        width_for(index, level_count(level, size.0)).map(|width| TileId {
            level,
            index,
            width,
        })
    }

    /// Returns true for a full tile (256 hashes).
    pub fn is_full(&self) -> bool {
        self.width as u64 == TILE_WIDTH
    }

    /// Returns the path `tile/<L>/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!(
            "tile/{}/{}{}",
            self.level,
            encode_index(self.index),
            suffix(self.width)
        )
    }

    /// Returns the Merkle nodes whose hashes make up this tile, in tile order.
    pub fn nodes(&self) -> Vec<NodeId> {
        let level = self.level * TILE_HEIGHT;
        let first = self.index * TILE_WIDTH;
        (0..self.width as u64)
            .map(|i| NodeId::new(level, first + i))
            .collect()
    }

    /// Returns the tile's bytes: its hashes concatenated, read from `reader`.
    pub fn read(&self, reader: &dyn HashReader) -> Result<Vec<u8>, ReadError> {
        let hashes = reader.read_hashes(&self.nodes())?;
        Ok(hashes.iter().flat_map(|h| h.0).collect())
    }
}

impl BundleId {
    /// Returns entry bundle `index` as it exists in a tree of `size` leaves, or `None`.
    pub fn for_size(index: u64, size: TreeSize) -> Option<BundleId> {
        width_for(index, size.0).map(|width| BundleId { index, width })
    }

    /// Returns the path `tile/entries/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!(
            "tile/entries/{}{}",
            encode_index(self.index),
            suffix(self.width)
        )
    }

    /// Returns the half-open range of leaf indices this bundle holds.
    pub fn leaf_range(&self) -> (u64, u64) {
        let start = self.index * TILE_WIDTH;
        (start, start + self.width as u64)
    }
}

/// Returns every tile that exists for a tree of `size` leaves: per level, the full tiles and at
/// most one partial tile, lowest level first.
pub fn inventory(size: TreeSize) -> Vec<TileId> {
    let mut out = Vec::new();
    for level in 0..64u8 {
        let count = level_count(level, size.0);
        if count == 0 {
            break;
        }
        for index in 0..count.div_ceil(TILE_WIDTH) {
            out.extend(TileId::for_size(level, index, size));
        }
    }
    out
}

/// Returns the tlog-tiles objects that exist at size `new` but not at size `old` (every object
/// of a log grown from `old` to `new` entries, when `old` is 0): the entry bundles first, then
/// the hash tiles, lowest level first. A bundle or tile that was partial at `old` and grew is
/// new (its path carries its width); one that did not change is not. An object's bytes never
/// change once it exists, so a mirror that wrote the objects of every size it passed holds
/// exactly what a reader of any of those sizes asks for.
pub fn new_objects(old: TreeSize, new: TreeSize) -> Vec<TilePath> {
    let mut out = Vec::new();
    if new.0 <= old.0 {
        return out;
    }
    for index in old.0 / TILE_WIDTH..new.0.div_ceil(TILE_WIDTH) {
        let at_new = BundleId::for_size(index, new);
        if at_new != BundleId::for_size(index, old) {
            out.extend(at_new.map(TilePath::Entries));
        }
    }
    for level in 0..64u8 {
        let count = level_count(level, new.0);
        if count == 0 {
            break;
        }
        for index in level_count(level, old.0) / TILE_WIDTH..count.div_ceil(TILE_WIDTH) {
            let at_new = TileId::for_size(level, index, new);
            if at_new != TileId::for_size(level, index, old) {
                out.extend(at_new.map(TilePath::Tile));
            }
        }
    }
    out
}

impl TilePath {
    /// Returns the object's path, `tile/...`.
    pub fn path(&self) -> String {
        match self {
            TilePath::Tile(t) => t.path(),
            TilePath::Entries(b) => b.path(),
        }
    }
}

/// Parses the `<N>[.p/<W>]` part of a path into (index, width), width 256 for full tiles.
pub fn parse_index(s: &str) -> Result<(u64, u16), TileError> {
    let bad = || TileError::BadPath(format!("bad tile index {s:?}"));
    let (n, width) = match s.split_once(".p/") {
        Some((n, w)) => {
            let w = crate::checkpoint::parse_decimal(w).ok_or_else(bad)?;
            if !(1..TILE_WIDTH).contains(&w) {
                return Err(bad());
            }
            (n, w as u16)
        }
        None => (s, TILE_WIDTH as u16),
    };
    let groups: Vec<&str> = n.split('/').collect();
    let mut index: u64 = 0;
    for (i, g) in groups.iter().enumerate() {
        let digits = if i + 1 < groups.len() {
            g.strip_prefix('x').ok_or_else(bad)?
        } else {
            g
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        // One spelling per index: no leading zero group (`x000/130` is `130`). Found by the
        // tile_path fuzz target.
        if i == 0 && groups.len() > 1 && digits == "000" {
            return Err(bad());
        }
        let v: u64 = digits.parse().map_err(|_| bad())?;
        index = index
            .checked_mul(1000)
            .and_then(|x| x.checked_add(v))
            .ok_or_else(bad)?;
    }
    Ok((index, width))
}

/// Parses a tile level: decimal 0..=63 without leading zeros.
pub fn parse_level(s: &str) -> Result<u8, TileError> {
    crate::checkpoint::parse_decimal(s)
        .filter(|&l| l < 64)
        .map(|l| l as u8)
        .ok_or_else(|| TileError::BadPath(format!("bad tile level {s:?}")))
}

/// Parses `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]` (without the log prefix).
pub fn parse_path(path: &str) -> Result<TilePath, TileError> {
    let rest = path
        .strip_prefix("tile/")
        .ok_or_else(|| TileError::BadPath(format!("{path:?} does not start with tile/")))?;
    let (first, index) = rest
        .split_once('/')
        .ok_or_else(|| TileError::BadPath(format!("{path:?} has no index")))?;
    let (index, width) = parse_index(index)?;
    if first == "entries" {
        Ok(TilePath::Entries(BundleId { index, width }))
    } else {
        Ok(TilePath::Tile(TileId {
            level: parse_level(first)?,
            index,
            width,
        }))
    }
}

/// Returns the entry bundle framing `u16be(len) || entry` of each entry, or an error if one is
/// over 65,535 bytes.
pub fn encode_bundle<'a>(
    entries: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, TileError> {
    let mut out = Vec::new();
    for e in entries {
        let len = u16::try_from(e.len())
            .map_err(|_| TileError::BadContent(format!("entry of {} bytes", e.len())))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Returns the entries of a bundle, refusing truncated framing.
pub fn decode_bundle(bytes: &[u8]) -> Result<Vec<&[u8]>, TileError> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < 2 {
            return Err(TileError::BadContent("truncated length prefix".into()));
        }
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        if rest.len() < 2 + len {
            return Err(TileError::BadContent("truncated entry".into()));
        }
        out.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    if out.len() as u64 > TILE_WIDTH {
        return Err(TileError::BadContent(format!(
            "{} entries in one bundle",
            out.len()
        )));
    }
    Ok(out)
}

/// Returns the hashes of a tile's bytes, refusing a length that is not 1..=256 hashes.
pub fn decode_tile(bytes: &[u8]) -> Result<Vec<Hash>, TileError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(32) || bytes.len() as u64 > 32 * TILE_WIDTH {
        return Err(TileError::BadContent(format!(
            "tile of {} bytes",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| Hash::from_slice(c).expect("chunks are 32 bytes"))
        .collect())
}
