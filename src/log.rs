//! The log: a store, the signing key, and the published checkpoint that readers see.
//!
//! Opening a log checks, in O(log n) reads, that the root computed from the stored subtree
//! hashes equals the last signed checkpoint, and refuses to serve if it does not.

use std::sync::{Arc, RwLock};

use ledger_format::checkpoint::{Checkpoint, SignedCheckpoint};
use ledger_format::note::{Note, SignerKey, VerifierKey};
use ledger_format::proof::{prove_consistency, prove_inclusions, ConsistencyProof, InclusionProof};
use ledger_format::tree::CompactRange;
use ledger_format::{Hash, LeafIndex, TreeSize};

use crate::index::Index;
use crate::store::{ChunkCache, Group, Head, LogWrites, Store, StoreError, StoreHashes};

/// Why a log could not be opened or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("refusing to serve: {0}")]
    Inconsistent(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
}

/// Bytes of full upper-level chunks kept for proofs.
const CHUNK_CACHE: usize = 8 << 20;

/// What readers see: the latest durable, signed checkpoint.
#[derive(Clone, Debug)]
pub struct Published {
    pub size: u64,
    pub root: Hash,
    /// The signed note text.
    pub checkpoint: String,
}

/// An open log.
pub struct Log {
    pub store: Arc<dyn Store>,
    /// Where the sequencer's durable writes go: the store itself, or a wrapper of its
    /// durability points (fault injection in tests).
    pub writes: Arc<dyn LogWrites>,
    /// Leaf-hash and entry_id lookups (including entries not yet indexed in the store).
    pub index: Arc<Index>,
    /// Full tile chunks shared by proof requests.
    chunks: ChunkCache,
    pub signer: SignerKey,
    pub verifier: VerifierKey,
    pub origin: String,
    published: RwLock<Published>,
}

impl Drop for Log {
    fn drop(&mut self) {
        // Write the pending index records and stop the index writer.
        self.index.close();
    }
}

/// Returns a checkpoint note for `size` and `root` signed by `signer`.
pub fn sign_checkpoint(signer: &SignerKey, origin: &str, size: u64, root: Hash) -> String {
    let cp = Checkpoint {
        origin: origin.to_owned(),
        size: TreeSize(size),
        root,
        extensions: vec![],
    };
    Note::sign(&cp.to_text(), &[signer])
        .expect("checkpoint text is a valid note text")
        .to_text()
}

impl Log {
    /// Opens the log in `store`, creating it (with a signed size-0 checkpoint) when empty.
    /// Returns the log and its tree state for the sequencer.
    pub fn open(
        store: Arc<dyn Store>,
        signer: SignerKey,
        origin: &str,
    ) -> Result<(Arc<Log>, CompactRange, u64), LogError> {
        let writes: Arc<dyn LogWrites> = store.clone();
        Log::open_with_writes(store, writes, signer, origin)
    }

    /// [`Log::open`], with the sequencer's durable writes going through `writes` (which must
    /// write to `store`).
    pub fn open_with_writes(
        store: Arc<dyn Store>,
        writes: Arc<dyn LogWrites>,
        signer: SignerKey,
        origin: &str,
    ) -> Result<(Arc<Log>, CompactRange, u64), LogError> {
        let verifier = signer.verifier();
        if signer.name() != origin {
            return Err(LogError::Inconsistent(format!(
                "the log key is named {:?} but the origin is {origin:?}",
                signer.name()
            )));
        }
        let head = match store.head()? {
            Some(h) => h,
            None => {
                // A new log: persist size 0, then its signed checkpoint, so /checkpoint always
                // answers. A crash between the two is recovered like any other (below).
                writes.append(&Group::empty(0))?;
                Head {
                    size: 0,
                    last_ms: 0,
                    checkpoint: None,
                }
            }
        };
        // O(log n) reads: the subtree roots of the stored tree at its full size.
        let compact =
            CompactRange::from_reader(TreeSize(head.size), &StoreHashes::new(store.as_ref()))
                .map_err(|e| LogError::Inconsistent(format!("reading the tree: {e}")))?;
        let signed = match &head.checkpoint {
            None => None,
            Some(note) => Some(
                SignedCheckpoint::open(note.as_bytes(), &verifier, &[])
                    .map_err(|e| {
                        LogError::Inconsistent(format!(
                            "the stored checkpoint does not verify with the configured log key ({e})"
                        ))
                    })?
                    .0
                    .checkpoint,
            ),
        };
        if let Some(cp) = &signed {
            if cp.size.0 > head.size {
                return Err(LogError::Inconsistent(format!(
                    "the last checkpoint is for size {} but only {} entries are stored",
                    cp.size, head.size
                )));
            }
            // The root at the checkpoint's size, from the same stored subtrees (still O(log n)).
            let at_cp = CompactRange::from_reader(cp.size, &StoreHashes::new(store.as_ref()))
                .map_err(|e| LogError::Inconsistent(format!("reading the tree: {e}")))?;
            if at_cp.root() != cp.root {
                return Err(LogError::Inconsistent(format!(
                    "the root of the stored tree at size {} is {}, but the last signed checkpoint says {}",
                    cp.size,
                    at_cp.root(),
                    cp.root
                )));
            }
        }
        let checkpoint = match (&signed, head.checkpoint) {
            (Some(cp), Some(note)) if cp.size.0 == head.size => note,
            _ => {
                // Entries were made durable but the process stopped before their checkpoint
                // was: they were never acknowledged. The stored tree extends the last signed
                // one (checked above), so signing its head now is consistent with every
                // checkpoint this log ever signed.
                let note = sign_checkpoint(&signer, origin, head.size, compact.root());
                writes.put_checkpoint(&note)?;
                note
            }
        };
        let index = Index::open(store.clone(), head.size)?;
        let log = Log {
            index,
            chunks: ChunkCache::new(CHUNK_CACHE),
            store,
            writes,
            verifier,
            signer,
            origin: origin.to_owned(),
            published: RwLock::new(Published {
                size: head.size,
                root: compact.root(),
                checkpoint,
            }),
        };
        Ok((Arc::new(log), compact, head.last_ms))
    }

    /// Returns the latest published checkpoint.
    pub fn published(&self) -> Published {
        self.published.read().expect("lock poisoned").clone()
    }

    /// Makes a durable checkpoint visible to readers.
    pub fn publish(&self, p: Published) {
        *self.published.write().expect("lock poisoned") = p;
    }

    /// Returns the inclusion proof of `index` at `size` (which must be published).
    pub fn inclusion(&self, index: u64, size: u64) -> Result<InclusionProof, LogError> {
        Ok(self.inclusions(&[index], size)?.remove(0))
    }

    /// Returns the inclusion proofs of `indices` at `size`, reading each tile once.
    pub fn inclusions(&self, indices: &[u64], size: u64) -> Result<Vec<InclusionProof>, LogError> {
        let published = self.published().size;
        if size > published {
            return Err(LogError::NotFound(format!(
                "tree size {size} is beyond the latest checkpoint ({published})"
            )));
        }
        if let Some(&index) = indices.iter().find(|&&i| i >= size) {
            return Err(LogError::NotFound(format!(
                "index {index} is not in the tree of size {size}"
            )));
        }
        let reader = StoreHashes::with_cache(self.store.as_ref(), &self.chunks);
        let indices: Vec<LeafIndex> = indices.iter().map(|&i| LeafIndex(i)).collect();
        prove_inclusions(&indices, TreeSize(size), &reader)
            .map_err(|e| LogError::Inconsistent(e.to_string()))
    }

    /// Returns the consistency proof from `old` to `new` (both published, `1 <= old <= new`).
    pub fn consistency(&self, old: u64, new: u64) -> Result<ConsistencyProof, LogError> {
        let published = self.published().size;
        if new > published {
            return Err(LogError::NotFound(format!(
                "tree size {new} is beyond the latest checkpoint ({published})"
            )));
        }
        if old == 0 || old > new {
            return Err(LogError::BadRequest(format!(
                "no consistency proof exists from {old} to {new}: need 1 <= old <= new"
            )));
        }
        prove_consistency(
            TreeSize(old),
            TreeSize(new),
            &StoreHashes::with_cache(self.store.as_ref(), &self.chunks),
        )
        .map_err(|e| LogError::Inconsistent(e.to_string()))
    }

    /// Returns the first index in `[0, size)` whose leaf was logged at or after `ms` (`size`
    /// if none), by binary search: timestamps never decrease along the log. O(log n) reads.
    pub fn first_at_or_after(&self, ms: u64, size: u64) -> Result<u64, LogError> {
        let (mut lo, mut hi) = (0u64, size);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let leaf = self.store.entries(mid, mid + 1)?.remove(0);
            let at = ledger_format::leaf::Leaf::parse(&leaf)
                .map_err(|e| LogError::Inconsistent(format!("entry {mid}: {e}")))?
                .logged_at_ms;
            if at < ms {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Returns the leaf bytes at `index`, if published.
    pub fn leaf(&self, index: u64) -> Result<Vec<u8>, LogError> {
        if index >= self.published().size {
            return Err(LogError::NotFound(format!("no entry at index {index}")));
        }
        Ok(self.store.entries(index, index + 1)?.remove(0))
    }
}
