//! The RFC 6962 Merkle tree (RFC 9162 §2.1.1–2.1.2): indices, sizes, perfect subtrees, the
//! incremental root ([`CompactRange`]) and the [`HashReader`] seam through which proofs read stored
//! hashes.
//!
//! Every hash a proof or a root needs is the hash of a *perfect* subtree, named by a [`NodeId`]:
//! `NodeId { level: 2, index: 1 }` covers leaves `[4, 8)`. A tree of size `n` is the fold, from the
//! right, of one perfect subtree per set bit of `n`, largest first (the compact range):
//!
//! ```text
//! n = 7 = 0b111:   [0,4) [4,6) [6,7)   root = H(0x01 || [0,4) || H(0x01 || [4,6) || [6,7)))
//! ```
//!
//! A store therefore needs to keep nothing but perfect-subtree hashes (exactly what tlog-tiles
//! serve) to answer any proof in O(log n) reads.

use crate::hash::{node_hash, Hash};
use std::fmt;

/// A 0-based leaf position in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LeafIndex(pub u64);

/// The number of leaves in a tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TreeSize(pub u64);

impl fmt::Display for LeafIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for TreeSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A perfect subtree: `2^level` leaves starting at leaf `index << level`. Level 0 is a leaf hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    /// Returns the node for `2^level` leaves starting at leaf `index << level`.
    pub fn new(level: u8, index: u64) -> NodeId {
        NodeId { level, index }
    }

    /// Returns the half-open leaf range `[start, end)` that this subtree covers.
    pub fn leaf_range(&self) -> (u64, u64) {
        let start = self.index << self.level;
        (start, start + (1u64 << self.level))
    }
}

/// Reads stored perfect-subtree hashes. The seam between the pure proof maths and a store
/// (Go's `tlog.HashReader`).
///
/// Contract: `read_hashes` returns exactly one hash per requested node, in request order, or an
/// error; it never returns a shorter or reordered list. Every requested node lies inside the tree
/// the caller is proving against.
pub trait HashReader {
    /// Returns the hashes of `nodes`, in the same order.
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, ReadError>;
}

/// A store failed to produce a hash (I/O error, missing or corrupt record).
pub type ReadError = Box<dyn std::error::Error + Send + Sync>;

/// Returns the largest power of two strictly smaller than `n` (RFC 6962 `k`); `n` must be >= 2.
pub fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2, "split_point needs n >= 2");
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Returns the perfect subtrees that make up leaves `[lo, hi)`, largest first, for a range whose
/// start is aligned as every range in the RFC 6962 recursion is (`lo` is a multiple of the
/// subtree sizes used). Folding their hashes from the right gives `MTH(D[lo:hi])`.
pub fn range_nodes(lo: u64, hi: u64) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut pos = lo;
    let size = hi - lo;
    for level in (0..64u8).rev() {
        if size & (1u64 << level) != 0 {
            debug_assert!(
                pos.is_multiple_of(1u64 << level),
                "range [{lo},{hi}) is not aligned"
            );
            out.push(NodeId::new(level, pos >> level));
            pos += 1u64 << level;
        }
    }
    out
}

/// Returns the root of the compact range `hashes` (largest subtree first): the right fold
/// `H(h0, H(h1, ... H(h_{k-2}, h_{k-1})))`, or the empty root for no hashes.
pub fn fold_right(hashes: &[Hash]) -> Hash {
    let mut iter = hashes.iter().rev();
    let Some(last) = iter.next() else {
        return Hash::EMPTY;
    };
    iter.fold(*last, |acc, left| node_hash(left, &acc))
}

/// Returns `MTH(D[0:n])` computed directly from leaf hashes (RFC 6962 §2.1), in O(n) time and
/// O(log n) memory.
pub fn root_of(leaf_hashes: &[Hash]) -> Hash {
    let mut c = CompactRange::new();
    for h in leaf_hashes {
        c.append(*h);
    }
    c.root()
}

/// The incremental tree state: one perfect-subtree root per set bit of the size, largest first
/// (RFC 9162 §2.1.2's stack). Appends in amortised O(1) and O(log n) memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    stack: Vec<Hash>,
}

impl CompactRange {
    /// Returns the state of the empty tree.
    pub fn new() -> CompactRange {
        CompactRange::default()
    }

    /// Returns the state of a tree of `size` leaves from its subtree roots (`range_nodes(0, size)`
    /// order), or `None` when the count does not match the size.
    pub fn from_parts(size: TreeSize, stack: Vec<Hash>) -> Option<CompactRange> {
        (size.0.count_ones() as usize == stack.len()).then_some(CompactRange {
            size: size.0,
            stack,
        })
    }

    /// Returns the state of a tree of `size` leaves read from stored subtree hashes in O(log n)
    /// reads.
    pub fn from_reader(size: TreeSize, reader: &dyn HashReader) -> Result<CompactRange, ReadError> {
        let nodes = range_nodes(0, size.0);
        let stack = reader.read_hashes(&nodes)?;
        if stack.len() != nodes.len() {
            return Err("hash reader returned the wrong number of hashes".into());
        }
        Ok(CompactRange {
            size: size.0,
            stack,
        })
    }

    /// Returns the number of leaves appended so far.
    pub fn size(&self) -> TreeSize {
        TreeSize(self.size)
    }

    /// Returns the subtree roots, largest first.
    pub fn hashes(&self) -> &[Hash] {
        &self.stack
    }

    /// Appends one leaf hash.
    pub fn append(&mut self, leaf: Hash) {
        self.append_with(leaf, |_, _| {});
    }

    /// Appends one leaf hash and reports every perfect subtree it completes to `visit`: the leaf
    /// itself at level 0, then each parent it closes, lowest first. A store that keeps every
    /// reported hash can answer any proof.
    pub fn append_with(&mut self, leaf: Hash, mut visit: impl FnMut(NodeId, Hash)) {
        let index = self.size;
        visit(NodeId::new(0, index), leaf);
        let mut h = leaf;
        let mut level = 0u8;
        // One merge per trailing 1-bit of the old size (RFC 9162 §2.1.2 step 3).
        while (index >> level) & 1 == 1 {
            let left = self
                .stack
                .pop()
                .expect("a set bit of size has a stack entry");
            h = node_hash(&left, &h);
            level += 1;
            visit(NodeId::new(level, index >> level), h);
        }
        self.stack.push(h);
        self.size += 1;
    }

    /// Returns the Merkle tree hash of everything appended so far.
    pub fn root(&self) -> Hash {
        fold_right(&self.stack)
    }
}

/// An in-memory tree that keeps every perfect-subtree hash: for verifiers that replay a log
/// (monitors, audits), for tests, and as the reference [`HashReader`].
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
    compact: CompactRange,
}

impl MemoryTree {
    /// Returns an empty tree.
    pub fn new() -> MemoryTree {
        MemoryTree::default()
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let levels = &mut self.levels;
        self.compact.append_with(leaf, |node, h| {
            let l = node.level as usize;
            if levels.len() <= l {
                levels.push(Vec::new());
            }
            debug_assert_eq!(levels[l].len() as u64, node.index);
            levels[l].push(h);
        });
    }

    /// Returns the number of leaves.
    pub fn size(&self) -> TreeSize {
        self.compact.size()
    }

    /// Returns the root of the whole tree.
    pub fn root(&self) -> Hash {
        self.compact.root()
    }

    /// Returns the root of the first `size` leaves, or `None` past the end.
    pub fn root_at(&self, size: TreeSize) -> Option<Hash> {
        if size > self.size() {
            return None;
        }
        let nodes = range_nodes(0, size.0);
        let hashes = self.read_hashes(&nodes).ok()?;
        Some(fold_right(&hashes))
    }

    /// Returns the leaf hash at `index`.
    pub fn leaf(&self, index: LeafIndex) -> Option<Hash> {
        self.levels.first()?.get(index.0 as usize).copied()
    }
}

impl HashReader for MemoryTree {
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, ReadError> {
        nodes
            .iter()
            .map(|n| {
                self.levels
                    .get(n.level as usize)
                    .and_then(|l| l.get(n.index as usize))
                    .copied()
                    .ok_or_else(|| format!("no hash for {n:?}").into())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    #[test]
    fn split_point_is_largest_power_below() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(1 << 40), 1 << 39);
    }

    #[test]
    fn range_nodes_follow_set_bits() {
        assert_eq!(
            range_nodes(0, 7),
            vec![NodeId::new(2, 0), NodeId::new(1, 2), NodeId::new(0, 6)]
        );
        assert_eq!(
            range_nodes(4, 7),
            vec![NodeId::new(1, 2), NodeId::new(0, 6)]
        );
        assert!(range_nodes(5, 5).is_empty());
    }

    #[test]
    fn memory_tree_roots_match_compact_ranges() {
        let mut t = MemoryTree::new();
        let mut roots = vec![Hash::EMPTY];
        for i in 0..100u32 {
            t.push(leaf_hash(&i.to_be_bytes()));
            roots.push(t.root());
        }
        for (n, r) in roots.iter().enumerate() {
            assert_eq!(t.root_at(TreeSize(n as u64)).unwrap(), *r, "size {n}");
        }
    }
}
