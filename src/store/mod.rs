//! Durable storage behind a narrow [`Store`] trait, with a sled implementation.
//!
//! What is stored: entry bundles (tlog-tiles framing; a bundle's entries are kept one key each
//! only until the bundle is full), tiles with their inner levels ([`fattile`]), the leaf-hash and
//! (submitter, entry_id) indexes, the tree size and the latest signed checkpoint. Any proof reads
//! O(log n) tiles; nothing about the tree lives only in memory.

pub mod fattile;
mod sled_store;

pub use fattile::FatTile;
pub use sled_store::SledStore;

use ledger_format::tree::{HashReader, NodeId, ReadError};
use ledger_format::Hash;

/// The on-disk format this build writes; a store with a newer one is refused.
pub const FORMAT_VERSION: u32 = 1;

/// Store failures. `Io` and `Corrupt` are fatal for the sequencer: it stops signing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("storage I/O: {0}")]
    Io(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("data dir has format version {found}; this build reads up to {supported}")]
    NewerFormat { found: u32, supported: u32 },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> StoreError {
        StoreError::Io(e.to_string())
    }
}

/// The committed state of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// Entries durably stored. May exceed the checkpoint's size after a crash between
    /// [`Store::append`] and [`Store::put_checkpoint`].
    pub size: u64,
    /// `logged_at_ms` of the last entry (timestamps never go backwards).
    pub last_ms: u64,
    /// The latest signed checkpoint note (text with signatures), if one was stored.
    pub checkpoint: Option<String>,
}

/// One entry appended by a group.
#[derive(Clone, Debug)]
pub struct NewEntry {
    pub index: u64,
    pub leaf: Vec<u8>,
    pub leaf_hash: Hash,
    pub submitter: String,
    pub entry_id: String,
}

/// Everything one group commit appends.
#[derive(Clone, Debug)]
pub struct Group {
    pub entries: Vec<NewEntry>,
    /// Tiles changed by the group, in full (tile level, tile index, contents).
    pub tiles: Vec<(u8, u64, FatTile)>,
    /// Tree size after the group.
    pub size: u64,
    /// `logged_at_ms` of the group's entries.
    pub last_ms: u64,
}

/// Durable storage for one log.
///
/// Contract: [`Store::append`] applies a whole group atomically and returns only once it is
/// durable (fsynced); after a crash a group is either entirely present or entirely absent.
/// [`Store::put_checkpoint`] likewise returns only once the checkpoint is durable. An error
/// from either means the write's fate is unknown (it may or may not be persisted): the caller
/// must not sign or acknowledge anything more and must recover by reopening, which reads the
/// truth from disk. Reads reflect every completed write.
pub trait Store: Send + Sync {
    /// Returns the committed head, or `None` for a store never written to.
    fn head(&self) -> Result<Option<Head>, StoreError>;
    /// Durably and atomically appends `group` (see the trait contract).
    fn append(&self, group: &Group) -> Result<(), StoreError>;
    /// Durably replaces the latest signed checkpoint.
    fn put_checkpoint(&self, note: &str) -> Result<(), StoreError>;
    /// Returns the stored tile, if any.
    fn tile(&self, level: u8, index: u64) -> Result<Option<FatTile>, StoreError>;
    /// Returns the leaf bytes of entries `[start, end)`, which must all exist.
    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Returns the index of the entry with this leaf hash.
    fn index_of_leaf(&self, leaf_hash: &Hash) -> Result<Option<u64>, StoreError>;
    /// Returns the index of the entry `submitter` sent with `entry_id`.
    fn index_of_entry_id(&self, submitter: &str, entry_id: &str)
        -> Result<Option<u64>, StoreError>;
    /// Returns the bytes the store occupies on disk.
    fn size_on_disk(&self) -> Result<u64, StoreError>;
}

/// Reads perfect-subtree hashes from a store's tiles.
pub struct StoreHashes<'a>(pub &'a dyn Store);

impl HashReader for StoreHashes<'_> {
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, ReadError> {
        let mut last: Option<((u8, u64), FatTile)> = None;
        let mut out = Vec::with_capacity(nodes.len());
        for n in nodes {
            let (l, t, r, slot) = fattile::locate(n.level, n.index);
            if last.as_ref().map(|(k, _)| *k) != Some((l, t)) {
                let tile = self
                    .0
                    .tile(l, t)?
                    .ok_or_else(|| format!("tile {l}/{t} is missing"))?;
                last = Some(((l, t), tile));
            }
            let tile = &last.as_ref().expect("set just above").1;
            out.push(
                tile.get(r, slot)
                    .ok_or_else(|| format!("node {n:?} is not in tile {l}/{t}"))?,
            );
        }
        Ok(out)
    }
}
