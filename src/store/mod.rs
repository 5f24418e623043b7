//! Durable storage, split by what it stores: the tree and its entries ([`LogStore`], written
//! through [`LogWrites`]), the indexes ([`IndexStore`]) and the anchoring state
//! ([`AnchorStore`]), each with its own durability contract; [`Store`] is all three in one
//! data dir, implemented on sled ([`SledStore`]).
//!
//! What is stored: each entry's leaf bytes, the tree's tiles with their inner levels in chunks
//! of 16 hashes ([`fattile`]), the leaf-hash and (submitter, entry_id) indexes, the tree size
//! and the latest signed checkpoint. Values stay small (at most 512 bytes of hashes, one leaf),
//! because sled copies whole pages on update. Any proof reads O(log n) chunks; nothing about the
//! tree lives only in memory.

pub mod fattile;
mod sled_store;

pub use fattile::{ChunkId, FatTile};
pub use sled_store::SledStore;

use ledger_format::tree::{HashReader, NodeId, ReadError};
use ledger_format::Hash;

/// The on-disk format this build writes; a store with a newer one is refused.
pub const FORMAT_VERSION: u32 = 1;

/// Store failures. `Io` and `Corrupt` are fatal for the sequencer: it stops signing.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A read or write failed; `kind` is the operating system's (`StorageFull` when the file
    /// system is out of space).
    #[error("storage I/O: {message}")]
    Io {
        kind: std::io::ErrorKind,
        message: String,
    },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("data dir has format version {found}; this build reads up to {supported}")]
    NewerFormat { found: u32, supported: u32 },
}

impl StoreError {
    /// Returns an I/O failure of kind `Other`: a failure that is not the operating system's.
    pub fn io(message: impl Into<String>) -> StoreError {
        StoreError::Io {
            kind: std::io::ErrorKind::Other,
            message: message.into(),
        }
    }

    /// Returns true when the failure is the file system being out of space.
    pub fn is_out_of_space(&self) -> bool {
        matches!(
            self,
            StoreError::Io {
                kind: std::io::ErrorKind::StorageFull,
                ..
            }
        )
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> StoreError {
        StoreError::Io {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> StoreError {
        match e {
            sled::Error::Io(e) => StoreError::from(e),
            sled::Error::Corruption { .. } => StoreError::Corrupt(e.to_string()),
            other => StoreError::io(other.to_string()),
        }
    }
}

/// The committed state of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// Entries durably stored. May exceed the checkpoint's size after a crash between
    /// [`LogWrites::append`] and [`LogWrites::put_checkpoint`].
    pub size: u64,
    /// `logged_at_ms` of the last entry (timestamps never go backwards).
    pub last_ms: u64,
    /// The latest signed checkpoint note (text with signatures), if one was stored.
    pub checkpoint: Option<String>,
}

/// The index records of one entry appended by a group (its bytes travel in a bundle; the
/// records go to [`IndexStore::index`] later, see `crate::index`).
#[derive(Clone, Debug)]
pub struct NewEntry {
    pub index: u64,
    pub leaf_hash: Hash,
    pub submitter: String,
    pub entry_id: String,
    /// Attribute keys the entry is found by (`ledger_format::entry::attribute_key`).
    pub attrs: Vec<u64>,
}

/// Entry indices that carry one attribute, from one index flush (a posting-list run).
#[derive(Clone, Debug)]
pub struct Posting {
    pub attr: u64,
    /// First entry index the flush covered (keeps keys unique and ordered).
    pub first: u64,
    /// Ascending entry indices.
    pub indices: Vec<u64>,
}

/// What an index maps to entry indices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IndexSpace {
    /// Leaf hashes; the fingerprint is the hash's first 8 bytes.
    LeafHash,
    /// (submitter, entry_id); the fingerprint is the first 8 bytes of
    /// SHA-256(submitter || 0x00 || entry_id).
    EntryId,
}

impl IndexSpace {
    /// Returns the byte that names the space in stored keys.
    pub fn byte(self) -> u8 {
        match self {
            IndexSpace::LeafHash => b'h',
            IndexSpace::EntryId => b'i',
        }
    }
}

/// Index records of one bucket (the fingerprint's top [`BUCKET_BITS`] bits), written together
/// as one run.
///
/// The index has 2,048 buckets per space and the indexer writes a run per bucket only when
/// at least 32,768 records are pending, so a flush writes about 16 records per key and the
/// store holds about one index key per 16 entries: sled's memory grows with its key count, and
/// one random key per entry both outgrew the memory budget and halved throughput (measured,
/// benches/README.md). A lookup scans one bucket: n / 32,768 runs of ~192 bytes.
#[derive(Clone, Debug)]
pub struct IndexRun {
    pub space: IndexSpace,
    pub bucket: u16,
    /// Index of the first entry covered by the flush that wrote this run (keeps keys unique).
    pub first: u64,
    /// (fingerprint, entry index) pairs.
    pub records: Vec<(u64, u64)>,
}

/// Fingerprint bits that select the bucket.
pub const BUCKET_BITS: u32 = 11;

/// Returns the bucket of a fingerprint.
pub fn bucket_of(fp: u64) -> u16 {
    (fp >> (64 - BUCKET_BITS)) as u16
}

/// Returns the fingerprint of a leaf hash.
pub fn leaf_fingerprint(hash: &Hash) -> u64 {
    u64::from_be_bytes(hash.0[..8].try_into().expect("8 bytes"))
}

/// Returns the fingerprint of a (submitter, entry_id) key.
pub fn entry_id_fingerprint(submitter: &str, entry_id: &str) -> u64 {
    let mut buf = Vec::with_capacity(submitter.len() + 1 + entry_id.len());
    buf.extend_from_slice(submitter.as_bytes());
    buf.push(0);
    buf.extend_from_slice(entry_id.as_bytes());
    let h = ledger_format::hash::sha256(&buf);
    u64::from_be_bytes(h[..8].try_into().expect("8 bytes"))
}

/// Everything one group commit appends.
#[derive(Clone, Debug)]
pub struct Group {
    pub entries: Vec<NewEntry>,
    /// The group's leaves, by index.
    pub leaves: Vec<(u64, Vec<u8>)>,
    /// Tile chunks changed by the group, in full.
    pub chunks: Vec<(ChunkId, Vec<Hash>)>,
    /// Tree size after the group.
    pub size: u64,
    /// `logged_at_ms` of the group's entries.
    pub last_ms: u64,
}

impl Group {
    /// Returns a group that appends nothing and records `size` (creating an empty log).
    pub fn empty(size: u64) -> Group {
        Group {
            entries: vec![],
            leaves: vec![],
            chunks: vec![],
            size,
            last_ms: 0,
        }
    }
}

/// A key and its value, from [`AnchorStore::anchor_scan`].
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// The durable writes of a log's tree: the store's durability points, the only writes a
/// fault-injection wrapper needs to stand in for (`Log::open_with_writes`).
///
/// Contract: [`LogWrites::append`] applies a whole group atomically and returns only once it
/// is durable (fsynced); after a crash a group is either entirely present or entirely absent.
/// [`LogWrites::put_checkpoint`] likewise returns only once the checkpoint is durable;
/// [`LogWrites::stage_checkpoint`] writes it to be made durable by the next append (a
/// checkpoint is a deterministic function of the durable entries, see there). An error from
/// any means the write's fate is unknown (it may or may not be persisted): the caller must not
/// sign or acknowledge anything more and must recover by reopening, which reads the truth from
/// disk.
pub trait LogWrites: Send + Sync {
    /// Durably and atomically appends `group` (see the trait contract).
    fn append(&self, group: &Group) -> Result<(), StoreError>;
    /// Durably replaces the latest signed checkpoint.
    fn put_checkpoint(&self, note: &str) -> Result<(), StoreError>;
    /// Replaces the latest signed checkpoint without waiting for the disk: the next
    /// [`LogWrites::append`] (or flush at close) makes it durable. Safe only for a checkpoint
    /// over entries that are durable already, signed without a timestamp: if a crash loses it,
    /// reopening signs the same size and root with the same key, which gives the same bytes
    /// (Ed25519 signatures are deterministic), so no client ever saw a checkpoint that the
    /// log cannot sign again.
    fn stage_checkpoint(&self, note: &str) -> Result<(), StoreError>;
}

/// The tree and the entries: what [`LogWrites`] wrote, read back. Reads reflect every
/// completed write.
pub trait LogStore: Send + Sync {
    /// Returns the committed head, or `None` for a store never written to.
    fn head(&self) -> Result<Option<Head>, StoreError>;
    /// Returns the stored tile (all its chunks), if any.
    fn tile(&self, level: u8, index: u64) -> Result<Option<FatTile>, StoreError>;
    /// Returns one stored chunk's bytes (its hashes concatenated), shared without copying.
    fn chunk(&self, id: ChunkId) -> Result<Option<ChunkBytes>, StoreError>;
    /// Returns every stored chunk of a tile in one range read, in key order. (Measured: for a
    /// proof, separate point reads of its few chunks are faster than this scan.)
    fn tile_chunks(&self, level: u8, index: u64) -> Result<Vec<(ChunkId, ChunkBytes)>, StoreError>;
    /// Returns the leaf bytes of entries `[start, end)`, which must all exist.
    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError>;
}

/// The leaf-hash, entry_id and attribute indexes.
///
/// Contract: derived data, never flushed by itself. After a crash the records above
/// [`IndexStore::indexed_up_to`] may be missing or partly written; they are replayed from the
/// entries (`crate::index`), so a lookup is always confirmed against the entry it names.
pub trait IndexStore: Send + Sync {
    /// Writes index runs and posting runs, then the mark that every entry below `up_to` is
    /// indexed (runs may be written in several steps; the mark only after all of them).
    fn index(&self, runs: &[IndexRun], postings: &[Posting], up_to: u64) -> Result<(), StoreError>;
    /// Returns up to `limit` ascending entry indices `>= from` that carry attribute `attr`,
    /// from the stored posting runs.
    fn postings(&self, attr: u64, from: u64, limit: usize) -> Result<Vec<u64>, StoreError>;
    /// Returns the mark written by the last [`IndexStore::index`] (0 for none).
    fn indexed_up_to(&self) -> Result<u64, StoreError>;
    /// Returns the indices of the entries whose key has fingerprint `fp` in `space`: candidates
    /// that the caller confirms against the entry (fingerprints are 64 bits of a SHA-256).
    fn index_candidates(&self, space: IndexSpace, fp: u64) -> Result<Vec<u64>, StoreError>;
}

/// The anchoring state: the outbox of checkpoints to anchor, the anchored and witnessed
/// checkpoints, stream cursors (key layout in `crate::anchor`).
///
/// Contract: [`AnchorStore::anchor_write`] applies its writes atomically and returns once they
/// are on disk; an anchor is recorded as done only after the backend confirmed it, so a crash
/// repeats an anchoring round, never skips one.
pub trait AnchorStore: Send + Sync {
    /// Durably and atomically applies `writes`: a value of `None` deletes the key.
    fn anchor_write(&self, writes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<(), StoreError>;
    /// Returns at most `limit` of the anchoring state's entries whose key starts with `prefix`
    /// and is at least `prefix ‖ from`, in key order.
    fn anchor_scan(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError>;
    /// Returns the anchoring state's last entry whose key starts with `prefix`.
    fn anchor_last(&self, prefix: &[u8]) -> Result<Option<KeyValue>, StoreError>;
}

/// Everything one log stores, in one data dir.
pub trait Store: LogStore + LogWrites + IndexStore + AnchorStore {
    /// Returns the bytes the store occupies on disk.
    fn size_on_disk(&self) -> Result<u64, StoreError>;
}

/// A stored chunk's bytes, shared without copying.
pub type ChunkBytes = std::sync::Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Reads perfect-subtree hashes from a store's chunks, keeping the chunks it read so that many
/// proofs against one tree size (a batch's receipts) read each chunk once. Chunks only grow,
/// so a cached chunk answers every node that was complete when it was read.
pub struct StoreHashes<'a> {
    store: &'a dyn LogStore,
    /// The chunks this reader used (a proof batch reads the same upper chunks many times).
    cache: std::cell::RefCell<std::collections::HashMap<ChunkId, ChunkBytes>>,
    shared: Option<&'a ChunkCache>,
}

/// Full chunks of tile levels >= 1 shared between requests. A full chunk never changes, so it
/// can be kept as long as memory allows; these upper tiles are read by every proof. Bounded: when full
/// it is cleared (the hot chunks come back at once).
pub struct ChunkCache {
    map: std::sync::Mutex<(std::collections::HashMap<ChunkId, ChunkBytes>, usize)>,
    capacity_bytes: usize,
}

impl ChunkCache {
    /// Returns an empty cache holding at most `capacity_bytes` of chunks.
    pub fn new(capacity_bytes: usize) -> ChunkCache {
        ChunkCache {
            map: Default::default(),
            capacity_bytes,
        }
    }

    fn get(&self, id: &ChunkId) -> Option<ChunkBytes> {
        self.map.lock().expect("lock poisoned").0.get(id).cloned()
    }

    fn put(&self, id: ChunkId, bytes: &ChunkBytes) {
        if id.level == 0 {
            // Level-0 chunks belong to single leaves' neighbourhoods: random proofs rarely
            // reuse them, and caching them evicted the upper chunks every proof needs.
            return;
        }
        let b: &[u8] = (**bytes).as_ref();
        let full = if id.inner == fattile::TOP {
            // The top chunk is complete once its last slot (inner level 7's second hash) is.
            b.len() == 32 * fattile::TOP_SLOTS && b[b.len() - 32..].iter().any(|&x| x != 0)
        } else {
            b.len() == 32 * fattile::CHUNK
        };
        if !full {
            return; // a partial chunk still grows
        }
        let mut guard = self.map.lock().expect("lock poisoned");
        let (map, used) = &mut *guard;
        if *used + b.len() > self.capacity_bytes {
            map.clear();
            *used = 0;
        }
        if map.insert(id, bytes.clone()).is_none() {
            *used += b.len();
        }
    }
}

impl<'a> StoreHashes<'a> {
    /// Returns a reader over `store` with an empty cache.
    pub fn new(store: &'a dyn LogStore) -> StoreHashes<'a> {
        StoreHashes {
            store,
            cache: Default::default(),
            shared: None,
        }
    }

    /// Returns a reader that also uses and fills a cache shared between requests.
    pub fn with_cache(store: &'a dyn LogStore, shared: &'a ChunkCache) -> StoreHashes<'a> {
        StoreHashes {
            shared: Some(shared),
            ..StoreHashes::new(store)
        }
    }

    fn chunk(&self, id: ChunkId) -> Result<ChunkBytes, ReadError> {
        if let Some(b) = self.cache.borrow().get(&id) {
            return Ok(b.clone());
        }
        let b = match self.shared.and_then(|c| c.get(&id)) {
            Some(b) => b,
            None => {
                let b = self
                    .store
                    .chunk(id)?
                    .ok_or_else(|| format!("tile chunk {id:?} is missing"))?;
                if let Some(c) = self.shared {
                    c.put(id, &b);
                }
                b
            }
        };
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= 256 {
            cache.clear();
        }
        cache.insert(id, b.clone());
        Ok(b)
    }
}

impl HashReader for StoreHashes<'_> {
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, ReadError> {
        nodes
            .iter()
            .map(|n| {
                let (id, pos) = fattile::chunk_of(n.level, n.index);
                let chunk = self.chunk(id)?;
                let bytes: &[u8] = (*chunk).as_ref();
                // An all-zero slot is an absent hash in the top chunk's padding.
                bytes
                    .get(32 * pos..32 * pos + 32)
                    .filter(|b| b.iter().any(|&x| x != 0))
                    .and_then(|b| Hash::from_slice(b).ok())
                    .ok_or_else(|| format!("node {n:?} is not in chunk {id:?}").into())
            })
            .collect()
    }
}
