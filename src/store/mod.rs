//! Durable storage behind a narrow [`Store`] trait, with a sled implementation.
//!
//! What is stored: entry bundles (tlog-tiles framing; the partial bundle is rewritten by each
//! group until it is full), tiles with their inner levels ([`fattile`]), the leaf-hash and
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

/// The index records of one entry appended by a group (its bytes travel in a bundle; the
/// records go to [`Store::index`] later, see `crate::index`).
#[derive(Clone, Debug)]
pub struct NewEntry {
    pub index: u64,
    pub leaf_hash: Hash,
    pub submitter: String,
    pub entry_id: String,
}

/// Everything one group commit appends.
#[derive(Clone, Debug)]
pub struct Group {
    pub entries: Vec<NewEntry>,
    /// Entry bundles changed by the group, in full (bundle index, tlog-tiles bundle bytes).
    pub bundles: Vec<(u64, Vec<u8>)>,
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
    /// Returns the stored tile's encoded bytes (see [`FatTile`]) without decoding them:
    /// cheaper than [`Store::tile`] when only a few hashes are needed.
    fn tile_raw(&self, level: u8, index: u64) -> Result<Option<TileBytes>, StoreError>;
    /// Returns the leaf bytes of entries `[start, end)`, which must all exist.
    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Writes index records (leaf hash and entry_id to index) and the mark that every entry
    /// below `up_to` is indexed, atomically. Not flushed by itself: index records are derived
    /// and are replayed from [`Store::indexed_up_to`] after a crash.
    fn index(&self, records: &[NewEntry], up_to: u64) -> Result<(), StoreError>;
    /// Returns the mark written by the last [`Store::index`] (0 for none).
    fn indexed_up_to(&self) -> Result<u64, StoreError>;
    /// Returns the index of the entry with this leaf hash.
    fn index_of_leaf(&self, leaf_hash: &Hash) -> Result<Option<u64>, StoreError>;
    /// Returns the index of the entry `submitter` sent with `entry_id`.
    fn index_of_entry_id(&self, submitter: &str, entry_id: &str)
        -> Result<Option<u64>, StoreError>;
    /// Returns the bytes the store occupies on disk.
    fn size_on_disk(&self) -> Result<u64, StoreError>;
}

/// A stored tile's bytes, shared without copying.
pub type TileBytes = std::sync::Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Reads perfect-subtree hashes from a store's tiles, keeping the tiles it read so that many
/// proofs against one tree size (a batch's receipts) read each tile once. Tiles only grow, so
/// a cached tile answers every node that was complete when it was read.
pub struct StoreHashes<'a> {
    store: &'a dyn Store,
    cache: std::cell::RefCell<Vec<((u8, u64), TileBytes)>>,
}

impl<'a> StoreHashes<'a> {
    /// Returns a reader over `store` with an empty cache.
    pub fn new(store: &'a dyn Store) -> StoreHashes<'a> {
        StoreHashes {
            store,
            cache: Default::default(),
        }
    }

    fn tile(&self, l: u8, t: u64) -> Result<TileBytes, ReadError> {
        if let Some((_, b)) = self.cache.borrow().iter().find(|(k, _)| *k == (l, t)) {
            return Ok(b.clone());
        }
        let b = self
            .store
            .tile_raw(l, t)?
            .ok_or_else(|| format!("tile {l}/{t} is missing"))?;
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= 64 {
            cache.remove(0);
        }
        cache.push(((l, t), b.clone()));
        Ok(b)
    }
}

impl HashReader for StoreHashes<'_> {
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, ReadError> {
        nodes
            .iter()
            .map(|n| {
                let (l, t, r, slot) = fattile::locate(n.level, n.index);
                let tile = self.tile(l, t)?;
                FatTile::hash_in((*tile).as_ref(), r, slot)
                    .ok_or_else(|| format!("node {n:?} is not in tile {l}/{t}").into())
            })
            .collect()
    }
}
